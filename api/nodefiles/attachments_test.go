package nodefiles

import (
	"path/filepath"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	d := NewAttachments(filepath.Join(t.TempDir(), "att"))
	if rs, err := d.List(); err != nil || len(rs) != 0 {
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
	m, err := d.Attached()
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
