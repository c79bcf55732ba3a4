package host_test

import (
	"context"
	"testing"

	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

// The filter keeps the events of the discovered PFs, VFs and NICs without
// SR-IOV and of new SR-IOV netdevs, and drops software links and the
// node's uplink, whether the kernel names the netdev's device in the
// message or sysfs has to.
func TestLinkFilter(t *testing.T) {
	const pf, other, nic, whole = "0000:3b:00.0", "0000:3b:00.1", "0000:02:00.0", "0000:02:00.1"
	n := hosttest.New(t)
	n.AddPF(hosttest.E810(pf, "ens1f0", 0))
	n.AddPF(hosttest.E810(other, "ens1f1", 0))
	n.AddNIC(nic, "eno1", "igb")
	n.SetDefaultRoute("eno1", true)
	n.AddNIC(whole, "eno2", "igb")
	n.SetNumVFs(pf, 2)
	n.Wait()
	h := n.Host()
	f := h.NewLinkFilter()
	snap, err := h.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.Update(snap)
	vf0, vf1 := n.VFAddress(pf, 0), n.VFAddress(pf, 1)
	vf0Name := n.Netdev(vf0)
	// VFs created after the discovery: their netdevs are new to the filter.
	n.SetNumVFs(other, 1)
	n.Wait()
	newVF := n.VFAddress(other, 0)
	newVFName := n.Netdev(newVF)
	if vf0Name == "" || newVFName == "" {
		t.Fatalf("fake VFs without netdevs: %q, %q", vf0Name, newVFName)
	}

	for _, c := range []struct {
		what string
		ev   host.LinkEvent
		want bool
	}{
		{"PF", host.LinkEvent{Name: "ens1f0", Kind: "device", ParentBus: "pci", ParentDev: pf}, true},
		{"PF, kernel without parent names", host.LinkEvent{Name: "ens1f0", Kind: "device"}, true},
		{"VF netdev", host.LinkEvent{Name: vf0Name, Kind: "device", ParentBus: "pci", ParentDev: vf0}, true},
		{"VF netdev gone into a pod", host.LinkEvent{Name: vf0Name, Kind: "device", Deleted: true}, true},
		{"VF netdev back from a pod under another name", host.LinkEvent{Name: "net1", Kind: "device", ParentBus: "pci", ParentDev: vf1}, true},
		{"new VF netdev", host.LinkEvent{Name: newVFName, Kind: "device", ParentBus: "pci", ParentDev: newVF}, true},
		{"new VF netdev, kernel without parent names", host.LinkEvent{Name: newVFName, Kind: "device"}, true},
		{"pod veth", host.LinkEvent{Name: "veth3a9f0c1e", Kind: "veth"}, false},
		{"pod veth deleted", host.LinkEvent{Name: "veth3a9f0c1e", Kind: "veth", Deleted: true}, false},
		{"bridge", host.LinkEvent{Name: "cni0", Kind: "bridge"}, false},
		{"the node's uplink", host.LinkEvent{Name: "eno1", Kind: "device", ParentBus: "pci", ParentDev: nic}, false},
		{"the node's uplink, kernel without parent names", host.LinkEvent{Name: "eno1", Kind: "device"}, false},
		{"a NIC without SR-IOV a pool may serve whole", host.LinkEvent{Name: "eno2", Kind: "device", ParentBus: "pci", ParentDev: whole}, true},
		{"a NIC without SR-IOV, kernel without parent names", host.LinkEvent{Name: "eno2", Kind: "device"}, true},
		{"a USB NIC", host.LinkEvent{Name: "usb0", Kind: "device", ParentBus: "usb", ParentDev: "1-1:1.0"}, false},
		{"an unknown hardware netdev gone", host.LinkEvent{Name: "eth9", Kind: "device", Deleted: true}, false},
		{"a message without a link", host.LinkEvent{}, false},
	} {
		if got := f.Concerns(c.ev); got != c.want {
			t.Errorf("%s %+v: Concerns = %v, want %v", c.what, c.ev, got, c.want)
		}
	}
}

// Before any discovery, the filter keeps new SR-IOV netdevs and still
// drops software links.
func TestLinkFilterBeforeDiscovery(t *testing.T) {
	const pf = "0000:3b:00.0"
	n := hosttest.New(t)
	n.AddPF(hosttest.E810(pf, "ens1f0", 0))
	f := n.Host().NewLinkFilter()
	if !f.Concerns(host.LinkEvent{Name: "ens1f0", Kind: "device"}) {
		t.Error("PF dropped before the first discovery")
	}
	if f.Concerns(host.LinkEvent{Name: "veth0", Kind: "veth"}) {
		t.Error("veth kept before the first discovery")
	}
}
