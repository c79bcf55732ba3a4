package deviceplugin

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	"github.com/sluice-net/sluice/host/hosttest"
	"github.com/vishvananda/netlink"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Addresses of the fake node's PFs.
const (
	cx0  = "0000:3b:00.0" // ens1f0, ConnectX-6, NUMA 0
	cx1  = "0000:3b:00.1" // ens1f1, ConnectX-6, NUMA 0
	e810 = "0000:86:00.0" // ens2f0, E810, NUMA 1
)

// twoNICNode has two ConnectX-6 PFs on NUMA 0 and an E810 on NUMA 1, each
// with vfs VFs.
func twoNICNode(t *testing.T, vfs int) *hosttest.Node {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx0, "ens1f0", 0))
	n.AddPF(hosttest.ConnectX6(cx1, "ens1f1", 0))
	n.AddPF(hosttest.E810(e810, "ens2f0", 1))
	for _, pf := range []string{cx0, cx1, e810} {
		n.SetNumVFs(pf, vfs)
	}
	return n
}

// wait bounds set-up steps (timed steps use their own bound). make test
// runs these tests at nice 19 beside the real-cluster node, whose QEMU
// can keep both cores busy for seconds at a time.
const wait = 30 * time.Second

func TestRegistersEveryPoolWithTopology(t *testing.T) {
	n := twoNICNode(t, 4)
	e := newEnv(t, n, native(
		pool("rdma_a", map[string]any{"deviceType": "netdevice", "selectors": map[string]any{"pfNames": []string{"ens1f0", "ens1f1"}, "isRdma": true}}),
		pool("intel", map[string]any{"deviceType": "netdevice", "selectors": map[string]any{"rootDevices": []string{e810}}}),
	))
	s := e.kubelet.Wait("sluice.dev/rdma_a", wait, "8 healthy VFs", allHealthy(8))
	for _, d := range s.Devices {
		if d.Topology == nil || len(d.Topology.Nodes) != 1 || d.Topology.Nodes[0].ID != 0 {
			t.Errorf("rdma_a device %s topology = %v, want NUMA 0", d.ID, d.Topology)
		}
	}
	want := []string{n.VFAddress(cx0, 0), n.VFAddress(cx0, 1), n.VFAddress(cx0, 2), n.VFAddress(cx0, 3),
		n.VFAddress(cx1, 0), n.VFAddress(cx1, 1), n.VFAddress(cx1, 2), n.VFAddress(cx1, 3)}
	slices.Sort(want)
	if got := s.IDs(); !slices.Equal(got, want) {
		t.Errorf("rdma_a IDs = %v, want the VF addresses %v", got, want)
	}
	s = e.kubelet.Wait("sluice.dev/intel", wait, "4 healthy VFs", allHealthy(4))
	if d := s.Devices[0]; d.Topology == nil || d.Topology.Nodes[0].ID != 1 {
		t.Errorf("intel device topology = %v, want NUMA 1", d.Topology)
	}
	if got := e.kubelet.Plugins(); !slices.Equal(got, []string{"sluice.dev/intel", "sluice.dev/rdma_a"}) {
		t.Errorf("registered = %v", got)
	}
	if !fileExists(filepath.Join(e.kubelet.Dir, "sluice-sluice.dev_rdma_a.sock")) {
		t.Error("rdma_a socket not in the kubelet directory")
	}
	counts := e.m.Counts()
	if len(counts) != 2 || counts[1] != (PoolCount{Resource: "sluice.dev/rdma_a", Advertised: 8, Healthy: 8}) {
		t.Errorf("Counts = %+v", counts)
	}
}

func TestRegistrationAsksForPreferredAllocation(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}})))
	s := e.kubelet.Wait("sluice.dev/a", wait, "registered", allHealthy(1))
	if s.Options == nil || !s.Options.GetPreferredAllocationAvailable || s.Options.PreStartRequired {
		t.Errorf("registration options = %v, want GetPreferredAllocationAvailable only", s.Options)
	}
	if s.Endpoint != "sluice-sluice.dev_a.sock" {
		t.Errorf("endpoint = %q", s.Endpoint)
	}
}

func TestNewVFsAppearWithoutRestart(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("intel", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}})))
	e.kubelet.Wait("sluice.dev/intel", wait, "2 VFs", allHealthy(2))
	n.SetNumVFs(e810, 0)
	n.SetNumVFs(e810, 6)
	e.links.fire("ens2f0v5")
	s := e.kubelet.Wait("sluice.dev/intel", time.Second, "6 VFs after the PF got more", allHealthy(6))
	if len(s.Registrations) != 1 || !s.Streaming || s.Lists < 2 {
		t.Errorf("the plugin was restarted instead of updated: %s", s)
	}
	if d := s.Device(n.VFAddress(e810, 5)); d == nil {
		t.Errorf("VF 5 (%s) not advertised: %s", n.VFAddress(e810, 5), s)
	}
}

