package nodefiles

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestDRAHolds: a hold is one file per VF, read by its PCI address alone,
// removed only by its claim, listed with the unparsable ones apart, and
// invisible to the checkpoints' List.
func TestDRAHolds(t *testing.T) {
	d := NewDRAClaims(filepath.Join(t.TempDir(), "claims"))
	if _, ok, err := d.Hold("0000:3b:00.2"); ok || err != nil {
		t.Fatalf("Hold in an absent directory = %v, %v", ok, err)
	}
	h := DRAHold{PCIAddress: "0000:3b:00.2", ClaimUID: uidA, Namespace: "ml", Name: "vf", Created: time.Unix(100, 0).UTC()}
	if err := d.PutHold(h); err != nil {
		t.Fatal(err)
	}
	if err := d.PutHold(DRAHold{PCIAddress: "0000:3b:00.3", ClaimUID: uidB, Namespace: "ml", Name: "other"}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := d.Hold("0000:3b:00.2")
	if err != nil || !ok || !reflect.DeepEqual(got, h) || got.Claim() != "ml/vf" {
		t.Fatalf("Hold = %+v %v %v, want %+v", got, ok, err, h)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), DRAHoldsDir, "0000:3b:00.2.json")); err != nil {
		t.Errorf("the hold is not at <claims>/%s/<pci>.json: %v", DRAHoldsDir, err)
	}
	if cs, bad, err := d.List(); err != nil || len(cs) != 0 || len(bad) != 0 {
		t.Errorf("checkpoints' List sees the holds: %v %v %v", cs, bad, err)
	}

	// Another claim's hold stays.
	if err := d.DeleteHold("0000:3b:00.2", uidB); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := d.Hold("0000:3b:00.2"); !ok {
		t.Error("DeleteHold by another claim removed the hold")
	}

	// An unparsable hold holds its VF, apart in Holds, and goes with any
	// claim's DeleteHold.
	bad := filepath.Join(d.HoldsDir(), "0000:3b:00.4.json")
	if err := os.WriteFile(bad, []byte(`{"pciAddress":"0000:3b:0`), 0o644); err != nil {
		t.Fatal(err)
	}
	var u *UnreadableError
	if _, _, err := d.Hold("0000:3b:00.4"); !errors.As(err, &u) || u.Path != bad {
		t.Errorf("Hold of an unparsable file = %v, want an UnreadableError naming it", err)
	}
	hs, unreadable, err := d.Holds()
	if err != nil || len(hs) != 2 || hs[0].PCIAddress != "0000:3b:00.2" || hs[1].ClaimUID != uidB ||
		len(unreadable) != 1 || unreadable[0].PCIAddress != "0000:3b:00.4" {
		t.Errorf("Holds = %+v %+v %v", hs, unreadable, err)
	}
	if err := d.DeleteHold("0000:3b:00.4", uidA); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteHold("0000:3b:00.2", uidA); err != nil {
		t.Fatal(err)
	}
	if hs, unreadable, _ := d.Holds(); len(hs) != 1 || len(unreadable) != 0 {
		t.Errorf("after DeleteHold: %+v %+v", hs, unreadable)
	}
	if err := d.DeleteHold("0000:3b:00.2", uidA); err != nil {
		t.Errorf("DeleteHold of a missing hold: %v", err)
	}

	// Names are PCI addresses and UIDs only.
	for _, bad := range []DRAHold{{PCIAddress: "../x", ClaimUID: uidA}, {PCIAddress: "0000:3b:00.2", ClaimUID: "../x"}} {
		if err := d.PutHold(bad); err == nil {
			t.Errorf("PutHold(%+v) accepted", bad)
		}
	}
	if _, _, err := d.Hold("../../etc/passwd"); err == nil {
		t.Error("Hold of a path accepted")
	}
}

// TestDRAHoldTemporaries: an interrupted hold write leaves no file
// behind after RemoveTemporaries.
func TestDRAHoldTemporaries(t *testing.T) {
	d := NewDRAClaims(filepath.Join(t.TempDir(), "claims"))
	tmp := filepath.Join(d.HoldsDir(), ".0000:3b:00.2.json.123")
	if err := os.MkdirAll(d.HoldsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveTemporaries(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temporary hold file still there: %v", err)
	}
}
