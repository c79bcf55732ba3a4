package plugin_test

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestAddWaitsForTheHolderDEL: the kubelet gave the VF to a new pod while
// the old pod's DEL was still to come (a pod deleted with grace period 0).
// ADD waits for that DEL instead of failing into the kubelet's back-off,
// and fails as before when the DEL does not come within HolderWait.
func TestAddWaitsForTheHolderDEL(t *testing.T) {
	e := newEnv(t, 1)
	oldPod, newPod := newNS(t), newNS(t)
	conf := e.conf(vfAddr(0), nil)
	old := cmdArgs(oldPod, "old", "net1", conf)
	e.mustAdd(old)

	// No DEL: refused after the wait, naming the holder.
	p := e.plugin(&bytes.Buffer{})
	start := time.Now()
	err := e.in(func() error { return p.CmdAdd(cmdArgs(newPod, "new", "net1", conf)) })
	if cniCode(err) != 100 || !strings.Contains(err.Error(), "already attached") {
		t.Fatalf("ADD of a held VF = %v, want code 100", err)
	}
	if waited := time.Since(start); waited < p.HolderWait {
		t.Errorf("ADD gave up after %s, before HolderWait (%s)", waited, p.HolderWait)
	}

	// The DEL comes during the wait: the ADD goes through.
	p = e.plugin(&bytes.Buffer{})
	p.HolderWait = 20 * time.Second
	done := make(chan error, 1)
	go func() { done <- e.in(func() error { return p.CmdAdd(cmdArgs(newPod, "new", "net1", conf)) }) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("ADD returned before the holder's DEL: %v", err)
	default:
	}
	e.mustDel(old)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ADD after the holder's DEL: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("ADD still waiting 15 s after the holder's DEL")
	}
	if r, ok := e.record(vfAddr(0)); !ok || r.ContainerID != "new" {
		t.Errorf("record after the ADD = %+v %v, want container new", r, ok)
	}
	e.mustDel(cmdArgs(newPod, "new", "net1", conf))
}
