package deviceplugin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

func mustParse(t *testing.T, cfg string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(cfg), "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func discover(t *testing.T, n *hosttest.Node) *host.Snapshot {
	t.Helper()
	s, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func devIDs(pd *PoolDevices) []string {
	if pd == nil {
		return nil
	}
	return ids(pd)
}

func TestSharedPoolSelection(t *testing.T) {
	n := twoNICNode(t, 2)
	snap := discover(t, n)
	pfRDMA := snap.PFByAddress(cx0).RDMA.Name
	vfRDMA := func(i int) string { _, vf := snap.VFByAddress(n.VFAddress(cx0, i)); return vf.RDMA.Name }

	for _, tc := range []struct {
		name, cfg string
		want      []string
	}{
		{"pfNames without VFs: the PF's device",
			`{"pools":[{"resourceName":"s","rdmaHcaMax":2,"selectors":{"pfNames":["ens1f0"]}}]}`,
			[]string{pfRDMA + "-0", pfRDMA + "-1"}},
		{"pfNames with VFs: those VFs' devices",
			`{"pools":[{"resourceName":"s","rdmaHcaMax":1,"selectors":{"pfNames":["ens1f0#1-1"]}}]}`,
			[]string{vfRDMA(1) + "-0"}},
		{"rootDevices: the PF's device",
			`{"pools":[{"resourceName":"s","rdmaHcaMax":1,"selectors":{"rootDevices":["` + cx0 + `"]}}]}`,
			[]string{pfRDMA + "-0"}},
		// k8s-rdma-shared-dev-plugin's format shares the whole set: its
		// units are "0".."rdmaHcaMax-1" and the set is the pool's members.
		{"k8s-rdma-shared-dev-plugin ifNames: that netdev's device",
			`{"configList":[{"resourceName":"s","rdmaHcaMax":1,"selectors":{"ifNames":["ens1f0v0"]}}]}`,
			[]string{"member " + vfRDMA(0)}},
		{"vendor and device IDs: PFs only (VFs have another device ID)",
			`{"configList":[{"resourceName":"s","rdmaHcaMax":1,"selectors":{"vendors":["15b3"],"deviceIDs":["101d"]}}]}`,
			[]string{"member " + pfRDMA, "member " + snap.PFByAddress(cx1).RDMA.Name}},
		{"native whole-set sharing: the same set",
			`{"pools":[{"resourceName":"s","rdmaHcaMax":1,"rdmaSharing":"WholeSet","selectors":{"vendors":["15b3"],"devices":["101d"]}}]}`,
			[]string{"member " + pfRDMA, "member " + snap.PFByAddress(cx1).RDMA.Name}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := buildTree(scanInput{snap: snap, cfg: mustParse(t, tc.cfg)})
			var pd *PoolDevices
			for _, p := range tree.Pools {
				pd = p
			}
			want := slices.Clone(tc.want)
			slices.Sort(want)
			got := devIDs(pd)
			if pd != nil && pd.Pool.WholeSet {
				if !slices.Equal(got, []string{"0"}) {
					t.Errorf("whole-set units = %v, want [0] (rdmaHcaMax 1)", got)
				}
				got = nil
				for _, m := range pd.Members {
					got = append(got, "member "+m.RDMA.Name)
				}
				slices.Sort(got)
			}
			if !slices.Equal(got, want) {
				t.Errorf("IDs = %v, want %v", got, want)
			}
		})
	}
}

func TestGateHidesVFsNotSharedPFs(t *testing.T) {
	n := twoNICNode(t, 2)
	snap := discover(t, n)
	cfg := mustParse(t, `{"configList":[{"resourceName":"s","rdmaHcaMax":1,"selectors":{"vendors":["15b3"]}}]}`)
	closed := buildTree(scanInput{snap: snap, cfg: cfg, gate: &nodefiles.GateState{}})
	open := buildTree(scanInput{snap: snap, cfg: cfg, gate: &nodefiles.GateState{Ready: []string{cx0, cx1}}})
	if got := len(closed.Pools["sluice.dev/s"].Members); got != 2 {
		t.Errorf("closed gate: %d RDMA devices shared, want the 2 PFs' only", got)
	}
	if got := len(open.Pools["sluice.dev/s"].Members); got != 6 {
		t.Errorf("open gate: %d RDMA devices shared, want 2 PFs + 4 VFs", got)
	}
}

