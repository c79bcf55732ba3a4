package plugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// damageRecord cuts the attachment record of pci short, as a crash or a
// bad disk leaves it.
func (e *env) damageRecord(pci string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, "attachments", pci+".json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"pciAddress":"`+pci+`","containerID":"c-`), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return path
}

func (e *env) quarantined(pci string) []string {
	e.t.Helper()
	q, err := filepath.Glob(filepath.Join(e.dir, "attachments", "quarantine", pci+".json.*"))
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

// TestUnreadableRecordOfAVFInAPod: a damaged record of a VF in a pod keeps
// the VF refused (nothing else says it is free), with an error naming the
// file; the pod's DEL, from its cache entry, brings the VF back and moves
// the record to the quarantine; then the VF serves the next pod.
func TestUnreadableRecordOfAVFInAPod(t *testing.T) {
	e := newEnv(t, 1)
	first := newNS(t)
	firstArgs := cmdArgs(first, "c-first", "net1", e.conf(vfAddr(0), nil))
	e.mustAdd(firstArgs)
	damaged := e.damageRecord(vfAddr(0))

	second := newNS(t)
	args := cmdArgs(second, "c-second", "net1", e.conf(vfAddr(0), nil))
	_, err := e.add(args)
	if cniCode(err) != 100 || !strings.Contains(err.Error(), damaged) {
		t.Fatalf("ADD of a VF in a pod whose record is damaged = %v, want code 100 naming %s", err, damaged)
	}
	e.mustDel(firstArgs)
	if _, err := os.Stat(damaged); !os.IsNotExist(err) {
		t.Errorf("after DEL the damaged record is still in the registry (%v): its VF stays held forever", err)
	}
	if q := e.quarantined(vfAddr(0)); len(q) != 1 {
		t.Errorf("quarantine = %v, want the damaged record kept", q)
	}
	e.mustAdd(args)
	if r, ok := e.record(vfAddr(0)); !ok || r.ContainerID != "c-second" {
		t.Errorf("record after the second ADD = %+v, %v", r, ok)
	}
	e.mustDel(args)
}

// TestUnreadableRecordOfAFreeVF: a damaged record whose VF is back in the
// host namespace (a crash between two commands, then a reboot) held
// nothing: ADD moves it to the quarantine and takes the VF.
func TestUnreadableRecordOfAFreeVF(t *testing.T) {
	e := newEnv(t, 1)
	before := e.snapshot()
	e.damageRecord(vfAddr(0))
	pod := newNS(t)
	args := cmdArgs(pod, "c-1", "net1", e.conf(vfAddr(0), nil))
	e.mustAdd(args)
	if r, ok := e.record(vfAddr(0)); !ok || r.ContainerID != "c-1" {
		t.Errorf("record after ADD = %+v, %v", r, ok)
	}
	q := e.quarantined(vfAddr(0))
	if len(q) != 1 {
		t.Fatalf("quarantine = %v, want the damaged record", q)
	}
	if b, err := os.ReadFile(q[0]); err != nil || !strings.Contains(string(b), `"containerID":"c-`) {
		t.Errorf("quarantined copy: %q, %v", b, err)
	}
	e.mustDel(args)
	if err := os.RemoveAll(filepath.Join(e.dir, "attachments", "quarantine")); err != nil {
		t.Fatal(err)
	}
	e.requireSame(before, "ADD over a damaged record of a free VF, DEL")
}
