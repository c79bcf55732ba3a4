package deviceplugin

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/sluice-net/sluice/host/hosttest"
)

// fakePool has, per PF, count VFs on the given NUMA node; IDs are
// "<pf>-<i>".
func fakePool(pfs map[string]struct{ numa, count int }) *PoolDevices {
	var devs []Device
	for pf, s := range pfs {
		for i := range s.count {
			devs = append(devs, Device{ID: fmt.Sprintf("%s-%d", pf, i), Healthy: true, NUMANode: s.numa, PFAddress: pf, Group: pf})
		}
	}
	return newPoolDevices(Pool{Name: "p"}, devs)
}

func ids(pd *PoolDevices) []string {
	out := make([]string, len(pd.Devices))
	for i := range pd.Devices {
		out[i] = pd.Devices[i].ID
	}
	return out
}

// spread counts the chosen devices per group and per NUMA node.
func spread(pd *PoolDevices, chosen []string) (perGroup map[string]int, perNode map[int]int) {
	perGroup, perNode = map[string]int{}, map[int]int{}
	for _, id := range chosen {
		d, _ := pd.Device(id)
		perGroup[d.Group]++
		perNode[d.NUMANode]++
	}
	return perGroup, perNode
}

func TestPreferredOneNodeSpreadOverPFs(t *testing.T) {
	pd := fakePool(map[string]struct{ numa, count int }{
		"a": {0, 4}, "b": {0, 4}, "c": {1, 3}, "d": {1, 2},
	})
	got := preferred(pd, ids(pd), nil, 4)
	g, n := spread(pd, got)
	if len(got) != 4 || n[0] != 4 || g["a"] != 2 || g["b"] != 2 {
		t.Errorf("preferred = %v: per PF %v, per node %v; want 2+2 on NUMA 0 (most available)", got, g, n)
	}
	// Odd size: one PF gets one more, still one node.
	got = preferred(pd, ids(pd), nil, 3)
	if g, n := spread(pd, got); n[0] != 3 || g["a"]+g["b"] != 3 || g["a"] == 0 || g["b"] == 0 {
		t.Errorf("preferred 3 = %v: %v %v", got, g, n)
	}
}

func TestPreferredMustIncludePullsTowardItsNode(t *testing.T) {
	pd := fakePool(map[string]struct{ numa, count int }{
		"a": {0, 4}, "b": {0, 4}, "c": {1, 3}, "d": {1, 2},
	})
	got := preferred(pd, ids(pd), []string{"c-1"}, 3)
	g, n := spread(pd, got)
	if got[0] != "c-1" || n[1] != 3 || g["c"] != 2 || g["d"] != 1 {
		t.Errorf("preferred = %v: per PF %v, per node %v; want c-1 first, all on NUMA 1, spread c/d", got, g, n)
	}
	// More than the node holds: fill it, then spill to the next.
	got = preferred(pd, ids(pd), []string{"d-0"}, 7)
	if _, n := spread(pd, got); n[1] != 5 || n[0] != 2 {
		t.Errorf("preferred 7 = %v: per node %v; want NUMA 1 full (5) and 2 from NUMA 0", got, n)
	}
	// Only what is available, and must-include devices only once.
	got = preferred(pd, []string{"a-0", "a-1", "b-0"}, []string{"a-0", "a-0"}, 2)
	if !slices.Equal(got, []string{"a-0", "b-0"}) {
		t.Errorf("preferred from a short list = %v, want [a-0 b-0] (spread to b)", got)
	}
}

func TestPreferredThroughTheKubelet(t *testing.T) {
	n := hosttest.New(t)
	pfs := []struct {
		addr, name string
		numa, vfs  int
	}{{"0000:3b:00.0", "ens1f0", 0, 4}, {"0000:3b:00.1", "ens1f1", 0, 4}, {"0000:af:00.0", "ens3f0", 1, 2}, {"0000:af:00.1", "ens3f1", 1, 2}}
	for _, p := range pfs {
		n.AddPF(hosttest.ConnectX6(p.addr, p.name, p.numa))
		n.SetNumVFs(p.addr, p.vfs)
	}
	e := newEnv(t, n, native(pool("p", map[string]any{"selectors": map[string]any{"vendors": []string{"15b3"}}})))
	s := e.kubelet.Wait("sluice.dev/p", wait, "12 VFs", allHealthy(12))
	got, err := e.kubelet.Preferred(context.Background(), "sluice.dev/p", s.IDs(), nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	perPF := map[string]int{}
	for _, id := range got {
		for _, p := range pfs {
			for i := range p.vfs {
				if n.VFAddress(p.addr, i) == id {
					perPF[p.name]++
				}
			}
		}
	}
	if len(got) != 4 || perPF["ens1f0"] != 2 || perPF["ens1f1"] != 2 {
		t.Errorf("preferred = %v per PF %v; want 2 on each NUMA 0 PF", got, perPF)
	}
	must := n.VFAddress("0000:af:00.0", 1)
	got, err = e.kubelet.Preferred(context.Background(), "sluice.dev/p", s.IDs(), []string{must}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != must || got[1] != n.VFAddress("0000:af:00.1", 0) {
		t.Errorf("preferred with must-include %s = %v, want it and VF 0 of the other NUMA 1 PF", must, got)
	}
}

// TestPreferredPassesOverVFsStillAttached: the kubelet offers VFs whose
// previous pod's CNI DEL has not run yet (their attachment records are
// still there); the plugin prefers the others, and takes an attached one
// only when too few others are available.
func TestPreferredPassesOverVFsStillAttached(t *testing.T) {
	n := hosttest.New(t)
	pf := "0000:3b:00.0"
	n.AddPF(hosttest.ConnectX6(pf, "ens1f0", 0))
	n.SetNumVFs(pf, 4)
	e := newEnv(t, n, native(pool("p", map[string]any{"selectors": map[string]any{"vendors": []string{"15b3"}}})))
	s := e.kubelet.Wait("sluice.dev/p", wait, "4 VFs", allHealthy(4))
	vf := func(i int) string { return n.VFAddress(pf, i) }
	e.attach(vf(0), "")
	e.attach(vf(2), "")
	got, err := e.kubelet.Preferred(context.Background(), "sluice.dev/p", s.IDs(), nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{vf(1), vf(3)}; !slices.Equal(got, want) {
		t.Errorf("preferred 2 of 4 with VFs 0 and 2 still attached = %v, want %v", got, want)
	}
	got, err = e.kubelet.Preferred(context.Background(), "sluice.dev/p", s.IDs(), nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !slices.Contains(got, vf(1)) || !slices.Contains(got, vf(3)) {
		t.Errorf("preferred 3 of 4 = %v, want VFs 1 and 3 and one attached VF", got)
	}
	// A device the kubelet must include stays, attached or not.
	got, err = e.kubelet.Preferred(context.Background(), "sluice.dev/p", s.IDs(), []string{vf(0)}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != vf(0) || (got[1] != vf(1) && got[1] != vf(3)) {
		t.Errorf("preferred with must-include %s = %v, want it and a free VF", vf(0), got)
	}
}
