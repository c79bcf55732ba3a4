package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/sluice-net/sluice/host"
)

// SubscribeLinks reports links of the namespace it was called in, and
// closes its channel when the context ends.
func TestSubscribeLinks(t *testing.T) {
	nodeNS, _, _ := netnsPair(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var events <-chan string
	if err := nodeNS.Do(func(ns.NetNS) error {
		var err error
		events, err = host.SubscribeLinks(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	addVeth(t, nodeNS, "sub0", true)
	timeout := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case name, ok := <-events:
			if !ok {
				t.Fatal("events closed before sub0 was reported")
			}
			seen = name == "sub0"
		case <-timeout:
			t.Fatal("no event for the new link sub0 within 10s")
		}
	}
	cancel()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("events not closed after the context ended")
		}
	}
}
