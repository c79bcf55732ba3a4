package host_test

import (
	"context"
	"strings"
	"sync"
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
		events, err = host.SubscribeLinks(ctx, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	addVeth(t, nodeNS, "sub0", true)
	waitLink(t, events, "sub0")
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

// A Netns subscription reports the links of that namespace that keep
// accepts, and hands keep what the kernel says of a veth: its kind, and no
// parent device.
func TestNetnsSubscribeLinksKeeps(t *testing.T) {
	nodeNS, node, _ := netnsPair(t)
	var mu sync.Mutex
	var seen []host.LinkEvent
	keep := func(ev host.LinkEvent) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ev)
		return !strings.HasPrefix(ev.Name, "skip")
	}
	events, err := node.SubscribeLinks(t.Context(), keep)
	if err != nil {
		t.Fatal(err)
	}
	addVeth(t, nodeNS, "skip0", true)
	addVeth(t, nodeNS, "sub1", true)
	if got := waitLink(t, events, "sub1"); len(got) > 0 {
		t.Errorf("events delivered before sub1's: %q, want none (skip0's were refused)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range seen {
		if ev.Name == "skip0" && (ev.Kind != "veth" || ev.ParentBus != "" || ev.ParentDev != "") {
			t.Errorf("event of the veth skip0 = %+v, want kind veth without a parent device", ev)
		}
	}
}

// waitLink reads events until name comes, and returns the names before it.
func waitLink(t *testing.T, events <-chan string, name string) []string {
	t.Helper()
	var before []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got, ok := <-events:
			if !ok {
				t.Fatalf("events closed before %s was reported", name)
			}
			if got == name {
				return before
			}
			if !strings.HasPrefix(got, name) { // a veth's peer is reported too
				before = append(before, got)
			}
		case <-timeout:
			t.Fatalf("no event for the new link %s within 10s", name)
		}
	}
}
