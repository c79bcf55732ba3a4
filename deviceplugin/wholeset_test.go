package deviceplugin

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	"github.com/sluice-net/sluice/host/hosttest"
)

// charDevices lists the char devices the fake node created for an RDMA
// device, as a container sees them, plus rdma_cm.
func charDevices(t *testing.T, n *hosttest.Node, pf string) []string {
	t.Helper()
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := snap.PFByAddress(pf)
	if p == nil || p.RDMA == nil || len(p.RDMA.CharDevices) == 0 {
		t.Fatalf("PF %s has no RDMA char devices", pf)
	}
	return p.RDMA.CharDevices
}

// k8s-rdma-shared-dev-plugin's sharing on a node with two HCAs selected:
// rdmaHcaMax units in total, and one unit hands out both HCAs' char
// devices, with no environment variable and no mount.
func TestAllocateWholeSetRDMA(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, map[string]any{"configList": []any{
		map[string]any{"resourceName": "hca", "rdmaHcaMax": 3, "selectors": map[string]any{"vendors": []string{"15b3"}, "deviceIDs": []string{"101d"}}},
	}}, func(o *Options) { o.ResourcePrefix = "rdma" })
	const res = "rdma/hca"
	s := e.kubelet.Wait(res, wait, "3 units", allHealthy(3))
	if want := []string{"0", "1", "2"}; !slices.Equal(s.IDs(), want) {
		t.Fatalf("IDs = %v, want %v (rdmaHcaMax units for the resource, not per HCA)", s.IDs(), want)
	}
	for _, id := range s.IDs() {
		if d := s.Device(id); d.Topology != nil {
			t.Errorf("unit %s has topology %v: k8s-rdma-shared-dev-plugin advertises none", id, d.Topology)
		}
	}
	want := slices.Concat(charDevices(t, n, cx0), charDevices(t, n, cx1))
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Contains(want, "/dev/infiniband/rdma_cm") || len(want) < 3 {
		t.Fatalf("fake node's char devices %v: want two uverbs and rdma_cm", want)
	}
	for _, ids := range [][]string{{"1"}, {"0", "2"}} {
		r, err := e.kubelet.Allocate(context.Background(), res, ids...)
		if err != nil {
			t.Fatal(err)
		}
		got := specs(r)
		var paths []string
		for p, h := range got {
			paths = append(paths, p)
			// k8s-rdma-shared-dev-plugin's permissions: "rwm".
			if want := filepath.Join(n.Root, p) + " perm=rwm"; h != want {
				t.Errorf("%v: %s is %q, want the node's %s with permissions rwm", ids, p, h, filepath.Join(n.Root, p))
			}
		}
		slices.Sort(paths)
		if !slices.Equal(paths, want) {
			t.Errorf("units %v: devices %v, want both HCAs' %v", ids, paths, want)
		}
		if len(r.Envs) != 0 || len(r.Mounts) != 0 || len(r.CdiDevices) != 0 {
			t.Errorf("units %v: envs %v, mounts %v, CDI %v; k8s-rdma-shared-dev-plugin gives none", ids, r.Envs, r.Mounts, r.CdiDevices)
		}
	}
}

// With no HCA selected the resource advertises nothing, as
// k8s-rdma-shared-dev-plugin does; once one appears, all rdmaHcaMax units.
func TestWholeSetNoDeviceNoUnits(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, map[string]any{"configList": []any{
		map[string]any{"resourceName": "hca", "rdmaHcaMax": 2, "selectors": map[string]any{"ifNames": []string{"ens2f0"}}},
	}})
	const res = "sluice.dev/hca"
	e.kubelet.Wait(res, wait, "no units", func(s kubelettest.Snapshot) bool { return len(s.IDs()) == 0 })
	// Allocating a unit the plugin never advertised fails.
	if _, err := e.kubelet.Allocate(context.Background(), res, "0"); err == nil {
		t.Error("allocating unit 0 of an empty whole-set pool succeeded")
	}
	// An RDMA device appearing on the E810's PF brings the units: the
	// plugin's RDMA check sees it, with no other scan pending.
	e.settle()
	n.AddRxe("rxe_e810", "ens2f0")
	e.kubelet.Wait(res, wait, "2 units once ens2f0 has an RDMA device", allHealthy(2))
}

