package host_test

import (
	"testing"

	"github.com/sluice-net/sluice/host/hosttest"
)

func TestRDMANetnsModeReads(t *testing.T) {
	n := hosttest.New(t)
	h := n.Host()
	if mode, err := h.RDMANetnsMode(); err != nil || mode != "shared" {
		t.Fatalf("RDMANetnsMode = %q, %v", mode, err)
	}
	if err := h.SetRDMANetnsMode("exclusive"); err != nil {
		t.Fatal(err)
	}
	if mode, err := h.RDMANetnsMode(); err != nil || mode != "exclusive" {
		t.Errorf("after switching: %q, %v", mode, err)
	}
}