func TestFailedAttributesKeepDevicesAsUnhealthy(t *testing.T) {
	n := twoNICNode(t, 2)
	cfg := mustParse(t, `{"pools":[{"resourceName":"a","selectors":{"pfNames":["ens1f0"],"linkTypes":["ether"],"isRdma":true}}]}`)
	snap := discover(t, n)
	first := buildTree(scanInput{snap: snap, cfg: cfg})
	if got := first.Pools["sluice.dev/a"].Healthy(); got != 2 {
		t.Fatalf("first scan: %d healthy, want 2", got)
	}
	vf0 := n.VFAddress(cx0, 0)

	// The PF's netdev vanishes (a driver crash): its name and link type are
	// gone, and VF 0 lost its RDMA device.
	broken := discover(t, n)
	pf := broken.PFByAddress(cx0)
	pf.Name, pf.Link = "", host.Link{}
	for i := range pf.VFs {
		pf.VFs[i].PFName = ""
	}
	_, vf := broken.VFByAddress(vf0)
	vf.RDMA = nil

	// Known devices stay, Unhealthy, with the reasons.
	tree := buildTree(scanInput{snap: broken, cfg: cfg, prev: first})
	pd := tree.Pools["sluice.dev/a"]
	if len(pd.Devices) != 2 || pd.Healthy() != 0 {
		t.Fatalf("after the PF netdev vanished: %+v", pd.Devices)
	}
	d, _ := pd.Device(vf0)
	for _, want := range []string{"PF netdev ens1f0 vanished", "RDMA device " + first.Pools["sluice.dev/a"].Devices[0].RDMA.Name + " vanished"} {
		if !strings.Contains(d.Reason, want) {
			t.Errorf("reason %q does not say %q", d.Reason, want)
		}
	}
	if d.RDMA == nil {
		t.Error("the vanished RDMA device is no longer watched")
	}
	// A fresh start does not take them in.
	if got := devIDs(buildTree(scanInput{snap: broken, cfg: cfg}).Pools["sluice.dev/a"]); len(got) != 0 {
		t.Errorf("first scan of a broken node advertised %v", got)
	}
	// Recovery makes them Healthy again.
	if got := buildTree(scanInput{snap: snap, cfg: cfg, prev: tree}).Pools["sluice.dev/a"].Healthy(); got != 2 {
		t.Errorf("after recovery %d healthy, want 2", got)
	}
}

func TestReconfiguredDevicesLeaveThePool(t *testing.T) {
	n := twoNICNode(t, 2)
	cfg := mustParse(t, `{"resourceList":[{"resourceName":"a","selectors":{"drivers":["iavf"],"pfNames":["ens2f0"]}}]}`)
	snap := discover(t, n)
	first := buildTree(scanInput{snap: snap, cfg: cfg})
	rebound := discover(t, n)
	_, vf := rebound.VFByAddress(n.VFAddress(e810, 1))
	vf.Driver, vf.Netdev = "vfio-pci", ""
	got := devIDs(buildTree(scanInput{snap: rebound, cfg: cfg, prev: first}).Pools["sluice.dev/a"])
	if want := []string{n.VFAddress(e810, 0)}; !slices.Equal(got, want) {
		t.Errorf("after VF 1 was rebound to vfio-pci: %v, want %v", got, want)
	}
}

func TestExcludeTopology(t *testing.T) {
	n := twoNICNode(t, 1)
	snap := discover(t, n)
	for _, exclude := range []bool{false, true} {
		cfg := mustParse(t, `{"resourceList":[{"resourceName":"a","excludeTopology":`+map[bool]string{false: "false", true: "true"}[exclude]+`,"selectors":{"pfNames":["ens2f0"]}}]}`)
		d := buildTree(scanInput{snap: snap, cfg: cfg}).Pools["sluice.dev/a"].apiDevices()[0]
		if (d.Topology == nil) != exclude {
			t.Errorf("excludeTopology=%v: topology %v", exclude, d.Topology)
		}
	}
	// NUMA -1 (unknown) is left out too.
	m := hosttest.New(t)
	m.AddPF(hosttest.IGB("0000:00:03.0", "eth1"))
	m.SetNumVFs("0000:00:03.0", 1)
	cfg := mustParse(t, `{"pools":[{"resourceName":"a","selectors":{"pfNames":["eth1"]}}]}`)
	if d := buildTree(scanInput{snap: discover(t, m), cfg: cfg}).Pools["sluice.dev/a"].apiDevices()[0]; d.Topology != nil {
		t.Errorf("NUMA -1 advertised as %v", d.Topology)
	}
}

func TestIdlePluginDoesNotRescan(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("rdma", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}, "isRdma": true}})))
	e.kubelet.Wait("sluice.dev/rdma", wait, "registered", allHealthy(2))
	before := e.settle()
	time.Sleep(3 * DefaultRDMACheck)
	if after := e.m.scans.Load(); after != before {
		t.Errorf("%d rescans on an idle node over %v (the RDMA check must only rescan on a change)", after-before, 3*DefaultRDMACheck)
	}
}

func TestEventBurstCoalesces(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})))
	e.kubelet.Wait("sluice.dev/a", wait, "registered", allHealthy(2))
	before := e.m.scans.Load()
	start := time.Now()
	for i := range 200 {
		e.links.fire(fmt.Sprintf("veth%d", i))
	}
	elapsed := time.Since(start)
	// The last event is followed by one more scan at most.
	deadline := time.Now().Add(time.Second)
	for e.m.scans.Load() == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	scans := e.m.scans.Load() - before
	// One scan per eventDelay window at most, plus the trailing one.
	limit := int64(elapsed/eventDelay) + 2
	if scans < 1 || scans > limit {
		t.Errorf("200 link events in %v made %d scans, want 1 to %d", elapsed, scans, limit)
	}
	t.Logf("200 link events in %v: %d scans", elapsed, scans)
}
