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

// TestHeldVFsAreInUse: a VF whose netdev left the host is in use, not
// broken, when a pod holds it: through sluice-cni's attachment record, or
// a DRA claim's hold (the DRA driver moved it). The registry used to stop
// at the first record it could not parse, so the plugin saw no attachment
// at all and marked every VF in a pod Unhealthy; now the other records are
// read, and a damaged record or hold still holds its own VF.
func TestHeldVFsAreInUse(t *testing.T) {
	for _, c := range []struct {
		name string
		// hold makes a pod hold the VF; damage leaves an unreadable file
		// in its place.
		hold, damage func(e *env, vf string)
	}{
		{"attachment record",
			func(e *env, vf string) { e.attach(vf, e.node.Netdev(vf)) },
			func(e *env, vf string) {
				writeDamaged(t, filepath.Join(e.dir, "attachments", vf+".json"), `{"pciAddress":"`+vf+`","contai`)
			}},
		{"DRA claim hold",
			func(e *env, vf string) {
				if err := nodefiles.NewDRAClaims(filepath.Join(e.dir, "dra-claims")).PutHold(nodefiles.DRAHold{PCIAddress: vf, ClaimUID: "uid-1", Namespace: "demo", Name: "c1"}); err != nil {
					t.Fatal(err)
				}
			},
			func(e *env, vf string) {
				writeDamaged(t, filepath.Join(nodefiles.NewDRAClaims(filepath.Join(e.dir, "dra-claims")).HoldsDir(), vf+".json"), `{"pciAddress":`)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := twoNICNode(t, 4)
			e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})))
			const res = "sluice.dev/a"
			e.kubelet.Wait(res, wait, "4 healthy", allHealthy(4))
			vf1, vf2, vf3 := n.VFAddress(cx0, 1), n.VFAddress(cx0, 2), n.VFAddress(cx0, 3)
			c.hold(e, vf1)
			c.damage(e, vf3)
			broken := n.Netdev(vf2)
			for _, vf := range []string{vf1, vf2, vf3} {
				n.RemoveNetdev(n.Netdev(vf)) // vf2 held by nothing: broken
			}
			e.links.fire(broken)
			// The scan that marks the VF held by nothing saw the other two.
			s := e.kubelet.Wait(res, time.Second, "the VF without netdev nor holder Unhealthy", health(vf2, pluginapi.Unhealthy))
			for _, vf := range []string{vf1, vf3} {
				if d := s.Device(vf); d == nil || d.Health != pluginapi.Healthy {
					t.Errorf("VF %s, in a pod: %v, want Healthy", vf, d)
				}
			}
		})
	}
}

// writeDamaged writes an unparsable record or hold at path.
func writeDamaged(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
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