func TestConfigReplacedByRenameStartsAndStopsPools(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("old", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}})))
	e.kubelet.Wait("sluice.dev/old", wait, "old pool", allHealthy(2))

	e.writeConfig(native(pool("new", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0#0-0"}}})))
	s := e.kubelet.Wait("sluice.dev/new", time.Second, "new pool registered", allHealthy(1))
	if s.Devices[0].ID != n.VFAddress(cx0, 0) {
		t.Errorf("new pool = %s, want VF 0 of ens1f0 only", s)
	}
	e.kubelet.WaitGone("sluice.dev/old", time.Second)
	if fileExists(filepath.Join(e.kubelet.Dir, socketName("sluice.dev/old"))) {
		t.Error("the removed pool's socket is still there")
	}
}

func TestInvalidConfigKeepsTheLastGoodOne(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}})))
	e.kubelet.Wait("sluice.dev/a", wait, "pool a", allHealthy(2))

	e.writeConfig([]byte(`{"pools":[{"resourceName":"b","selectors":{"vendor":["8086"]}}]}`))
	err := pollErr(t, e.m.ConfigError, func(err error) bool { return err != nil })
	if !strings.Contains(err.Error(), `pools[0].selectors.vendor`) || !strings.Contains(err.Error(), `did you mean "vendors"`) {
		t.Errorf("ConfigError = %v, want it to name pools[0].selectors.vendor and suggest vendors", err)
	}
	// Still serving a, and b never appeared.
	n.SetNumVFs(e810, 0)
	n.SetNumVFs(e810, 3)
	e.rescan()
	e.kubelet.Wait("sluice.dev/a", time.Second, "pool a still served and updated", allHealthy(3))
	if s := e.kubelet.Plugin("sluice.dev/b"); s.Registered {
		t.Error("the invalid config's pool was registered")
	}

	e.writeConfig(native(pool("b", map[string]any{"selectors": map[string]any{"vendors": []string{"8086"}}})))
	e.kubelet.Wait("sluice.dev/b", time.Second, "pool b from the fixed config", allHealthy(3))
	if err := e.m.ConfigError(); err != nil {
		t.Errorf("ConfigError after a valid config = %v", err)
	}
}

func pollErr(t *testing.T, get func() error, cond func(error) bool) error {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := get()
		if cond(err) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v; last: %v", wait, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReadinessGate(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0", "ens1f1"}}})))
	e.kubelet.Wait("sluice.dev/a", wait, "both PFs ready", allHealthy(4))

	e.setGate(cx1)
	s := e.kubelet.Wait("sluice.dev/a", time.Second, "only ens1f1's VFs", allHealthy(2))
	for _, id := range s.IDs() {
		if id != n.VFAddress(cx1, 0) && id != n.VFAddress(cx1, 1) {
			t.Errorf("advertised %s, whose PF is not in the gate", id)
		}
	}
	e.setGate()
	e.kubelet.Wait("sluice.dev/a", time.Second, "no VF with a closed gate", allHealthy(0))
	e.setGate(cx0, cx1)
	e.kubelet.Wait("sluice.dev/a", time.Second, "all VFs again", allHealthy(4))
}

func TestNoGateFileAdvertisesNothing(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})),
		func(o *Options) { o.ReadinessFile = filepath.Join(t.TempDir(), "none", "readiness.json") })
	e.kubelet.Wait("sluice.dev/a", wait, "registered with nothing", func(s kubelettest.Snapshot) bool { return s.Streaming && len(s.Devices) == 0 })
}

func TestStandaloneWithoutGate(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})),
		func(o *Options) { o.ReadinessFile = "" })
	e.kubelet.Wait("sluice.dev/a", wait, "VFs advertised without a gate", allHealthy(2))
}

