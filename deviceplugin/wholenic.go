package deviceplugin

import (
	"fmt"
	"strings"

	"github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
)

// Network functions served whole, as sriov-network-device-plugin serves
// them in netDevice pools: a NIC that is not SR-IOV capable, and an SR-IOV
// PF with no VFs (never one with VFs: its VFs are the devices then). The
// device ID is the function's PCI address, as a VF's.
//
// Such a function has no PF, so selectors that name one (pfNames,
// rootDevices) never select it; the others (vendors, devices, drivers,
// pciAddresses, linkTypes, isRdma) apply to the function itself. The
// node's uplink, whose netdev carries a default route, is never served.

// wholeFunctions lists the snapshot's functions that may be served whole.
func wholeFunctions(snap *host.Snapshot) []*host.PF {
	var out []*host.PF
	for i := range snap.PFs {
		if pf := &snap.PFs[i]; len(pf.VFs) == 0 && pf.NumVFs == 0 {
			out = append(out, pf)
		}
	}
	for i := range snap.NICs {
		out = append(out, &snap.NICs[i])
	}
	return out
}

// servesWhole reports whether a pool may hold whole functions: VF pools
// of network devices. Accelerator pools select accelerators' VFs, and a
// soft-RoCE pool's devices are VFs sluice-cni attaches.
func (p *Pool) servesWhole() bool { return !p.Shared() && !p.Accelerator && !p.SoftRoCE }

func (p *Pool) matchesWhole(f *host.PF, inPool bool) bool {
	for i := range p.Selectors {
		if p.Selectors[i].matchWhole(f, inPool) {
			return true
		}
	}
	return false
}

// matchWhole reports whether a function served whole belongs to a pool by
// this selector, with the same rule for attributes a failure takes away as
// matchVF.
func (s *Selector) matchWhole(f *host.PF, inPool bool) bool {
	if len(s.PFNames) > 0 || len(s.RootDevices) > 0 {
		return false
	}
	if !matchExact(s.Vendors, f.Vendor) || !matchExact(s.Devices, f.Device) || !matchExact(s.PCIAddresses, f.PCIAddress) {
		return false
	}
	if !matchAbsent(s.Drivers, f.Driver, inPool) || !matchAbsent(s.LinkTypes, f.LinkType, inPool) ||
		!matchAbsent(s.IfNames, f.Name, inPool) {
		return false
	}
	return !s.RDMA || f.RDMA != nil || inPool
}

// wholeDevices are a pool's functions served whole.
func wholeDevices(in scanInput, p *Pool, before map[string]*Device) []Device {
	if !p.servesWhole() {
		return nil
	}
	var devs []Device
	for _, f := range wholeFunctions(in.snap) {
		if f.DefaultRoute {
			continue
		}
		old := before[f.PCIAddress]
		if !p.matchesWhole(f, old != nil) {
			continue
		}
		d := Device{
			ID: f.PCIAddress, NUMANode: f.NUMANode, PCIAddress: f.PCIAddress, VFIndex: -1, Netdev: f.Name,
			Driver: f.Driver, IOMMUGroup: f.IOMMUGroup, UIO: f.UIO, NoIOMMU: f.NoIOMMU, Group: f.PCIAddress,
			PCIeRoot: f.PCIeRoot, Vendor: f.Vendor, DeviceID: f.Device, LinkType: f.LinkType, MTU: f.MTU,
		}
		if p.RDMA {
			d.RDMA = rdmaInfo(f.RDMA)
			if d.RDMA == nil && old != nil {
				d.RDMA = old.RDMA // keep watching the one that vanished
			}
		}
		reasons := wholeHealth(p, f, old)
		d.Healthy, d.Reason = len(reasons) == 0, strings.Join(reasons, "; ")
		devs = append(devs, d)
	}
	return devs
}

// wholeHealth lists why a function served whole cannot be used now. As
// sriov-network-device-plugin, a netdev that is not in the node's
// namespace is no failure: the CNI that attaches a whole function
// (host-device) moves it into the pod, and its RDMA device with it.
func wholeHealth(p *Pool, f *host.PF, old *Device) []string {
	var reasons []string
	switch {
	case f.Driver == "":
		reasons = append(reasons, "the function is bound to no driver")
	case p.Driver == v1alpha1.DeviceTypeVfioPci && f.Driver != vfioDriver:
		reasons = append(reasons, fmt.Sprintf("the function is bound to %s, the pool wants vfio-pci", f.Driver))
	case p.Driver == v1alpha1.DeviceTypeNetdevice && userspaceDriver(f.Driver):
		reasons = append(reasons, fmt.Sprintf("the function is bound to %s, the pool wants its network driver", f.Driver))
	}
	if f.Name != "" && !f.Carrier {
		reasons = append(reasons, fmt.Sprintf("%s has no carrier (link %s)", f.Name, f.OperState))
	}
	if p.RDMA {
		switch {
		case f.RDMA != nil:
			if !f.RDMA.Active() {
				reasons = append(reasons, fmt.Sprintf("RDMA device %s has no ACTIVE port (%s)", f.RDMA.Name, portList(f.RDMA)))
			}
		case f.Name == "":
			// Moved into a pod with its netdev.
		case old != nil && old.RDMA != nil:
			reasons = append(reasons, fmt.Sprintf("RDMA device %s vanished", old.RDMA.Name))
		default:
			reasons = append(reasons, "the function has no RDMA device")
		}
	}
	return reasons
}

// userspaceDriver: a driver under which a function has no netdev.
func userspaceDriver(driver string) bool {
	return userspaceDrivers[driver] || strings.Contains(driver, "uio")
}

// Device nodes of functions on userspace drivers, as
// sriov-network-device-plugin hands them out: /dev/uioN for a uio driver,
// and for vfio-pci without an IOMMU the host's /dev/vfio/noiommu-N at the
// container's /dev/vfio/N, where DPDK opens a group first.

// uioNode is the device's uio device node, empty if none.
func (d *Device) uioNode() string {
	if d.UIO == "" {
		return ""
	}
	return "/dev/" + d.UIO
}

// hostNode is the host path of a device node the container sees at n.
func (d *Device) hostNode(n string) string {
	if d.NoIOMMU && d.IOMMUGroup != "" && n == "/dev/vfio/"+d.IOMMUGroup {
		return "/dev/vfio/noiommu-" + d.IOMMUGroup
	}
	return n
}

// presentRDMA adds the RDMA devices of the functions served whole to an
// index of the node's RDMA devices.
func presentRDMA(snap *host.Snapshot, present map[string]*host.RDMADevice) {
	for i := range snap.NICs {
		if r := snap.NICs[i].RDMA; r != nil {
			present[r.Name] = r
		}
	}
}
