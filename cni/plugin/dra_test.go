package plugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-net/sluice/api/nodefiles"
)

func (e *env) draClaims() nodefiles.DRAClaims {
	return nodefiles.NewDRAClaims(filepath.Join(e.dir, "dra", "claims"))
}

// TestADDRefusesDRAHeldVF: a VF whose hold names a DRA claim is refused
// with code 100, naming the claim and the way out, before anything
// changes: not even the damaged attachment record ADD would otherwise
// quarantine. Once the claim's hold is gone the VF serves the pod.
func TestADDRefusesDRAHeldVF(t *testing.T) {
	e := newEnv(t, 1)
	claims := e.draClaims()
	if err := claims.PutHold(nodefiles.DRAHold{PCIAddress: vfAddr(0), ClaimUID: "6f1c9a52-0d3e-4c1b-8a44-2b7e0c9d1a01", Namespace: "ml", Name: "trainer-vf"}); err != nil {
		t.Fatal(err)
	}
	damaged := e.damageRecord(vfAddr(0))
	before := e.snapshot()
	pod := newNS(t)
	args := cmdArgs(pod, "c-1", "net1", e.conf(vfAddr(0), map[string]any{"vlan": 10, "trust": "on"}))
	_, err := e.add(args)
	if cniCode(err) != 100 {
		t.Fatalf("ADD of a DRA-held VF = %v, want code 100", err)
	}
	for _, want := range []string{vfAddr(0), "ResourceClaim ml/trainer-vf", "give the pod a ResourceClaim", "back to the device plugin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	e.requireSame(before, "ADD of a DRA-held VF")
	if _, err := os.Stat(damaged); err != nil {
		t.Errorf("the damaged record was touched: %v", err)
	}
	if q := e.quarantined(vfAddr(0)); len(q) != 0 {
		t.Errorf("quarantine = %v, want nothing moved", q)
	}
	if l, ok := podLinks(t, pod)["net1"]; ok {
		t.Errorf("the pod has net1: %+v", l)
	}

	// An unparsable hold holds the VF too.
	hold := filepath.Join(claims.HoldsDir(), vfAddr(0)+".json")
	if err := os.WriteFile(hold, []byte(`{"pciAddress":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.add(args); cniCode(err) != 100 || !strings.Contains(err.Error(), hold) {
		t.Fatalf("ADD of a VF with an unreadable DRA hold = %v, want code 100 naming %s", err, hold)
	}
	e.requireSame(before, "ADD of a VF with an unreadable DRA hold")

	// Unprepared: the VF is free.
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	e.mustAdd(args)
	e.mustDel(args)
}
