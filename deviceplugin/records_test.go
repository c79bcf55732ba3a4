package deviceplugin

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/sluice-net/sluice/api/nodefiles"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// TestOneDamagedRecordMarksNoOtherVFUnhealthy: the registry used to stop at
// the first record it could not parse, so the plugin saw no attachment at
// all and marked every VF in a pod Unhealthy. Now the other records are
// read, and the damaged one still holds its own VF: in use, not broken.
func TestOneDamagedRecordMarksNoOtherVFUnhealthy(t *testing.T) {
	n := twoNICNode(t, 4)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})))
	const res = "sluice.dev/a"
	e.kubelet.Wait(res, wait, "4 healthy", allHealthy(4))
	vf1, vf2, vf3 := n.VFAddress(cx0, 1), n.VFAddress(cx0, 2), n.VFAddress(cx0, 3)
	moved, broken, damagedIf := n.Netdev(vf1), n.Netdev(vf2), n.Netdev(vf3)
	e.attach(vf1, moved)
	damaged := filepath.Join(e.dir, "attachments", vf3+".json")
	if err := os.WriteFile(damaged, []byte(`{"pciAddress":"`+vf3+`","contai`), 0o644); err != nil {
		t.Fatal(err)
	}
	n.RemoveNetdev(moved)
	n.RemoveNetdev(damagedIf)
	n.RemoveNetdev(broken) // no record: this one is broken
	e.links.fire(broken)
	// The scan that marks the VF without record saw the other two.
	s := e.kubelet.Wait(res, time.Second, "the VF without netdev nor record Unhealthy", health(vf2, pluginapi.Unhealthy))
	for _, vf := range []string{vf1, vf3} {
		if d := s.Device(vf); d == nil || d.Health != pluginapi.Healthy {
			t.Errorf("VF %s, in a pod: %v, want Healthy", vf, d)
		}
	}
}

// TestDRAHeldVFIsInUse: a VF whose netdev the DRA driver moved into a pod
// has a claim's hold, not an attachment record; it is in use, not
// vanished, and an unreadable hold holds its VF too. The DRA driver
// publishes the same verdict as the devices' health.
func TestDRAHeldVFIsInUse(t *testing.T) {
	n := twoNICNode(t, 4)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})))
	const res = "sluice.dev/a"
	e.kubelet.Wait(res, wait, "4 healthy", allHealthy(4))
	vf1, vf2, vf3 := n.VFAddress(cx0, 1), n.VFAddress(cx0, 2), n.VFAddress(cx0, 3)
	claims := nodefiles.NewDRAClaims(filepath.Join(e.dir, "dra-claims"))
	if err := claims.PutHold(nodefiles.DRAHold{PCIAddress: vf1, ClaimUID: "uid-1", Namespace: "demo", Name: "c1"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(claims.HoldsDir(), vf3+".json"), []byte(`{"pciAddress":`), 0o644); err != nil {
		t.Fatal(err)
	}
	moved, broken, damaged := n.Netdev(vf1), n.Netdev(vf2), n.Netdev(vf3)
	n.RemoveNetdev(moved)
	n.RemoveNetdev(damaged)
	n.RemoveNetdev(broken) // no hold: this one is broken
	e.links.fire(broken)
	s := e.kubelet.Wait(res, time.Second, "the VF without netdev nor hold Unhealthy", health(vf2, pluginapi.Unhealthy))
	for _, vf := range []string{vf1, vf3} {
		if d := s.Device(vf); d == nil || d.Health != pluginapi.Healthy {
			t.Errorf("VF %s, held by a DRA claim: %v, want Healthy", vf, d)
		}
	}
}

// TestUnreadableRecordLoggedOnce: an unreadable record is logged when a
// scan first finds it, not at every scan while it stays.
func TestUnreadableRecordLoggedOnce(t *testing.T) {
	n := twoNICNode(t, 2)
	var mu sync.Mutex
	logged := 0
	countLog := func(o *Options) {
		o.Log = funcr.New(func(prefix, args string) {
			if strings.Contains(args, "unreadable attachment record") {
				mu.Lock()
				logged++
				mu.Unlock()
			}
		}, funcr.Options{})
	}
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})), countLog)
	const res = "sluice.dev/a"
	e.kubelet.Wait(res, wait, "2 healthy", allHealthy(2))
	vf1 := n.VFAddress(cx0, 1)
	if err := os.MkdirAll(filepath.Join(e.dir, "attachments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "attachments", vf1+".json"), []byte(`{"pciAddress":`), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		before := e.m.scans.Load()
		e.links.fire(n.Netdev(vf1))
		for deadline := time.Now().Add(5 * time.Second); e.m.scans.Load() == before; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no rescan after a link event")
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if logged != 1 {
		t.Errorf("the unreadable record was logged %d times over 3 scans, want once", logged)
	}
}