func TestHealth(t *testing.T) {
	n := twoNICNode(t, 4)
	e := newEnv(t, n, native(pool("rdma", map[string]any{"deviceType": "netdevice", "selectors": map[string]any{"pfNames": []string{"ens1f0", "ens1f1"}, "isRdma": true}})))
	const res = "sluice.dev/rdma"
	e.kubelet.Wait(res, wait, "8 healthy", allHealthy(8))
	vf := func(pf string, i int) string { return n.VFAddress(pf, i) }

	t.Run("netdev vanished", func(t *testing.T) {
		name := n.Netdev(vf(cx0, 0))
		n.RemoveNetdev(name)
		e.links.fire(name)
		e.kubelet.Wait(res, time.Second, "VF without netdev Unhealthy", health(vf(cx0, 0), pluginapi.Unhealthy))
		n.RestoreNetdev(vf(cx0, 0), name)
		e.links.fire(name)
		e.kubelet.Wait(res, time.Second, "netdev back, Healthy", allHealthy(8))
	})

	t.Run("netdev moved into a pod", func(t *testing.T) {
		moved, broken := n.Netdev(vf(cx0, 1)), n.Netdev(vf(cx0, 2))
		e.attach(vf(cx0, 1), moved)
		n.RemoveNetdev(moved)
		n.RemoveNetdev(broken)
		e.links.fire(moved)
		// The scan that marks the unattached VF also saw the attached one.
		s := e.kubelet.Wait(res, time.Second, "unattached VF Unhealthy", health(vf(cx0, 2), pluginapi.Unhealthy))
		if d := s.Device(vf(cx0, 1)); d == nil || d.Health != pluginapi.Healthy {
			t.Errorf("VF whose netdev the CNI moved into a pod: %v, want Healthy", d)
		}
		n.RestoreNetdev(vf(cx0, 1), moved)
		n.RestoreNetdev(vf(cx0, 2), broken)
		e.links.fire(broken)
		e.kubelet.Wait(res, time.Second, "all healthy", allHealthy(8))
	})

	t.Run("PF lost carrier", func(t *testing.T) {
		n.SetCarrier("ens1f0", false)
		e.links.fire("ens1f0")
		s := e.kubelet.Wait(res, time.Second, "ens1f0's VFs Unhealthy", func(s kubelettest.Snapshot) bool { return s.Healthy() == 4 })
		for i := range 4 {
			if d := s.Device(vf(cx0, i)); d.Health != pluginapi.Unhealthy {
				t.Errorf("VF %d of the PF without carrier is %s", i, d.Health)
			}
			if d := s.Device(vf(cx1, i)); d.Health != pluginapi.Healthy {
				t.Errorf("VF %d of the other PF is %s", i, d.Health)
			}
		}
		n.SetCarrier("ens1f0", true)
		e.links.fire("ens1f0")
		e.kubelet.Wait(res, time.Second, "carrier back", allHealthy(8))
	})

	t.Run("VF link disabled on the PF", func(t *testing.T) {
		pf, err := n.LinkByName("ens1f1")
		if err != nil {
			t.Fatal(err)
		}
		if err := n.LinkSetVfState(pf, 2, netlink.VF_LINK_STATE_DISABLE); err != nil {
			t.Fatal(err)
		}
		e.links.fire("ens1f1")
		e.kubelet.Wait(res, time.Second, "VF 2 of ens1f1 Unhealthy", health(vf(cx1, 2), pluginapi.Unhealthy))
		if err := n.LinkSetVfState(pf, 2, netlink.VF_LINK_STATE_AUTO); err != nil {
			t.Fatal(err)
		}
		e.links.fire("ens1f1")
		e.kubelet.Wait(res, time.Second, "link state auto again", allHealthy(8))
	})

	t.Run("RDMA device vanished without any event", func(t *testing.T) {
		addr := vf(cx1, 3)
		rdma := n.RDMADevice(addr)
		start := time.Now()
		n.RemoveRDMA(rdma)
		e.kubelet.Wait(res, time.Second, "VF without its RDMA device Unhealthy", health(addr, pluginapi.Unhealthy))
		t.Logf("RDMA loss reported after %v", time.Since(start))
		// Soft-RoCE on the VF's netdev gives it an RDMA device again.
		n.AddRxe("rxe_"+rdma, n.Netdev(addr))
		e.kubelet.Wait(res, time.Second, "RDMA device back", allHealthy(8))
	})

	t.Run("RDMA port not ACTIVE", func(t *testing.T) {
		addr := vf(cx0, 3)
		state := filepath.Join(n.Root, "sys/class/infiniband", n.RDMADevice(addr), "ports/1/state")
		writeFile(t, state, "1: DOWN\n")
		e.kubelet.Wait(res, time.Second, "VF with its RDMA port DOWN Unhealthy", health(addr, pluginapi.Unhealthy))
		writeFile(t, state, "4: ACTIVE\n")
		e.kubelet.Wait(res, time.Second, "port ACTIVE again", allHealthy(8))
	})
}

