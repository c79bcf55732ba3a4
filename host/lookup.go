package host

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/Mellanox/rdmamap"
)

// VF looks up one VF by PCI address, reading only that VF and its PF: what
// the CNI needs per pod, at a fraction of a full discovery's cost, without
// the PCI ID database (a VF has no names to decode). The RDMA
// device is looked up by PCI parent, then (for soft-RoCE) by netdev.
func (h *Host) VF(addr string) (*VF, error) {
	dir := h.pciDevDir(addr)
	if !exists(dir) {
		return nil, stepErr(addr, "look up VF", fmt.Errorf("%w: no PCI function %s on this node", ErrNotFound, addr))
	}
	pfAddr := linkBase(filepath.Join(dir, "physfn"))
	if pfAddr == "" {
		return nil, stepErr(addr, "look up VF", fmt.Errorf("%w: %s is not a VF (it has no physfn)", ErrNotFound, addr))
	}
	pfDir := h.pciDevDir(pfAddr)
	idx := h.vfIndex(pfDir, pfAddr, addr)
	if idx < 0 {
		return nil, stepErr(addr, "look up VF index", fmt.Errorf("%w: PF %s lists no virtfn for it", ErrNotFound, pfAddr))
	}
	id := vfIdentity(dir)
	vf := &VF{
		Index: idx, PCIAddress: addr, PFAddress: pfAddr,
		PFName: firstEntry(filepath.Join(pfDir, "net")),
		Vendor: id.vendor, Device: id.device, Driver: id.driver, IOMMUGroup: id.iommuGroup,
		Userspace: id.userspace,
		NUMANode:  readInt(filepath.Join(pfDir, "numa_node"), -1),
		PCIeRoot:  pcieRoot(pfDir),
		Netdev:    firstEntry(filepath.Join(dir, "net")),
	}
	if vf.PFName != "" {
		if link, err := h.nl.LinkByName(vf.PFName); err == nil {
			if i, ok := vfInfo(link, idx); ok {
				vf.Settings, vf.PFIndex = settingsOf(i), link.Attrs().Index
			}
		}
	}
	if vf.Netdev != "" {
		if link, err := h.nl.LinkByName(vf.Netdev); err == nil {
			vf.Link = linkOf(link)
		}
	}
	vf.RDMA = h.rdmaOf(dir, vf.Netdev)
	return vf, nil
}

// vfIndex is the index of VF addr of the PF at pfDir, -1 if the PF lists
// no such VF. It is computed from PCI routing IDs (VF i of a PF is at the
// PF's routing ID + sriov_offset + i*sriov_stride) and checked against the
// PF's virtfn<i> link: one VF's cost however many the PF has. Where the
// kernel does not expose the offset and stride, the PF's virtfn links are
// listed.
func (h *Host) vfIndex(pfDir, pfAddr, addr string) int {
	off, stride := readInt(filepath.Join(pfDir, "sriov_offset"), -1), readInt(filepath.Join(pfDir, "sriov_stride"), 0)
	pf, okPF := routingID(pfAddr)
	vf, okVF := routingID(addr)
	if off >= 0 && stride > 0 && okPF && okVF {
		if d := vf - pf - off; d >= 0 && d%stride == 0 {
			i := d / stride
			if linkBase(filepath.Join(pfDir, "virtfn"+strconv.Itoa(i))) == addr {
				return i
			}
		}
	}
	for i, a := range h.virtfns(pfDir) {
		if a == addr {
			return i
		}
	}
	return -1
}

// routingID is a PCI function's routing ID (bus, device, function) within
// its domain, from "dddd:bb:dd.f", with the domain prepended so that IDs of
// two domains never compare equal.
func routingID(addr string) (int, bool) {
	var dom, bus, dev, fn int
	if n, err := fmt.Sscanf(addr, "%x:%x:%x.%x", &dom, &bus, &dev, &fn); err != nil || n != 4 || dev > 31 || fn > 7 {
		return 0, false
	}
	return dom<<16 | bus<<8 | dev<<3 | fn, true
}

// rdmaOf finds the RDMA device of one PCI function without indexing them
// all: its own infiniband directory, else the soft-RoCE device sluice-cni
// names after it (SoftRoCEName) on its netdev. Both are looked up by name,
// so the cost is the one VF's whatever the node has; a soft-RoCE device of
// another name on the VF's netdev is found by Discover, not here.
func (h *Host) rdmaOf(dir, netdev string) *RDMADevice {
	name := firstEntry(filepath.Join(dir, rdmamap.RdmaClassName))
	classDir := h.classDir(rdmamap.RdmaClassName)
	if name == "" && netdev != "" {
		if n := SoftRoCEName(filepath.Base(dir)); exists(filepath.Join(classDir, n)) &&
			readAttr(filepath.Join(classDir, n, "parent")) == netdev {
			name = n
		}
	}
	if name == "" {
		return nil
	}
	d := &RDMADevice{Name: name, Parent: linkBase(filepath.Join(classDir, name, "device"))}
	if d.Parent == "" {
		d.Netdev = netdev
	}
	d.Ports = readPorts(filepath.Join(classDir, name, rdmamap.RdmaPortsdir))
	parentDir := dir
	if d.Parent == "" {
		parentDir = h.virtualDevicesDir()
	}
	d.CharDevices = h.charDevicesOf(name, parentDir)
	return d
}

// ParsePFName splits a "ens1f0#0-3" selector into the PF name and its
// inclusive VF range; without a range, first and last are -1.
func ParsePFName(s string) (name string, first, last int, err error) {
	name, rng, ok := strings.Cut(s, "#")
	if !ok {
		return s, -1, -1, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return "", 0, 0, fmt.Errorf("VF range %q in %q must be first-last, e.g. ens1f0#0-3", rng, s)
	}
	first, err1 := strconv.Atoi(a)
	last, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return "", 0, 0, fmt.Errorf("VF range %q in %q must be first-last with 0 <= first <= last", rng, s)
	}
	return name, first, last, nil
}