// The per-device sharing of the native format is unchanged: rdmaHcaMax
// shares of each RDMA device, one device per share.
func TestAllocatePerDeviceRDMA(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, native(pool("hca", map[string]any{"rdmaHcaMax": 3, "selectors": map[string]any{"pfNames": []string{"ens1f0"}}})))
	const res = "sluice.dev/hca"
	rdma := pfRDMA(t, n, cx0)
	s := e.kubelet.Wait(res, wait, "3 shares", allHealthy(3))
	if want := []string{rdma + "-0", rdma + "-1", rdma + "-2"}; !slices.Equal(s.IDs(), want) {
		t.Fatalf("IDs = %v, want %v", s.IDs(), want)
	}
	for _, id := range []string{rdma + "-0", rdma + "-2"} {
		r, err := e.kubelet.Allocate(context.Background(), res, id)
		if err != nil {
			t.Fatal(err)
		}
		got := specs(r)
		if _, ok := got["/dev/infiniband/rdma_cm"]; !ok || len(got) != len(charDevices(t, n, cx0)) {
			t.Errorf("%s specs = %v, want the char devices of %s", id, got, rdma)
		}
		if r.Envs["PCIDEVICE_SLUICE_DEV_HCA"] != cx0 {
			t.Errorf("PCIDEVICE_SLUICE_DEV_HCA = %q, want the PF %s", r.Envs["PCIDEVICE_SLUICE_DEV_HCA"], cx0)
		}
	}
	r, err := e.kubelet.Allocate(context.Background(), res, rdma+"-0", rdma+"-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Devices) != len(charDevices(t, n, cx0)) {
		t.Errorf("specs for two shares of one device = %v", specs(r))
	}
}

// The set follows the node: an HCA that vanishes leaves every unit's
// allocation, a port going DOWN changes nothing (k8s-rdma-shared-dev-plugin
// reports every unit Healthy), and with no HCA left the resource
// advertises nothing.
func TestWholeSetFollowsDevices(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, map[string]any{"configList": []any{
		map[string]any{"resourceName": "hca", "rdmaHcaMax": 2, "selectors": map[string]any{"vendors": []string{"15b3"}, "deviceIDs": []string{"101d"}}},
	}})
	const res = "sluice.dev/hca"
	e.kubelet.Wait(res, wait, "2 units", allHealthy(2))
	devicesOf := func() []string {
		r, err := e.kubelet.Allocate(context.Background(), res, "0")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for p := range specs(r) {
			out = append(out, p)
		}
		slices.Sort(out)
		return out
	}
	only0 := slices.Clone(charDevices(t, n, cx0))
	slices.Sort(only0)

	n.RemoveRDMA(pfRDMA(t, n, cx1))
	deadline := time.Now().Add(wait)
	for got := devicesOf(); !slices.Equal(got, only0); got = devicesOf() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s's RDMA device vanished, a unit still hands out %v, want %v", cx1, got, only0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := e.kubelet.Plugin(res); len(s.IDs()) != 2 || s.Healthy() != 2 {
		t.Errorf("with one HCA left: %v, want 2 Healthy units", s)
	}

	state := filepath.Join(n.Root, "sys/class/infiniband", pfRDMA(t, n, cx0), "ports/1/state")
	writeFile(t, state, "1: DOWN\n")
	before := e.m.scans.Load()
	e.m.Rescan()
	for e.m.scans.Load() <= before {
		if time.Now().After(deadline.Add(wait)) {
			t.Fatal("no rescan")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := e.kubelet.Plugin(res); s.Healthy() != 2 {
		t.Errorf("port DOWN: %v, want both units still Healthy", s)
	}

	n.RemoveRDMA(pfRDMA(t, n, cx0))
	e.kubelet.Wait(res, wait, "no units without an HCA", func(s kubelettest.Snapshot) bool { return len(s.IDs()) == 0 })
}

// rdmaHcaMax 0 (or none) in k8s-rdma-shared-dev-plugin's format: that
// plugin accepts it and registers the resource with no units, even with
// HCAs selected. So does sluice, rather than refusing the config.
func TestWholeSetZeroMaxAdvertisesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry map[string]any
	}{
		{"rdmaHcaMax 0", map[string]any{"resourceName": "hca", "rdmaHcaMax": 0, "selectors": map[string]any{"vendors": []string{"15b3"}}}},
		{"rdmaHcaMax absent", map[string]any{"resourceName": "hca", "selectors": map[string]any{"vendors": []string{"15b3"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := twoNICNode(t, 1)
			e := newEnv(t, n, map[string]any{"configList": []any{tc.entry}}, func(o *Options) { o.ResourcePrefix = "rdma" })
			const res = "rdma/hca"
			e.kubelet.Wait(res, wait, "registered with no units", func(s kubelettest.Snapshot) bool { return len(s.IDs()) == 0 })
			if err := e.m.ConfigError(); err != nil {
				t.Fatalf("config refused: %v", err)
			}
			if _, err := e.kubelet.Allocate(context.Background(), res, "0"); err == nil {
				t.Error("allocating unit 0 of a pool with rdmaHcaMax 0 succeeded")
			}
		})
	}
}
