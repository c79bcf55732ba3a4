// Package hosttest builds fake nodes for tests: a sysfs and /dev tree in a
// temporary directory laid out as Linux lays it out, a fake kernel that
// reacts to sysfs writes (sriov_numvfs, driver_override, bind, unbind,
// drivers_probe) with the kernel's rules, and a fake netlink holding link
// attributes and PF-side VF settings.
//
// host.Host runs unchanged on it: Node.Host() wires the fake kernel and
// netlink in through host's options.
package hosttest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-net/sluice/host"
)

// RDMAKind says how a PF and its VFs get RDMA devices.
type RDMAKind int

const (
	// RDMANone: no RDMA.
	RDMANone RDMAKind = iota
	// RDMAPCI: the PF and every VF get a PCI-parented device (mlx5 style).
	RDMAPCI
)

// PFSpec describes a fake PF.
type PFSpec struct {
	Address string
	// Name is the PF netdev; empty for none.
	Name             string
	Vendor, Device   string
	VFDevice         string
	Driver, VFDriver string
	NUMANode         int
	TotalVFs         int
	// LinkType is "eth" (default) or "ib".
	LinkType string
	MTU      int
	RDMA     RDMAKind
	// IOMMU gives every VF its own IOMMU group.
	IOMMU bool
}

// ConnectX6 is a ConnectX-6 Dx-like PF: mlx5_core, PCI-parented RDMA on the
// PF and each VF, IOMMU groups.
func ConnectX6(addr, name string, numa int) PFSpec {
	return PFSpec{Address: addr, Name: name, Vendor: "15b3", Device: "101d", VFDevice: "101e",
		Driver: "mlx5_core", VFDriver: "mlx5_core", NUMANode: numa, TotalVFs: 128, MTU: 1500,
		RDMA: RDMAPCI, IOMMU: true}
}

// E810 is an Intel E810-like PF: ice with iavf VFs, no RDMA on the VFs.
func E810(addr, name string, numa int) PFSpec {
	return PFSpec{Address: addr, Name: name, Vendor: "8086", Device: "1593", VFDevice: "1889",
		Driver: "ice", VFDriver: "iavf", NUMANode: numa, TotalVFs: 128, MTU: 1500, IOMMU: true}
}

// IGB is the emulated 82576 (QEMU igb): 7 VFs, igbvf, no IOMMU; RDMA only
// as soft-RoCE added with AddRxe.
func IGB(addr, name string) PFSpec {
	return PFSpec{Address: addr, Name: name, Vendor: "8086", Device: "10c9", VFDevice: "10ca",
		Driver: "igb", VFDriver: "igbvf", NUMANode: -1, TotalVFs: 7, MTU: 1500}
}

// Node is a fake node rooted in a temporary directory.
type Node struct {
	Root string

	mu sync.Mutex
	// NetdevDelay delays the appearance of VF netdevs after VFs are created
	// or bound, as drivers take time to probe.
	netdevDelay time.Duration
	pfs         map[string]*fakePF
	devs        map[string]*fakeDev // every PCI function by address
	links       map[string]*fakeLink
	rdma        map[string]*fakeRDMA
	nextBus     int
	nextIfindex int
	nextMlx     int
	nextUverbs  int
	nextIOMMU   int
	rdmaMode    string
	// otherNetns counts namespaces that make an RDMA mode switch fail.
	otherNetns  int
	writeFail   map[string]error
	nlFail      map[string]error
	vfInfoCalls int
	// defaultRoutes are the netdevs carrying a default route.
	defaultRoutes map[string]bool
	writes        []string
	pending       sync.WaitGroup
}

type fakePF struct {
	spec     PFSpec
	vfs      []string // VF addresses by index
	settings []host.VFSettings
}

type fakeDev struct {
	addr     string
	dir      string
	pf       string // PF address for a VF
	index    int
	driver   string
	override string
	netdev   string
	rdma     string
	isVF     bool
}

type fakeLink struct {
	name    string
	index   int
	mtu     int
	mac     net.HardwareAddr
	up      bool
	carrier bool
	encap   string
	dev     string // PCI address
	// hidden links were moved to another namespace.
	hidden bool
}

