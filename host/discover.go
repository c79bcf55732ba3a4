package host

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jaypipes/ghw"
	"github.com/jaypipes/ghw/pkg/pci"
	"github.com/jaypipes/pcidb"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Discover reads every SR-IOV capable PF of the node with its VFs, their
// netdevs, PF-side VF settings and RDMA devices, and the network functions
// that are not SR-IOV capable (NICs). It only reads.
//
// Reading sysfs is all system calls, so the PFs are read concurrently, and
// the RDMA devices alongside them.
func (h *Host) Discover(ctx context.Context) (*Snapshot, error) {
	root := filepath.Join(h.paths.Sys, "bus", "pci", "devices")
	addrs, err := readDirNames(root)
	if err != nil {
		return nil, stepErr(root, "list PCI devices", err)
	}
	links, err := h.linkIndex()
	if err != nil {
		return nil, err
	}
	var pfAddrs, others []string
	for _, addr := range addrs {
		if exists(filepath.Join(root, addr, "sriov_totalvfs")) {
			pfAddrs = append(pfAddrs, addr)
		} else {
			others = append(others, addr)
		}
	}
	var wg sync.WaitGroup
	var rdma rdmaIndex
	wg.Go(func() { rdma = h.readRDMA() })
	snap := &Snapshot{PFs: make([]PF, len(pfAddrs))}
	for i, addr := range pfAddrs {
		wg.Go(func() { snap.PFs[i] = h.readPF(addr, root, links) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	snap.NICs = h.readNICs(snap.PFs, others, root, links)
	for i := range snap.PFs {
		pf := &snap.PFs[i]
		pf.RDMA = rdma.forDevice(pf.PCIAddress, pf.Name)
		for j := range pf.VFs {
			vf := &pf.VFs[j]
			vf.RDMA = rdma.forDevice(vf.PCIAddress, vf.Netdev)
		}
	}
	for i := range snap.NICs {
		nic := &snap.NICs[i]
		nic.RDMA = rdma.forDevice(nic.PCIAddress, nic.Name)
	}
	if err := h.markDefaultRoutes(snap, links); err != nil {
		return nil, err
	}
	if len(rdma.byName) > 0 {
		snap.RDMANetnsMode, _ = h.nl.RdmaSystemGetNetnsMode()
	}
	return snap, nil
}

func (h *Host) readPF(addr, root string, links map[string]netlink.Link) PF {
	dir := filepath.Join(root, addr)
	id := h.identity(addr, dir)
	pf := PF{
		PCIAddress: addr,
		Vendor:     id.vendor, Device: id.device,
		VendorName: id.vendorName, DeviceName: id.deviceName,
		Driver: id.driver, IOMMUGroup: id.iommuGroup, Userspace: id.userspace,
		NUMANode: readInt(filepath.Join(dir, "numa_node"), -1),
		TotalVFs: readInt(filepath.Join(dir, "sriov_totalvfs"), 0),
		NumVFs:   readInt(filepath.Join(dir, "sriov_numvfs"), 0),
		Name:     firstEntry(filepath.Join(dir, "net")),
		PCIeRoot: pcieRoot(dir),
	}
	var vfInfo []netlink.VfInfo
	if l, ok := links[pf.Name]; ok && pf.Name != "" {
		pf.Link = linkOf(l)
		vfInfo = l.Attrs().Vfs
	}

	for _, e := range dirNames(dir) {
		n, ok := strings.CutPrefix(e, "virtfn")
		if !ok {
			continue
		}
		idx, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		vfAddr := linkBase(filepath.Join(dir, e))
		pf.VFs = append(pf.VFs, h.readVF(&pf, idx, vfAddr, filepath.Join(root, vfAddr), links, vfInfo))
	}
	sort.Slice(pf.VFs, func(i, j int) bool { return pf.VFs[i].Index < pf.VFs[j].Index })
	return pf
}

func (h *Host) readVF(pf *PF, idx int, addr, dir string, links map[string]netlink.Link, info []netlink.VfInfo) VF {
	id := vfIdentity(dir)
	vf := VF{
		Index: idx, PCIAddress: addr, PFAddress: pf.PCIAddress, PFName: pf.Name,
		Vendor: id.vendor, Device: id.device, Driver: id.driver, IOMMUGroup: id.iommuGroup,
		Userspace: id.userspace,
		// A VF sits on its PF's NUMA node, under its PCIe root.
		NUMANode: pf.NUMANode,
		PCIeRoot: pf.PCIeRoot,
		Netdev:   firstEntry(filepath.Join(dir, "net")),
	}
	if l, ok := links[vf.Netdev]; ok && vf.Netdev != "" {
		vf.Link = linkOf(l)
	}
	for _, i := range info {
		if i.ID == idx {
			vf.Settings = settingsOf(i)
			if l, ok := links[pf.Name]; ok {
				vf.PFIndex = l.Attrs().Index
			}
			break
		}
	}
	return vf
}

// linkIndex lists every netdev of the namespace once, with the PFs' VF
// settings, so discovery costs one netlink dump whatever the VF count.
func (h *Host) linkIndex() (map[string]netlink.Link, error) {
	ls, err := h.nl.LinkList()
	if err != nil {
		return nil, stepErr("netlink", "list links", err)
	}
	m := make(map[string]netlink.Link, len(ls))
	for _, l := range ls {
		m[l.Attrs().Name] = l
	}
	return m, nil
}

func linkOf(l netlink.Link) Link {
	a := l.Attrs()
	out := Link{
		LinkType:  linkType(a.EncapType),
		MTU:       a.MTU,
		OperState: a.OperState.String(),
		Carrier:   a.RawFlags&unix.IFF_LOWER_UP != 0,
		Up:        a.RawFlags&unix.IFF_UP != 0,
	}
	if len(a.HardwareAddr) > 0 {
		out.MAC = a.HardwareAddr.String()
	}
	return out
}

func linkType(encap string) string {
	switch encap {
	case "ether":
		return "eth"
	case "infiniband":
		return "ib"
	}
	return encap
}

func settingsOf(i netlink.VfInfo) VFSettings {
	s := VFSettings{
		VLAN: i.Vlan, QoS: i.Qos, VLANProto: i.VlanProto,
		SpoofChk: i.Spoofchk, Trust: i.Trust == 1,
		LinkState: vfLinkStateName(i.LinkState),
		MinTxRate: int(i.MinTxRate), MaxTxRate: int(i.MaxTxRate),
	}
	if len(i.Mac) > 0 {
		s.MAC = i.Mac.String()
	}
	return s
}

func vfLinkStateName(s uint32) string {
	switch s {
	case netlink.VF_LINK_STATE_AUTO:
		return "auto"
	case netlink.VF_LINK_STATE_ENABLE:
		return "enable"
	case netlink.VF_LINK_STATE_DISABLE:
		return "disable"
	}
	return strconv.Itoa(int(s))
}

// pciIdentity is what identifies a PCI function.
type pciIdentity struct {
	vendor, device         string
	vendorName, deviceName string
	driver, iommuGroup     string
	userspace              Userspace
}

// identity reads a PCI function's identity: ghw parses its modalias into
// vendor, device and (with the PCI ID database) their names.
func (h *Host) identity(addr, dir string) pciIdentity {
	id := pciIdentity{
		driver:     linkBase(filepath.Join(dir, "driver")),
		iommuGroup: linkBase(filepath.Join(dir, "iommu_group")),
	}
	id.userspace = userspaceOf(dir, id.driver, id.iommuGroup)
	if d := h.pciInfo().ParseDevice(addr, readAttr(filepath.Join(dir, "modalias"))); d != nil && d.Vendor != nil && d.Product != nil {
		id.vendor, id.vendorName = strings.ToLower(d.Vendor.ID), known(d.Vendor.Name)
		id.device, id.deviceName = strings.ToLower(d.Product.ID), known(d.Product.Name)
		return id
	}
	id.vendor = readHexID(filepath.Join(dir, "vendor"))
	id.device = readHexID(filepath.Join(dir, "device"))
	return id
}

// vfIdentity is a VF's identity from sysfs alone: a VF carries no
// vendor or device name, so the PCI ID database (hundreds of milliseconds
// to load on a slow node, on every sluice-cni run) is never needed for it.
func vfIdentity(dir string) pciIdentity {
	id := pciIdentity{
		driver:     linkBase(filepath.Join(dir, "driver")),
		iommuGroup: linkBase(filepath.Join(dir, "iommu_group")),
		vendor:     readHexID(filepath.Join(dir, "vendor")),
		device:     readHexID(filepath.Join(dir, "device")),
	}
	id.userspace = userspaceOf(dir, id.driver, id.iommuGroup)
	return id
}

func known(name string) string {
	if name == "unknown" {
		return ""
	}
	return name
}

// newPCIInfo returns ghw's PCI parser bound to a PCI ID database. It is
// built over an empty tree: sluice reads sysfs itself and only asks ghw to
// decode what it read, so ghw never walks the bus.
func newPCIInfo(db *pcidb.PCIDB) *pci.Info {
	if db == nil {
		// An empty database: ghw must not go looking for one itself.
		db = &pcidb.PCIDB{Vendors: map[string]*pcidb.Vendor{}, Products: map[string]*pcidb.Product{}, Classes: map[string]*pcidb.Class{}}
	}
	info, err := pci.New(
		ghw.WithPathOverrides(ghw.PathOverrides{"/sys": "/nonexistent"}),
		ghw.WithPCIDB(db),
		ghw.WithDisableTopology(),
		ghw.WithDisableWarnings(),
	)
	if err != nil {
		// pci.New fails only when loading a database, and it was given one.
		panic(fmt.Sprintf("ghw pci.New with a database: %v", err))
	}
	return info
}