func TestHealthWrongDriver(t *testing.T) {
	n := twoNICNode(t, 2)
	n.AddDriver("vfio-pci")
	h := n.Host()
	ctx := context.Background()
	for i := range 2 {
		if err := h.BindDriver(ctx, n.VFAddress(e810, i), "vfio-pci"); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, n, native(pool("dpdk", map[string]any{"deviceType": "vfio-pci", "selectors": map[string]any{"rootDevices": []string{e810}}})))
	e.kubelet.Wait("sluice.dev/dpdk", wait, "2 vfio VFs", allHealthy(2))
	if err := h.BindDriver(ctx, n.VFAddress(e810, 1), ""); err != nil {
		t.Fatal(err)
	}
	e.links.fire(n.Netdev(n.VFAddress(e810, 1)))
	e.kubelet.Wait("sluice.dev/dpdk", time.Second, "VF back on iavf Unhealthy in a vfio-pci pool", health(n.VFAddress(e810, 1), pluginapi.Unhealthy))
}

func TestKubeletRestartReregistersWithinASecond(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(
		pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}}),
		pool("b", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}}),
	))
	for _, r := range []string{"sluice.dev/a", "sluice.dev/b"} {
		e.kubelet.Wait(r, wait, "registered", allHealthy(2))
	}
	if err := e.kubelet.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"sluice.dev/a", "sluice.dev/b"} {
		s := e.kubelet.Wait(r, time.Second, "registered again with its devices", func(s kubelettest.Snapshot) bool {
			return s.Registered && s.Streaming && len(s.Devices) == 2
		})
		if s.Healthy() != 2 {
			t.Errorf("%s after restart: %s", r, s)
		}
		if !fileExists(filepath.Join(e.kubelet.Dir, socketName(r))) {
			t.Errorf("%s socket not recreated", r)
		}
		// The wiped socket and the new kubelet.sock both ask for a
		// registration: one is sent. A second one, to a kubelet already
		// streaming from that socket, is refused and, in the real kubelet
		// (1.37), leaves an endpoint it never cleans up.
		if n := len(s.Registrations); n != 1 {
			t.Errorf("%s registered %d times with the restarted kubelet, want 1", r, n)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := e.kubelet.Refused(); n != 0 {
		t.Errorf("%d registrations refused as already connected", n)
	}
}

// TestLateRegistrationAnswerNotResent: on a busy node the kubelet answers
// Register after the plugin stopped waiting, though it registered the pool
// and streams from its socket (measured on the real-cluster node: answers
// after 6 s against a 5 s deadline, then a resync sent the registration
// again and the kubelet 1.37 refused it as "already connected"). The
// stream tells the plugin it was accepted: nothing is sent again.
func TestLateRegistrationAnswerNotResent(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})),
		func(o *Options) { o.RegisterTimeout = 200 * time.Millisecond })
	e.kubelet.Wait("sluice.dev/a", wait, "registered", allHealthy(1))
	// The kubelet restarts, busy: its answers come a second late.
	e.kubelet.SetReplyDelay(time.Second)
	if err := e.kubelet.Restart(); err != nil {
		t.Fatal(err)
	}
	e.kubelet.Wait("sluice.dev/a", wait, "registered and streaming", func(s kubelettest.Snapshot) bool {
		return s.Registered && s.Streaming && len(s.Devices) == 1
	})
	time.Sleep(1200 * time.Millisecond) // the late answer arrives
	e.m.reregister(context.Background(), true)
	e.rescan()
	time.Sleep(1500 * time.Millisecond)
	s := e.kubelet.Plugin("sluice.dev/a")
	if n := len(s.Registrations); n != 1 || e.kubelet.Refused() != 0 {
		t.Errorf("registered %d times, %d refused as already connected; want once, none refused", n, e.kubelet.Refused())
	}
	if !s.Streaming || len(s.Devices) != 1 {
		t.Errorf("after the late answer: %s", s)
	}
}

// TestRegistersWithAKubeletStillStarting: a starting kubelet binds
// kubelet.sock before it listens on it, and the create event can reach the
// plugin in between (it did under make test's load: both registrations
// were refused, and the pool waited for the next resync). The plugin tries
// again shortly.
func TestRegistersWithAKubeletStillStarting(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})))
	e.kubelet.Wait("sluice.dev/a", wait, "registered", allHealthy(1))
	e.kubelet.SetListenDelay(500 * time.Millisecond)
	if err := e.kubelet.Restart(); err != nil {
		t.Fatal(err)
	}
	e.kubelet.Wait("sluice.dev/a", wait, "registered again without a resync", func(s kubelettest.Snapshot) bool {
		return s.Registered && s.Streaming && len(s.Devices) == 1
	})
}

func TestStopRemovesSockets(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})))
	e.kubelet.Wait("sluice.dev/a", wait, "registered", allHealthy(1))
	e.stop()
	if fileExists(filepath.Join(e.kubelet.Dir, socketName("sluice.dev/a"))) {
		t.Error("socket left after Run returned")
	}
}