// New returns an empty fake node in t.TempDir().
func New(t testing.TB) *Node {
	t.Helper()
	n := NewAt(t.TempDir())
	t.Cleanup(n.Wait)
	return n
}

// NewAt returns an empty fake node rooted at dir (for benchmarks that build
// large trees once).
func NewAt(dir string) *Node {
	n := &Node{
		Root: dir, pfs: map[string]*fakePF{}, devs: map[string]*fakeDev{},
		links: map[string]*fakeLink{}, rdma: map[string]*fakeRDMA{},
		nextBus: 0x80, nextIfindex: 10, rdmaMode: "shared",
		writeFail: map[string]error{}, nlFail: map[string]error{},
	}
	for _, d := range []string{"sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/class/net", "sys/devices/pci0000:00", "sys/kernel/iommu_groups", "dev"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(dir, "sys/bus/pci/drivers_probe"), nil, 0o644))
	return n
}

// Paths are the node's roots.
func (n *Node) Paths() host.Paths {
	return host.Paths{Sys: filepath.Join(n.Root, "sys"), Dev: filepath.Join(n.Root, "dev")}
}

// Host returns a host.Host on this node with the fake kernel and netlink.
func (n *Node) Host(opts ...host.Option) *host.Host {
	base := []host.Option{host.WithNetlink(n), host.WithAttrWriter(n), host.WithSettleTimeout(5 * time.Second)}
	return host.New(n.Paths(), append(base, opts...)...)
}

// SetNetdevDelay makes VF netdevs appear this long after the VF is created
// or bound to its network driver.
func (n *Node) SetNetdevDelay(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.netdevDelay = d
}

// Wait waits for delayed netdevs to appear.
func (n *Node) Wait() { n.pending.Wait() }

// AddPF adds a PF with no VFs.
func (n *Node) AddPF(s PFSpec) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s = s.withDefaults()
	d := n.addDevice(s.Address, s.Vendor, s.Device, s.NUMANode, false)
	must(os.WriteFile(filepath.Join(d.dir, "sriov_totalvfs"), []byte(strconv.Itoa(s.TotalVFs)+"\n"), 0o444))
	must(os.WriteFile(filepath.Join(d.dir, "sriov_numvfs"), []byte("0\n"), 0o644))
	must(os.WriteFile(filepath.Join(d.dir, "sriov_drivers_autoprobe"), []byte("1\n"), 0o644))
	n.pfs[s.Address] = &fakePF{spec: s}
	n.bind(d, s.Driver)
	n.addFunctionDevices(d, s)
}

// withDefaults fills a spec's link type (eth) and MTU (1500).
func (s PFSpec) withDefaults() PFSpec {
	if s.LinkType == "" {
		s.LinkType = "eth"
	}
	if s.MTU == 0 {
		s.MTU = 1500
	}
	return s
}

// addFunctionDevices gives a PF or whole NIC its netdev (when the spec
// names one) and its PCI RDMA device (RDMAPCI).
func (n *Node) addFunctionDevices(d *fakeDev, s PFSpec) {
	if s.Name != "" {
		n.addNetdev(d, s.Name, s.MTU, s.LinkType, true)
	}
	if s.RDMA == RDMAPCI {
		n.addPCIRDMA(d, s.LinkType)
	}
}

// AddDevice adds a PCI function that is not SR-IOV capable (a disk
// controller, a GPU): discovery must pass over it.
func (n *Node) AddDevice(addr, vendor, device, driver string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.addDevice(addr, vendor, device, -1, false)
	// A SATA controller's class: not a network controller.
	must(os.WriteFile(filepath.Join(d.dir, "class"), []byte("0x010601\n"), 0o644))
	n.bind(d, driver)
}

// AddNIC adds a network PCI function that is not SR-IOV capable (the
// node's own NIC), with its netdev.
func (n *Node) AddNIC(addr, name, driver string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.addDevice(addr, "8086", "1533", -1, false)
	n.bind(d, driver)
	n.addNetdev(d, name, 1500, "eth", true)
}

