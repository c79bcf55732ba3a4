package agent

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// TestDRAHeldVFIsInUse: a VF a DRA claim holds (its hold file) is in use
// for the agent. A policy's trust is not applied over the claim's
// settings on it (the other VFs get it), and a numVfs change, which would
// destroy it, waits without a drain slot (no eviction frees a claim),
// naming the claim and what frees it; once the claim is unprepared (its
// hold gone) both go on.
func TestDRAHeldVFIsInUse(t *testing.T) {
	var claims nodefiles.DRAClaims
	h := twoPFHarness(t, func(h *harness) {
		claims = nodefiles.NewDRAClaims(filepath.Join(h.dir, "dra", "claims"))
		h.opts.Usage = multiUsage{h.usage, draUsage{claims: claims}}
	})
	gen := h.setSpec(twoPFs(4, nil))
	h.synced(sluicev1.SyncSucceeded, gen)
	vf := h.node.VFAddress(pfA, 1)
	if err := claims.PutHold(nodefiles.DRAHold{PCIAddress: vf, ClaimUID: "6f1c9a52-0d3e-4c1b-8a44-2b7e0c9d1a01", Namespace: "ml", Name: "x"}); err != nil {
		t.Fatal(err)
	}
	trust := func(idx int) bool {
		t.Helper()
		s, err := h.node.Host().VFSettingsOf("ens1f0", idx)
		if err != nil {
			t.Fatal(err)
		}
		return s.Trust
	}

	gen = h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		twoPFs(4, nil)(s)
		s.Interfaces[0].VFGroups[0].Trust = ptrTo(true)
	})
	h.synced(sluicev1.SyncSucceeded, gen)
	if !trust(0) || !trust(2) || !trust(3) {
		t.Errorf("trust of the free VFs: %v %v %v, want on", trust(0), trust(2), trust(3))
	}
	if trust(1) {
		t.Error("the policy's trust was applied over the DRA claim's VF")
	}

	gen = h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		twoPFs(6, nil)(s)
		s.Interfaces[0].VFGroups[0].Trust = ptrTo(true)
	})
	n := h.waitFor("the numVfs change held for the claim", func(n *sluicev1.NodeNetworkState) error {
		d := n.Status.Drain
		if n.Status.ObservedGeneration < gen || d == nil || d.State != sluicev1.DrainWaiting || !strings.Contains(d.Reason, "DRA ResourceClaim ml/x") {
			return fmt.Errorf("generation %d, drain %+v", n.Status.ObservedGeneration, d)
		}
		return nil
	})
	if !strings.Contains(n.Status.Drain.Reason, "until the kubelet unprepares it") {
		t.Errorf("drain reason %q does not say what frees the VF", n.Status.Drain.Reason)
	}
	if got := h.numVFs(pfA); got != 4 {
		t.Errorf("pfA has %d VFs: the DRA claim's VF was destroyed", got)
	}
	h.noSlotHeld()

	// Unprepared: the hold goes, the change goes on.
	if err := claims.DeleteHold(vf, "6f1c9a52-0d3e-4c1b-8a44-2b7e0c9d1a01"); err != nil {
		t.Fatal(err)
	}
	h.synced(sluicev1.SyncSucceeded, gen)
	if got := h.numVFs(pfA); got != 6 {
		t.Errorf("pfA has %d VFs after the claim went, want 6", got)
	}
	h.eventually("trust on every VF", func() error { return h.trustOn(pfA, 6) })
}
