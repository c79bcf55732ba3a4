package host_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/sluice-net/sluice/host"
)

// addVethAt is addVeth with the netdev's ifindex chosen, so that tests know
// whether it can keep it in the namespace it moves to.
func addVethAt(t *testing.T, in ns.NetNS, name string, index int) {
	t.Helper()
	if err := in.Do(func(ns.NetNS) error {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU, la.Index = name, 1500, index
		la.HardwareAddr, _ = net.ParseMAC("02:00:00:00:00:aa")
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
			return err
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

func podNetNS(t *testing.T, pod *host.Netns) ns.NetNS {
	t.Helper()
	n, err := ns.GetNS(pod.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestAttachNetdev(t *testing.T) {
	nodeNS, node, pod := netnsPair(t)
	addVethAt(t, nodeNS, "vf0", 100)
	mac, _ := net.ParseMAC("02:00:00:00:00:bb")
	if err := host.AttachNetdev(node, "vf0", pod, host.NetdevSettings{Name: "net1", MTU: 1400, MAC: mac, Up: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Netdev("vf0"); !errors.Is(err, host.ErrNotFound) {
		t.Errorf("vf0 still in the node namespace: %v", err)
	}
	want := host.NetdevState{Name: "net1", MAC: "02:00:00:00:00:bb", MTU: 1400, Up: true}
	if st, err := pod.Netdev("net1"); err != nil || st != want {
		t.Errorf("in the pod: %+v %v, want %+v", st, err, want)
	}
}

// TestAttachNetdevHostNameTakenInPod: the pod has a netdev with the VF's
// host name, so the kernel gives the VF its pod name on arrival.
func TestAttachNetdevHostNameTakenInPod(t *testing.T) {
	nodeNS, node, pod := netnsPair(t)
	addVethAt(t, nodeNS, "vf0", 100)
	addVeth(t, podNetNS(t, pod), "vf0", false)
	if err := host.AttachNetdev(node, "vf0", pod, host.NetdevSettings{Name: "net1"}); err != nil {
		t.Fatal(err)
	}
	if st, err := pod.Netdev("net1"); err != nil || st.Up {
		t.Errorf("net1 in the pod: %+v %v, want it there, down (Up not asked)", st, err)
	}
	if st, err := pod.Netdev("vf0"); err != nil || st.Up {
		t.Errorf("the pod's own vf0 changed: %+v %v", st, err)
	}
}

// TestAttachNetdevUndoes: failures after the kernel moved the netdev (its
// pod name taken; an MTU the driver refuses) leave it back on the node as
// it was, and the pod's own netdevs untouched.
func TestAttachNetdevUndoes(t *testing.T) {
	for _, c := range []struct {
		name string
		set  host.NetdevSettings
		// podHas is a netdev the pod already has.
		podHas  string
		wantErr error
	}{
		{"pod name taken", host.NetdevSettings{Name: "net1", MTU: 1400, Up: true}, "net1", host.ErrNameInUse},
		{"MTU refused", host.NetdevSettings{Name: "net1", MTU: 70000, Up: true}, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodeNS, node, pod := netnsPair(t)
			addVethAt(t, nodeNS, "vf0", 100)
			before, err := node.Netdev("vf0")
			if err != nil {
				t.Fatal(err)
			}
			if c.podHas != "" {
				addVeth(t, podNetNS(t, pod), c.podHas, false)
			}
			err = host.AttachNetdev(node, "vf0", pod, c.set)
			if err == nil || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
				t.Fatalf("AttachNetdev = %v, want an error (%v)", err, c.wantErr)
			}
			t.Logf("AttachNetdev: %v", err)
			if st, err := node.Netdev("vf0"); err != nil || st != before {
				t.Errorf("after the failure vf0 is %+v %v, want %+v", st, err, before)
			}
			if c.podHas != "" {
				if st, err := pod.Netdev(c.podHas); err != nil || st.Up || st.MTU != 1500 {
					t.Errorf("the pod's own %s changed: %+v %v", c.podHas, st, err)
				}
			}
		})
	}
}

// TestAttachNetdevBothNamesTaken: the kernel refuses the move and nothing
// changes.
func TestAttachNetdevBothNamesTaken(t *testing.T) {
	nodeNS, node, pod := netnsPair(t)
	addVethAt(t, nodeNS, "vf0", 100)
	podNS := podNetNS(t, pod)
	addVeth(t, podNS, "vf0", false)
	addVeth(t, podNS, "net1", false)
	err := host.AttachNetdev(node, "vf0", pod, host.NetdevSettings{Name: "net1", Up: true})
	if !errors.Is(err, host.ErrNameInUse) {
		t.Fatalf("AttachNetdev = %v, want ErrNameInUse", err)
	}
	if st, err := node.Netdev("vf0"); err != nil || !st.Up {
		t.Errorf("vf0 = %+v %v, want it still on the node, up", st, err)
	}
}

// TestKernelLinkByName: the look-up without VF counters answers as the netlink
// package's does, and says no link by ENODEV.
func TestKernelLinkByName(t *testing.T) {
	nodeNS, _, _ := netnsPair(t)
	addVethAt(t, nodeNS, "vf0", 100)
	if err := nodeNS.Do(func(ns.NetNS) error {
		got, err := host.KernelLinkByName("vf0")
		if err != nil {
			return err
		}
		want, err := netlink.LinkByName("vf0")
		if err != nil {
			return err
		}
		if got.Attrs().Index != want.Attrs().Index || got.Attrs().HardwareAddr.String() != want.Attrs().HardwareAddr.String() || got.Type() != want.Type() {
			t.Errorf("LinkByName = %+v, want %+v", got.Attrs(), want.Attrs())
		}
		if _, err := host.KernelLinkByName("nosuch0"); !errors.Is(err, syscall.ENODEV) {
			t.Errorf("LinkByName of a missing link = %v, want ENODEV", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