func (n *Node) addDevice(addr, vendor, device string, numa int, isVF bool) *fakeDev {
	dir := filepath.Join(n.Root, "sys/devices/pci0000:00", addr)
	must(os.MkdirAll(dir, 0o755))
	files := map[string]string{
		"vendor":          "0x" + vendor,
		"device":          "0x" + device,
		"class":           "0x020000",
		"revision":        "0x00",
		"numa_node":       strconv.Itoa(numa),
		"driver_override": "(null)",
		"modalias":        modalias(vendor, device),
	}
	for f, v := range files {
		must(os.WriteFile(filepath.Join(dir, f), []byte(v+"\n"), 0o644))
	}
	must(os.Symlink("../../../devices/pci0000:00/"+addr, filepath.Join(n.Root, "sys/bus/pci/devices", addr)))
	d := &fakeDev{addr: addr, dir: dir, isVF: isVF}
	n.devs[addr] = d
	return d
}

func modalias(vendor, device string) string {
	v, d := strings.ToUpper(vendor), strings.ToUpper(device)
	return fmt.Sprintf("pci:v0000%sd0000%ssv0000%ssd00000001bc02sc00i00", v, d, v)
}

// bind links the device to a driver ("" unbinds).
func (n *Node) bind(d *fakeDev, driver string) {
	link := filepath.Join(d.dir, "driver")
	_ = os.Remove(link)
	d.driver = driver
	if driver == "" {
		return
	}
	ddir := filepath.Join(n.Root, "sys/bus/pci/drivers", driver)
	if _, err := os.Stat(ddir); err != nil {
		must(os.MkdirAll(ddir, 0o755))
		must(os.WriteFile(filepath.Join(ddir, "bind"), nil, 0o200))
		must(os.WriteFile(filepath.Join(ddir, "unbind"), nil, 0o200))
	}
	must(os.Symlink("../../../bus/pci/drivers/"+driver, link))
}

// AddDriver registers a driver with the PCI bus (as loading its module does).
func (n *Node) AddDriver(driver string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ddir := filepath.Join(n.Root, "sys/bus/pci/drivers", driver)
	must(os.MkdirAll(ddir, 0o755))
	must(os.WriteFile(filepath.Join(ddir, "bind"), nil, 0o200))
	must(os.WriteFile(filepath.Join(ddir, "unbind"), nil, 0o200))
}

func (n *Node) addNetdev(d *fakeDev, name string, mtu int, linkType string, carrier bool) {
	dir := filepath.Join(d.dir, "net", name)
	must(os.MkdirAll(dir, 0o755))
	n.nextIfindex++
	mac := net.HardwareAddr{0x02, 0x00, 0x00, byte(n.nextIfindex >> 16), byte(n.nextIfindex >> 8), byte(n.nextIfindex)}
	encap, typ := "ether", "1"
	if linkType == "ib" {
		encap, typ = "infiniband", "32"
	}
	for f, v := range map[string]string{"address": mac.String(), "mtu": strconv.Itoa(mtu), "type": typ, "ifindex": strconv.Itoa(n.nextIfindex), "operstate": "up", "carrier": "1"} {
		must(os.WriteFile(filepath.Join(dir, f), []byte(v+"\n"), 0o644))
	}
	// As in sysfs: the netdev's device link leads to its PCI function.
	must(os.Symlink("../../../"+d.addr, filepath.Join(dir, "device")))
	rel, err := filepath.Rel(filepath.Join(n.Root, "sys/class/net"), dir)
	must(err)
	must(os.Symlink(rel, filepath.Join(n.Root, "sys/class/net", name)))
	n.links[name] = &fakeLink{name: name, index: n.nextIfindex, mtu: mtu, mac: mac, up: true, carrier: carrier, encap: encap, dev: d.addr}
	d.netdev = name
}

func (n *Node) removeNetdev(d *fakeDev) {
	if d.netdev == "" {
		return
	}
	_ = os.RemoveAll(filepath.Join(d.dir, "net"))
	_ = os.Remove(filepath.Join(n.Root, "sys/class/net", d.netdev))
	delete(n.links, d.netdev)
	d.netdev = ""
}

