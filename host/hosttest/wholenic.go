package hosttest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Network functions used whole: NICs without SR-IOV, userspace drivers
// (uio, vfio without an IOMMU) and the routes that mark the node's uplink.

// AddNonSRIOVNIC adds a network function that is not SR-IOV capable, from
// a PFSpec whose TotalVFs, VFDevice and VFDriver are ignored: its netdev
// (when Name is set), its RDMA device (RDMAPCI) and an IOMMU group (IOMMU).
func (n *Node) AddNonSRIOVNIC(s PFSpec) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s = s.withDefaults()
	d := n.addDevice(s.Address, s.Vendor, s.Device, s.NUMANode, false)
	if s.IOMMU {
		n.addIOMMUGroup(d, "")
	}
	n.bind(d, s.Driver)
	n.addFunctionDevices(d, s)
}

// addIOMMUGroup puts the function in a new IOMMU group, named name when
// not empty (vfio names its no-IOMMU groups "vfio-noiommu").
func (n *Node) addIOMMUGroup(d *fakeDev, name string) string {
	n.nextIOMMU++
	g := strconv.Itoa(n.nextIOMMU)
	dir := filepath.Join(n.Root, "sys/kernel/iommu_groups", g)
	must(os.MkdirAll(dir, 0o755))
	if name != "" {
		must(os.WriteFile(filepath.Join(dir, "name"), []byte(name+"\n"), 0o444))
	}
	must(os.Symlink("../../../kernel/iommu_groups/"+g, filepath.Join(d.dir, "iommu_group")))
	return g
}

// BindUserspace rebinds a PCI function (PF, VF or NIC) to a userspace
// driver as dpdk-devbind does: its netdev and RDMA device go, and
//   - a uio driver (igb_uio, uio_pci_generic) gives it uio/uioN and
//     /dev/uioN;
//   - vfio-pci gives it /dev/vfio/<group> and /dev/vfio/vfio, and, when it
//     has no IOMMU group, a no-IOMMU group as vfio's
//     enable_unsafe_noiommu_mode does: named vfio-noiommu, its node
//     /dev/vfio/noiommu-<group>.
//
// It returns the device node the function got, as on the node.
func (n *Node) BindUserspace(addr, driver string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.devs[addr]
	if d == nil {
		panic("hosttest: no PCI function " + addr)
	}
	n.removeNetdev(d)
	if d.rdma != "" {
		n.removeRDMA(d.rdma)
		d.rdma = ""
	}
	n.bind(d, driver)
	dev := filepath.Join(n.Root, "dev")
	switch {
	case driver == "vfio-pci":
		must(os.MkdirAll(filepath.Join(dev, "vfio"), 0o755))
		must(os.WriteFile(filepath.Join(dev, "vfio/vfio"), nil, 0o666))
		g, node := linkBaseOf(filepath.Join(d.dir, "iommu_group")), ""
		if g == "" {
			g = n.addIOMMUGroup(d, "vfio-noiommu")
			node = "/dev/vfio/noiommu-" + g
		} else {
			node = "/dev/vfio/" + g
		}
		must(os.WriteFile(filepath.Join(n.Root, node), nil, 0o600))
		return node
	case strings.Contains(driver, "uio"):
		k := 0
		for exists(filepath.Join(dev, fmt.Sprintf("uio%d", k))) {
			k++
		}
		name := fmt.Sprintf("uio%d", k)
		must(os.MkdirAll(filepath.Join(d.dir, "uio", name), 0o755))
		must(os.WriteFile(filepath.Join(dev, name), nil, 0o600))
		return "/dev/" + name
	}
	return ""
}

// SetDefaultRoute gives a netdev the main table's IPv4 default route (the
// node's uplink), or takes it away.
func (n *Node) SetDefaultRoute(netdev string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.defaultRoutes == nil {
		n.defaultRoutes = map[string]bool{}
	}
	n.defaultRoutes[netdev] = on
}

// RouteList lists the main table's routes: a connected route for every
// netdev that is up, and the default routes set by SetDefaultRoute. Like
// netlink, a default route's Dst is 0.0.0.0/0.
func (n *Node) RouteList(link netlink.Link, family int) ([]netlink.Route, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.failed("RouteList"); err != nil {
		return nil, err
	}
	if family != netlink.FAMILY_ALL && family != netlink.FAMILY_V4 {
		return nil, nil
	}
	var out []netlink.Route
	for _, l := range n.links {
		if l.hidden || !l.up || link != nil && link.Attrs().Index != l.index {
			continue
		}
		out = append(out, netlink.Route{LinkIndex: l.index, Table: unix.RT_TABLE_MAIN, Family: netlink.FAMILY_V4,
			Dst: &net.IPNet{IP: net.IPv4(192, 0, 2, 0).To4(), Mask: net.CIDRMask(24, 32)}})
		if n.defaultRoutes[l.name] {
			out = append(out, netlink.Route{LinkIndex: l.index, Table: unix.RT_TABLE_MAIN, Family: netlink.FAMILY_V4,
				Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: net.IPv4(192, 0, 2, 1)})
		}
	}
	return out, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
