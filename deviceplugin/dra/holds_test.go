package dra

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	resourceapi "k8s.io/api/resource/v1"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// holdsAtConfigure records, at each VF change, which VFs had a hold.
type holdsAtConfigure struct {
	Node
	store nodefiles.DRAClaims
	pcis  []string
	seen  map[string]string
}

func (h *holdsAtConfigure) ConfigureVF(pf string, vf int, cfg host.VFConfig) error {
	for _, pci := range h.pcis {
		if hold, ok, _ := h.store.Hold(pci); ok {
			h.seen[pci] = hold.ClaimUID
		}
	}
	return h.Node.ConfigureVF(pf, vf, cfg)
}

func (e *env) hold(pci string) (nodefiles.DRAHold, bool) {
	e.t.Helper()
	h, ok, err := nodefiles.NewDRAClaims(e.opts.ClaimsDir).Hold(pci)
	if err != nil {
		e.t.Fatal(err)
	}
	return h, ok
}

// TestPrepareWritesHolds: Prepare writes a hold per VF, naming the claim,
// before it changes a VF; Unprepare removes them after the VFs are back,
// and so does the undo of a failed Prepare.
func TestPrepareWritesHolds(t *testing.T) {
	e := newPrepareEnv(t, config)
	vf0, vf1 := e.n.VFAddress(cx0, 0), e.n.VFAddress(cx0, 1)
	c := claim(uid1, []alloc{{"a", DeviceName(vf0)}, {"b", DeviceName(vf1)}},
		opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlan": 10}`))
	spy := &holdsAtConfigure{Node: e.h, store: nodefiles.NewDRAClaims(e.opts.ClaimsDir), pcis: []string{vf0, vf1}, seen: map[string]string{}}
	e.d.opts.Node = spy
	if r := e.prepare(c); r.Err != nil {
		t.Fatal(r.Err)
	}
	e.d.opts.Node = e.h
	if spy.seen[vf0] != uid1 || spy.seen[vf1] != uid1 {
		t.Errorf("holds seen when the first VF changed = %v, want both VFs held by %s", spy.seen, uid1)
	}
	for _, pci := range []string{vf0, vf1} {
		if h, ok := e.hold(pci); !ok || h.ClaimUID != uid1 || h.Claim() != "ml/claim-0b6e" {
			t.Errorf("hold of %s = %+v, %v", pci, h, ok)
		}
	}
	if err := e.unprepare(uid1); err != nil {
		t.Fatal(err)
	}
	for _, pci := range []string{vf0, vf1} {
		if h, ok := e.hold(pci); ok {
			t.Errorf("hold of %s after Unprepare: %+v", pci, h)
		}
	}

	// A Prepare that fails leaves no hold.
	e.n.FailNetlink("LinkSetVfVlanQosProto", syscall.EOPNOTSUPP)
	if r := e.prepare(c); r.Err == nil {
		t.Fatal("Prepare with the VLAN refused succeeded")
	}
	e.n.FailNetlink("LinkSetVfVlanQosProto", nil)
	for _, pci := range []string{vf0, vf1} {
		if h, ok := e.hold(pci); ok {
			t.Errorf("hold of %s after a failed Prepare: %+v", pci, h)
		}
	}

	// A checkpoint that cannot be written: neither it nor the holds stay.
	if err := os.MkdirAll(filepath.Join(e.opts.ClaimsDir, uid1+".json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := e.prepare(c); r.Err == nil || !strings.Contains(r.Err.Error(), "checkpoint of claim "+uid1) {
		t.Fatalf("Prepare with the checkpoint unwritable = %v", r.Err)
	}
	for _, pci := range []string{vf0, vf1} {
		if h, ok := e.hold(pci); ok {
			t.Errorf("hold of %s after the checkpoint's write failed: %+v", pci, h)
		}
	}
}

// TestRestartSyncsHolds: at start the driver removes a hold without a
// checkpoint (a crash between the two writes) so that the VF is free
// again, keeps the holds of a checkpoint it cannot read (they are what
// says which VFs it holds, and Prepare refuses them), and writes the
// missing holds of a prepared claim (a checkpoint of a driver before
// holds).
func TestRestartSyncsHolds(t *testing.T) {
	e := newPrepareEnv(t, config)
	vf0, vf1 := e.n.VFAddress(cx0, 0), e.n.VFAddress(cx0, 1)
	vf2 := e.n.VFAddress(e810, 0)
	store := nodefiles.NewDRAClaims(e.opts.ClaimsDir)

	// A prepared claim, whose hold the old driver did not write.
	if r := e.prepare(claim(uid1, []alloc{{"vf", DeviceName(vf0)}})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if err := store.RemoveHoldFile(vf0); err != nil {
		t.Fatal(err)
	}
	// A crash after the hold's write: no checkpoint.
	const orphan = "0b6e2c1a-0009-4c5e-9e55-7d2f0c1a2b3c"
	if err := store.PutHold(nodefiles.DRAHold{PCIAddress: vf1, ClaimUID: orphan, Namespace: "ml", Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	// An unreadable checkpoint and its hold.
	const damaged = "0b6e2c1a-0008-4c5e-9e55-7d2f0c1a2b3c"
	if err := os.WriteFile(filepath.Join(e.opts.ClaimsDir, damaged+".json"), []byte(`{"uid":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := store.PutHold(nodefiles.DRAHold{PCIAddress: vf2, ClaimUID: damaged, Namespace: "ml", Name: "damaged"}); err != nil {
		t.Fatal(err)
	}

	e.restart()
	if h, ok := e.hold(vf0); !ok || h.ClaimUID != uid1 {
		t.Errorf("hold of the prepared claim's VF after the restart = %+v, %v, want it written", h, ok)
	}
	if h, ok := e.hold(vf1); ok {
		t.Errorf("hold without a checkpoint after the restart: %+v", h)
	}
	if h, ok := e.hold(vf2); !ok || h.ClaimUID != damaged {
		t.Errorf("hold of an unreadable checkpoint after the restart = %+v, %v, want it kept", h, ok)
	}
	if r := e.prepare(claim(uid2, []alloc{{"vf", DeviceName(vf1)}})); r.Err != nil {
		t.Errorf("the VF of the hold without a checkpoint: %v", r.Err)
	}
	if r := e.prepare(claim(uid3, []alloc{{"vf", DeviceName(vf2)}})); r.Err == nil || !strings.Contains(r.Err.Error(), "held by claim ml/damaged") {
		t.Errorf("Prepare of the unreadable checkpoint's VF = %v, want it held", r.Err)
	}
	// The unreadable checkpoint's Unprepare removes it and its holds.
	if err := e.unprepare(damaged); err != nil {
		t.Fatal(err)
	}
	if h, ok := e.hold(vf2); ok {
		t.Errorf("hold of the unreadable checkpoint after its Unprepare: %+v", h)
	}
}