// createVFs creates k VFs on the PF as the kernel does when sriov_numvfs is
// written: PCI functions, virtfn/physfn links, driver binding (autoprobe)
// and, for network drivers, netdevs (after the netdev delay).
func (n *Node) createVFs(pf *fakePF, k int) {
	s := pf.spec
	bus := n.nextBus
	n.nextBus++
	pd := n.devs[s.Address]
	pf.vfs = make([]string, k)
	pf.settings = make([]host.VFSettings, k)
	for i := 0; i < k; i++ {
		addr := fmt.Sprintf("%s:%02x:%02x.%d", s.Address[:4], bus, i/8, i%8)
		d := n.addDevice(addr, s.Vendor, s.VFDevice, s.NUMANode, true)
		d.pf, d.index = s.Address, i
		must(os.Symlink("../"+addr, filepath.Join(pd.dir, fmt.Sprintf("virtfn%d", i))))
		must(os.Symlink("../"+s.Address, filepath.Join(d.dir, "physfn")))
		if s.IOMMU {
			n.addIOMMUGroup(d, "")
		}
		pf.vfs[i] = addr
		pf.settings[i] = host.VFSettings{LinkState: "auto", SpoofChk: true, VLANProto: host.VLANProto8021Q}
		n.probe(d)
	}
	must(os.WriteFile(filepath.Join(pd.dir, "sriov_numvfs"), []byte(strconv.Itoa(k)+"\n"), 0o644))
	// VF i is at routing ID bus<<8 | i: offset from the PF's, stride 1.
	var pfBus, pfDev, pfFn int
	_, _ = fmt.Sscanf(s.Address[5:], "%x:%x.%x", &pfBus, &pfDev, &pfFn)
	off := bus<<8 - (pfBus<<8 | pfDev<<3 | pfFn)
	must(os.WriteFile(filepath.Join(pd.dir, "sriov_offset"), []byte(strconv.Itoa(off)+"\n"), 0o444))
	must(os.WriteFile(filepath.Join(pd.dir, "sriov_stride"), []byte("1\n"), 0o444))
}

func (n *Node) destroyVFs(pf *fakePF) {
	pd := n.devs[pf.spec.Address]
	for i, addr := range pf.vfs {
		d := n.devs[addr]
		n.unbind(d)
		_ = os.Remove(filepath.Join(pd.dir, fmt.Sprintf("virtfn%d", i)))
		_ = os.RemoveAll(d.dir)
		_ = os.Remove(filepath.Join(n.Root, "sys/bus/pci/devices", addr))
		delete(n.devs, addr)
	}
	pf.vfs, pf.settings = nil, nil
	must(os.WriteFile(filepath.Join(pd.dir, "sriov_numvfs"), []byte("0\n"), 0o644))
}

// probe binds a VF to driver_override or to its default driver, and gives
// it a netdev (and RDMA device) when that driver is its network driver.
func (n *Node) probe(d *fakeDev) {
	pf := n.pfs[d.pf]
	if pf == nil { // a PF or another function: bind to the override only
		if d.override != "" {
			n.bind(d, d.override)
		}
		return
	}
	drv := pf.spec.VFDriver
	if d.override != "" {
		drv = d.override
	}
	if _, err := os.Stat(filepath.Join(n.Root, "sys/bus/pci/drivers", drv)); err != nil && drv != pf.spec.VFDriver {
		return // driver not loaded: the device stays unbound
	}
	n.bind(d, drv)
	if drv != pf.spec.VFDriver {
		if drv == "vfio-pci" {
			if g := linkBaseOf(filepath.Join(d.dir, "iommu_group")); g != "" {
				must(os.MkdirAll(filepath.Join(n.Root, "dev/vfio"), 0o755))
				must(os.WriteFile(filepath.Join(n.Root, "dev/vfio", g), nil, 0o600))
				must(os.WriteFile(filepath.Join(n.Root, "dev/vfio/vfio"), nil, 0o666))
			}
		}
		return
	}
	name := fmt.Sprintf("%sv%d", pf.spec.Name, d.index)
	if pf.spec.Name == "" {
		name = fmt.Sprintf("vf%s", strings.NewReplacer(":", "", ".", "").Replace(d.addr))
	}
	create := func() {
		n.addNetdev(d, name, pf.spec.MTU, pf.spec.LinkType, true)
		if pf.spec.RDMA == RDMAPCI {
			n.addPCIRDMA(d, pf.spec.LinkType)
		}
	}
	if n.netdevDelay == 0 {
		create()
		return
	}
	n.pending.Add(1)
	go func(delay time.Duration) {
		defer n.pending.Done()
		time.Sleep(delay)
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.devs[d.addr] == d && d.driver == pf.spec.VFDriver && d.netdev == "" {
			create()
		}
	}(n.netdevDelay)
}

