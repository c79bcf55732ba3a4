package deviceplugin

import (
	"slices"

	"github.com/sluice-net/sluice/host"
)

// Matching. Attributes that identify a device (PCI IDs and addresses, the
// PF it hangs off) must always match. Attributes that a failure takes away
// (the PF's netdev and so its name and link type, the driver binding, the
// RDMA device) must match for a device to join a pool; once it is in the
// pool, their absence keeps it there as Unhealthy instead of making it
// vanish, so the kubelet sees a sick device rather than a shrinking pool.
// A different value (a renamed PF, a VF rebound to another driver) is a
// reconfiguration and takes the device out.

// matchAbsent is an attribute match where an empty value counts as a match
// for a device already in the pool.
func matchAbsent(list []string, v string, inPool bool) bool {
	if len(list) == 0 {
		return true
	}
	if v == "" {
		return inPool
	}
	return slices.Contains(list, v)
}

func matchExact(list []string, v string) bool {
	return len(list) == 0 || slices.Contains(list, v)
}

// matchVF reports whether a VF belongs to a VF pool by this selector.
func (s *Selector) matchVF(pf *host.PF, vf *host.VF, inPool bool) bool {
	if !matchExact(s.Vendors, vf.Vendor) || !matchExact(s.Devices, vf.Device) ||
		!matchExact(s.RootDevices, pf.PCIAddress) || !matchExact(s.PCIAddresses, vf.PCIAddress) {
		return false
	}
	if !matchAbsent(s.Drivers, vf.Driver, inPool) || !matchAbsent(s.LinkTypes, pf.LinkType, inPool) ||
		!matchAbsent(s.IfNames, vf.Netdev, inPool) {
		return false
	}
	if len(s.PFNames) > 0 {
		ok := false
		for _, p := range s.PFNames {
			if p.Has(vf.Index) && (p.Name == pf.Name || (pf.Name == "" && inPool)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if s.RDMA && vf.RDMA == nil && !inPool {
		return false
	}
	return true
}

// candidate is a PCI function whose RDMA device a shared pool may share:
// a PF (vf nil) or a VF.
type candidate struct {
	pf *host.PF
	vf *host.VF
}

func (c candidate) address() string {
	if c.vf != nil {
		return c.vf.PCIAddress
	}
	return c.pf.PCIAddress
}

func (c candidate) rdma() *host.RDMADevice {
	if c.vf != nil {
		return c.vf.RDMA
	}
	return c.pf.RDMA
}

func (c candidate) netdev() string {
	if c.vf != nil {
		return c.vf.Netdev
	}
	return c.pf.Name
}

// matchShared reports whether a function's RDMA device belongs to a shared
// pool by this selector. Vendor, device, driver and netdev are the
// function's own (as k8s-rdma-shared-dev-plugin matches them); pfNames
// without a VF list and rootDevices select PFs, pfNames with a VF list
// select those VFs.
func (s *Selector) matchShared(c candidate, inPool bool) bool {
	vendor, device, driver := c.pf.Vendor, c.pf.Device, c.pf.Driver
	if c.vf != nil {
		vendor, device, driver = c.vf.Vendor, c.vf.Device, c.vf.Driver
	}
	if !matchExact(s.Vendors, vendor) || !matchExact(s.Devices, device) || !matchExact(s.PCIAddresses, c.address()) {
		return false
	}
	if len(s.RootDevices) > 0 && (c.vf != nil || !slices.Contains(s.RootDevices, c.pf.PCIAddress)) {
		return false
	}
	if !matchAbsent(s.Drivers, driver, inPool) || !matchAbsent(s.LinkTypes, c.pf.LinkType, inPool) ||
		!matchAbsent(s.IfNames, c.netdev(), inPool) {
		return false
	}
	if len(s.PFNames) > 0 {
		ok := false
		for _, p := range s.PFNames {
			nameOK := p.Name == c.pf.Name || (c.pf.Name == "" && inPool)
			if c.vf == nil {
				ok = nameOK && p.VFs == nil
			} else {
				ok = nameOK && p.VFs != nil && p.Has(c.vf.Index)
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return c.rdma() != nil || inPool
}
