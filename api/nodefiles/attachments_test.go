package nodefiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	d := NewAttachments(filepath.Join(t.TempDir(), "att"))
	if rs, bad, err := d.List(); err != nil || len(rs) != 0 || len(bad) != 0 {
		t.Fatalf("empty registry: %v %v", rs, err)
	}
	r := Record{PCIAddress: "0000:3b:00.2", ContainerID: "abc", IfName: "net1", Netns: "/var/run/netns/x",
		PodNamespace: "ml", PodName: "trainer-0", HostIfName: "ens1f0v0", Created: time.Unix(100, 0).UTC()}
	if err := d.Put(r); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(Record{PCIAddress: "0000:3b:00.3", ContainerID: "def", IfName: "net1"}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := d.Get("0000:3b:00.2")
	if err != nil || !ok || got != r {
		t.Fatalf("Get = %+v %v %v", got, ok, err)
	}
	if got.Pod() != "ml/trainer-0" {
		t.Errorf("Pod() = %q", got.Pod())
	}
	m, _, err := d.Attached()
	if err != nil || len(m) != 2 || m["0000:3b:00.3"].Pod() != "def" {
		t.Fatalf("Attached = %v %v", m, err)
	}
	if err := d.Delete("0000:3b:00.2"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete("0000:3b:00.2"); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if _, ok, _ := d.Get("0000:3b:00.2"); ok {
		t.Error("record still there after delete")
	}
	if err := d.Put(Record{}); err == nil {
		t.Error("record without PCI address accepted")
	}
}

// TestOneDamagedRecordHidesNoOther: a record truncated by a crash (or
// damaged on disk) is reported apart, still holds its VF, and the others
// are read; quarantined, it holds nothing and is kept for a person to read.
func TestOneDamagedRecordHidesNoOther(t *testing.T) {
	d := NewAttachments(filepath.Join(t.TempDir(), "att"))
	for _, pci := range []string{"0000:3b:00.2", "0000:3b:00.4"} {
		if err := d.Put(Record{PCIAddress: pci, ContainerID: "c-" + pci, IfName: "net1"}); err != nil {
			t.Fatal(err)
		}
	}
	damaged := filepath.Join(d.Root(), "0000:3b:00.3.json")
	if err := os.WriteFile(damaged, []byte(`{"pciAddress":"0000:3b:00.3","contai`), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, bad, err := d.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(recs) != 2 || recs[0].PCIAddress != "0000:3b:00.2" || recs[1].PCIAddress != "0000:3b:00.4" {
		t.Errorf("records = %+v, want the two readable ones", recs)
	}
	if len(bad) != 1 || bad[0].PCIAddress != "0000:3b:00.3" || bad[0].Path != damaged || bad[0].Err == nil {
		t.Fatalf("unreadable = %+v, want %s", bad, damaged)
	}
	var u *UnreadableError
	if _, _, err := d.Get("0000:3b:00.3"); !errors.As(err, &u) || !strings.Contains(err.Error(), damaged) {
		t.Errorf("Get of the damaged record: %v, want an UnreadableError naming the file", err)
	}
	m, bad, err := d.Attached()
	if err != nil || len(m) != 3 || len(bad) != 1 {
		t.Fatalf("Attached = %v, %v, %v: want the damaged record's VF held too", m, bad, err)
	}
	if got := m["0000:3b:00.3"]; got.PCIAddress != "0000:3b:00.3" || got.ContainerID != "" {
		t.Errorf("held VF = %+v", got)
	}
	to, err := d.Quarantine("0000:3b:00.3", time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(to); err != nil || !strings.Contains(string(b), "contai") {
		t.Errorf("quarantined copy %s: %q, %v", to, b, err)
	}
	if filepath.Dir(to) != filepath.Join(d.Root(), QuarantineDir) {
		t.Errorf("quarantined to %s", to)
	}
	if set, err := d.PCIAddresses(); err != nil || len(set) != 2 || set["0000:3b:00.3"] {
		t.Errorf("after quarantine, held VFs = %v, %v", set, err)
	}
	if _, bad, err := d.List(); err != nil || len(bad) != 0 {
		t.Errorf("after quarantine: unreadable %v, %v", bad, err)
	}
}