func (n *Node) unbind(d *fakeDev) {
	n.removeNetdev(d)
	if d.rdma != "" {
		n.removeRDMA(d.rdma)
		d.rdma = ""
	}
	if d.driver == "vfio-pci" {
		if g := linkBaseOf(filepath.Join(d.dir, "iommu_group")); g != "" {
			_ = os.Remove(filepath.Join(n.Root, "dev/vfio", g))
		}
	}
	n.bind(d, "")
}

// SetNumVFs creates VFs directly (test set-up), as if the node booted with them.
func (n *Node) SetNumVFs(pfAddr string, k int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	pf := n.pfs[pfAddr]
	if pf == nil {
		panic("hosttest: no PF " + pfAddr)
	}
	if len(pf.vfs) > 0 {
		n.destroyVFs(pf)
	}
	if k > 0 {
		n.createVFs(pf, k)
	}
}

// VFAddress is the PCI address of a PF's VF.
func (n *Node) VFAddress(pfAddr string, index int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pfs[pfAddr].vfs[index]
}

// Netdev is the netdev of a PCI function, empty if none.
func (n *Node) Netdev(addr string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d := n.devs[addr]; d != nil {
		return d.netdev
	}
	return ""
}

// Driver is the driver bound to a PCI function.
func (n *Node) Driver(addr string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if d := n.devs[addr]; d != nil {
		return d.driver
	}
	return ""
}

// SetCarrier sets a netdev's carrier (a cable pulled, a switch port down).
func (n *Node) SetCarrier(netdev string, up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.links[netdev]; l != nil {
		l.carrier = up
		c := "0"
		if up {
			c = "1"
		}
		_ = os.WriteFile(filepath.Join(n.devs[l.dev].dir, "net", netdev, "carrier"), []byte(c+"\n"), 0o644)
	}
}

// RemoveNetdev makes a netdev vanish from the node's namespace without a
// trace (a driver crash); HideNetdev moves it to another namespace.
func (n *Node) RemoveNetdev(netdev string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.links[netdev]; l != nil {
		n.removeNetdev(n.devs[l.dev])
	}
}

// RestoreNetdev gives a PCI function its netdev back (the driver recovered).
func (n *Node) RestoreNetdev(addr, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.devs[addr]
	pf := n.pfs[d.pf]
	n.addNetdev(d, name, pf.spec.MTU, pf.spec.LinkType, true)
}

// SetOtherNetns sets how many other network namespaces exist (they make an
// RDMA netns mode switch fail with EBUSY, as on a real node).
func (n *Node) SetOtherNetns(k int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.otherNetns = k
}

// FailWrite makes writes to paths ending in suffix fail with err (nil clears).
func (n *Node) FailWrite(suffix string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil {
		delete(n.writeFail, suffix)
		return
	}
	n.writeFail[suffix] = err
}

// FailNetlink makes a netlink method ("LinkSetVfTrust", ...) fail with err.
func (n *Node) FailNetlink(method string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil {
		delete(n.nlFail, method)
		return
	}
	n.nlFail[method] = err
}

// Writes are the sysfs writes made so far, as "path-relative-to-sys=value".
func (n *Node) Writes() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.writes...)
}

// PFs are the PF addresses, sorted.
func (n *Node) PFs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.pfs))
	for a := range n.pfs {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func linkBaseOf(path string) string {
	t, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

func must(err error) {
	if err != nil {
		panic("hosttest: " + err.Error())
	}
}

// SetPCIeRoot places a device under another PCIe root complex (as
// "pci0000:3a"): its /sys/bus/pci/devices link then resolves through
// /sys/devices/<root>/<address>, as on a machine with several root
// complexes. Every device starts under pci0000:00.
func (n *Node) SetPCIeRoot(addr, root string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	dir := filepath.Join(n.Root, "sys/devices", root)
	must(os.MkdirAll(dir, 0o755))
	must(os.Symlink("../pci0000:00/"+addr, filepath.Join(dir, addr)))
	bus := filepath.Join(n.Root, "sys/bus/pci/devices", addr)
	must(os.Remove(bus))
	must(os.Symlink("../../../devices/"+root+"/"+addr, bus))
}
