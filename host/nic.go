package host

import (
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
)

// Network functions served whole: NICs that are not SR-IOV capable, and
// how a function bound to a userspace driver is reached.

// networkClass is the PCI base class of network controllers.
const networkClass = "0x02"

// readNICs reads the network functions among others (the PCI functions
// that are not SR-IOV capable) that are not VFs of one of pfs. A function
// whose class is not a network controller's costs one read.
func (h *Host) readNICs(pfs []PF, others []string, root string, links map[string]netlink.Link) []PF {
	vfs := map[string]bool{}
	for i := range pfs {
		for j := range pfs[i].VFs {
			vfs[pfs[i].VFs[j].PCIAddress] = true
		}
	}
	var addrs []string
	for _, addr := range others {
		if vfs[addr] {
			continue
		}
		dir := filepath.Join(root, addr)
		if !strings.HasPrefix(readAttr(filepath.Join(dir, "class")), networkClass) {
			continue
		}
		if exists(filepath.Join(dir, "physfn")) {
			continue // a VF its PF did not list (yet): not a NIC
		}
		addrs = append(addrs, addr)
	}
	if len(addrs) == 0 {
		return nil
	}
	nics := make([]PF, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() { nics[i] = h.readPF(addr, root, links) })
	}
	wg.Wait()
	return nics
}

// userspaceOf reads how a function bound to driver is reached from user
// space: its uio device under a uio driver, vfio's no-IOMMU mode under
// vfio-pci (the group's name says it). Other drivers cost nothing.
func userspaceOf(dir, driver, group string) Userspace {
	var u Userspace
	switch {
	case driver == VfioPci && group != "":
		u.NoIOMMU = readAttr(filepath.Join(dir, "iommu_group", "name")) == "vfio-noiommu"
	case strings.Contains(driver, "uio"):
		u.UIO = firstEntry(filepath.Join(dir, "uio"))
	}
	return u
}

// markDefaultRoutes sets DefaultRoute on the functions that could be
// served whole (NICs, PFs without VFs) whose netdev carries a default
// route of the main table, IPv4 or IPv6, as the only next hop or one of
// several. It costs one route dump, and none when no such function has a
// netdev.
func (h *Host) markDefaultRoutes(snap *Snapshot, links map[string]netlink.Link) error {
	var cands []*PF
	for i := range snap.PFs {
		if pf := &snap.PFs[i]; len(pf.VFs) == 0 && pf.Name != "" {
			cands = append(cands, pf)
		}
	}
	for i := range snap.NICs {
		if nic := &snap.NICs[i]; nic.Name != "" {
			cands = append(cands, nic)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	routes, err := h.nl.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return stepErr("netlink", "list routes (to leave the node's uplink out of device-plugin pools)", err)
	}
	onDefault := map[int]bool{}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		onDefault[r.LinkIndex] = true
		for _, hop := range r.MultiPath {
			onDefault[hop.LinkIndex] = true
		}
	}
	delete(onDefault, 0)
	for _, pf := range cands {
		if l, ok := links[pf.Name]; ok {
			pf.DefaultRoute = onDefault[l.Attrs().Index]
		}
	}
	return nil
}
