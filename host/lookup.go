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
	idx := -1
	for i, a := range h.virtfns(pfDir) {
		if a == addr {
			idx = i
			break
		}
	}
	if idx < 0 {
		return nil, stepErr(addr, "look up VF index", fmt.Errorf("%w: PF %s lists no virtfn for it", ErrNotFound, pfAddr))
	}
	id := vfIdentity(dir)
	vf := &VF{
		Index: idx, PCIAddress: addr, PFAddress: pfAddr,
		PFName: firstEntry(filepath.Join(pfDir, "net")),
		Vendor: id.vendor, Device: id.device, Driver: id.driver, IOMMUGroup: id.iommuGroup,
		NUMANode: readInt(filepath.Join(pfDir, "numa_node"), -1),
		PCIeRoot: pcieRoot(pfDir),
		Netdev:   firstEntry(filepath.Join(dir, "net")),
	}
	if vf.PFName != "" {
		if link, err := h.nl.LinkByName(vf.PFName); err == nil {
			if i, ok := vfInfo(link, idx); ok {
				vf.Settings = settingsOf(i)
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
