package host_test

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/sluice-net/sluice/host"
)

// netnsPair is two fresh namespaces, "node" and "pod", open as host.Netns.
func netnsPair(t *testing.T) (ns.NetNS, *host.Netns, *host.Netns) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veth links")
	}
	open := func() (ns.NetNS, *host.Netns) {
		n, err := testutils.NewNS()
		if err != nil {
			t.Fatalf("create network namespace: %v", err)
		}
		h, err := host.OpenNetns(n.Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			h.Close()
			n.Close()
			_ = testutils.UnmountNS(n)
		})
		return n, h
	}
	nodeNS, node := open()
	_, pod := open()
	return nodeNS, node, pod
}

func addVeth(t *testing.T, in ns.NetNS, name string, up bool) {
	t.Helper()
	if err := in.Do(func(ns.NetNS) error {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU = name, 1500
		la.HardwareAddr, _ = net.ParseMAC("02:00:00:00:00:aa")
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
			return err
		}
		if !up {
			return nil
		}
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestMoveNetdevAndBack(t *testing.T) {
	nodeNS, node, pod := netnsPair(t)
	addVeth(t, nodeNS, "vf0", true)
	before, err := node.Netdev("vf0")
	if err != nil {
		t.Fatal(err)
	}
	if !before.Up || before.MTU != 1500 || before.MAC != "02:00:00:00:00:aa" {
		t.Fatalf("Netdev = %+v", before)
	}
	name, err := host.MoveNetdev(node, "vf0", pod, "net1")
	if err != nil || name != "net1" {
		t.Fatalf("MoveNetdev = %q, %v", name, err)
	}
	if _, err := node.Netdev("vf0"); !errors.Is(err, host.ErrNotFound) {
		t.Errorf("vf0 still in the node namespace: %v", err)
	}
	if err := pod.SetNetdevMTU("net1", 1400); err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:00:00:00:00:bb")
	if err := pod.SetNetdevMAC("net1", mac); err != nil {
		t.Fatal(err)
	}
	if err := pod.SetNetdevUp("net1", true); err != nil {
		t.Fatal(err)
	}
	if st, _ := pod.Netdev("net1"); st.MTU != 1400 || st.MAC != "02:00:00:00:00:bb" || !st.Up {
		t.Errorf("in the pod: %+v", st)
	}
	// Back under the name it had in the pod: the node has no net1.
	name, err = host.MoveNetdev(pod, "net1", node, "")
	if err != nil || name != "net1" {
		t.Fatalf("MoveNetdev back under its own name = %q, %v", name, err)
	}
	if err := node.RestoreNetdev(name, before); err != nil {
		t.Fatal(err)
	}
	if st, err := node.Netdev("vf0"); err != nil || st != before {
		t.Errorf("restored = %+v %v, want %+v", st, err, before)
	}
}

// TestMoveNetdevThroughTemporaryName: the pod already has a netdev with
// the VF's host name, so the VF travels under a temporary name and then
// takes the requested one; moving it back with no name keeps the
// temporary one while the node's name is taken.
func TestMoveNetdevThroughTemporaryName(t *testing.T) {
	nodeNS, node, pod := netnsPair(t)
	addVeth(t, nodeNS, "vf0", true)
	podNS, err := ns.GetNS(pod.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer podNS.Close()
	addVeth(t, podNS, "vf0", false)
	podVF0 := func() int {
		idx := 0
		_ = podNS.Do(func(ns.NetNS) error {
			l, err := netlink.LinkByName("vf0")
			if err == nil {
				idx = l.Attrs().Index
			}
			return err
		})
		return idx
	}
	own := podVF0()
	name, err := host.MoveNetdev(node, "vf0", pod, "net1")
	if err != nil || name != "net1" {
		t.Fatalf("MoveNetdev with the host name taken in the pod = %q, %v", name, err)
	}
	if got := podVF0(); got == 0 || got != own {
		t.Errorf("the pod's own vf0 is now ifindex %d, was %d", got, own)
	}
	addVeth(t, nodeNS, "net1", false)
	name, err = host.MoveNetdev(pod, "net1", node, "")
	if err != nil || name == "net1" || !strings.HasPrefix(name, "sl") {
		t.Fatalf("MoveNetdev back with net1 taken on the node = %q, %v; want a temporary name", name, err)
	}
}

func TestMoveNetdevUndoesWhenNameTaken(t *testing.T) {
	nodeNS, node, pod := netnsPair(t)
	addVeth(t, nodeNS, "vf0", true)
	// The pod has both the VF's host name (no problem: the move goes
	// through a temporary name) and the requested name (a failure).
	podNS, err := ns.GetNS(pod.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer podNS.Close()
	addVeth(t, podNS, "vf0", false)
	addVeth(t, podNS, "net1", false)
	_, err = host.MoveNetdev(node, "vf0", pod, "net1")
	if !errors.Is(err, host.ErrNameInUse) {
		t.Fatalf("MoveNetdev onto a taken name = %v, want ErrNameInUse", err)
	}
	st, err := node.Netdev("vf0")
	if err != nil || !st.Up {
		t.Errorf("after the failed move the netdev is %+v, %v; want it back, up", st, err)
	}
}

func TestNetdevErrors(t *testing.T) {
	_, node, _ := netnsPair(t)
	if _, err := node.Netdev("nosuch0"); !errors.Is(err, host.ErrNotFound) {
		t.Errorf("Netdev of a missing link = %v", err)
	}
	if err := node.RenameNetdev("nosuch0", "x"); !errors.Is(err, host.ErrNotFound) {
		t.Errorf("RenameNetdev of a missing link = %v", err)
	}
	if _, err := host.OpenNetns("/var/run/netns/sluice-no-such-namespace"); !errors.Is(err, host.ErrNotFound) {
		t.Errorf("OpenNetns of a missing path = %v", err)
	}
}

func TestMoveRDMADeviceWithoutRDMACore(t *testing.T) {
	// This kernel has no RDMA core: the error says so instead of hanging
	// or panicking. (Real moves are exercised on the emulated node.)
	if _, err := os.Stat("/sys/class/infiniband"); err == nil {
		t.Skip("this kernel has an RDMA core")
	}
	_, node, pod := netnsPair(t)
	h := host.New(host.NodePaths())
	err := h.MoveRDMADevice(node, "mlx5_0", pod)
	var se *host.StepError
	if !errors.As(err, &se) || se.Device != "mlx5_0" {
		t.Errorf("MoveRDMADevice = %v, want a StepError naming the device", err)
	}
}
