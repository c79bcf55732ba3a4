package deviceplugin

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Tree is every pool's devices at one scan. It is immutable once built:
// servers read it concurrently with the next scan.
type Tree struct {
	// Pools by resource name.
	Pools map[string]*PoolDevices
	// rdma maps each RDMA device an RDMA pool advertises to its state at
	// the scan ("" when absent, else the port states), for the light
	// health check between scans.
	rdma map[string]string
	// watchesRDMA is set when an RDMA pool exists: the light check then
	// also compares the node's RDMA devices with rdmaNames, so that a
	// device appearing for a pool that advertises none yet is seen.
	watchesRDMA bool
	// rdmaNames are the node's RDMA devices listed just before the scan.
	rdmaNames []string
	// attached is the attachment registry at the scan.
	attached map[string]nodefiles.Record
}

// PoolDevices is one pool's devices, sorted by ID.
type PoolDevices struct {
	Pool    Pool
	Devices []Device
	// Members are, for a whole-set shared pool, the selected RDMA devices
	// every unit hands out (one per RDMA device, in the scan's order).
	Members []Device

	index     map[string]int
	protoOnce sync.Once
	proto     []*pluginapi.Device
}

// Device is one advertised device: a VF, or one share of an RDMA device.
type Device struct {
	ID string
	// Healthy is false with a Reason when the device cannot be used now.
	Healthy bool
	Reason  string
	// NUMANode is -1 when unknown.
	NUMANode int
	// PCIAddress is the VF's (or the function's, served whole), or for a
	// share the function owning the RDMA device.
	PCIAddress string
	// PFAddress and PFName are empty for a function served whole.
	PFAddress string
	PFName    string
	// VFIndex is -1 for a PF.
	VFIndex    int
	Netdev     string
	Driver     string
	IOMMUGroup string
	// UIO is the uio device ("uio0") of a function on a uio driver.
	UIO string
	// NoIOMMU: the vfio group is vfio's no-IOMMU /dev/vfio/noiommu-N.
	NoIOMMU bool
	// PCIeRoot is the PCIe root complex ("pci0000:3a"), empty if unknown.
	PCIeRoot string
	// Vendor and DeviceID are the function's PCI IDs ("15b3", "101e").
	Vendor, DeviceID string
	// LinkType is the PF's link type (eth, ib), MTU the netdev's (the
	// VF's, or the PF's when the VF has none here), 0 when unknown.
	LinkType string
	MTU      int
	// RDMA is the RDMA device handed out with the device, nil for none.
	RDMA *RDMAInfo
	// Group is what preferred allocation spreads over: the PF of a VF, the
	// RDMA device of a share.
	Group string
}

// RDMAInfo is an RDMA device and the char devices a container needs for
// it, as the container sees them.
type RDMAInfo struct {
	Name        string   `json:"device"`
	CharDevices []string `json:"charDevices"`
}

func (d *Device) equal(o *Device) bool {
	if d.ID != o.ID || d.Healthy != o.Healthy || d.Reason != o.Reason || d.NUMANode != o.NUMANode ||
		d.PCIAddress != o.PCIAddress || d.PFAddress != o.PFAddress || d.PFName != o.PFName ||
		d.VFIndex != o.VFIndex || d.Netdev != o.Netdev || d.Driver != o.Driver ||
		d.IOMMUGroup != o.IOMMUGroup || d.UIO != o.UIO || d.NoIOMMU != o.NoIOMMU || d.Group != o.Group || d.PCIeRoot != o.PCIeRoot ||
		d.Vendor != o.Vendor || d.DeviceID != o.DeviceID || d.LinkType != o.LinkType || d.MTU != o.MTU {
		return false
	}
	if (d.RDMA == nil) != (o.RDMA == nil) {
		return false
	}
	return d.RDMA == nil || (d.RDMA.Name == o.RDMA.Name && slices.Equal(d.RDMA.CharDevices, o.RDMA.CharDevices))
}

func newPoolDevices(p Pool, devs []Device) *PoolDevices {
	sort.Slice(devs, func(i, j int) bool { return devs[i].ID < devs[j].ID })
	pd := &PoolDevices{Pool: p, Devices: devs, index: make(map[string]int, len(devs))}
	for i := range devs {
		pd.index[devs[i].ID] = i
	}
	return pd
}

// Device returns the device with the given ID.
func (pd *PoolDevices) Device(id string) (*Device, bool) {
	i, ok := pd.index[id]
	if !ok {
		return nil, false
	}
	return &pd.Devices[i], true
}

// Healthy counts the healthy devices.
func (pd *PoolDevices) Healthy() int {
	n := 0
	for i := range pd.Devices {
		if pd.Devices[i].Healthy {
			n++
		}
	}
	return n
}

// apiDevices is the ListAndWatch list, built once per PoolDevices.
func (pd *PoolDevices) apiDevices() []*pluginapi.Device {
	pd.protoOnce.Do(func() {
		pd.proto = make([]*pluginapi.Device, len(pd.Devices))
		for i := range pd.Devices {
			d := &pd.Devices[i]
			ad := &pluginapi.Device{ID: d.ID, Health: pluginapi.Healthy}
			if !d.Healthy {
				ad.Health = pluginapi.Unhealthy
			}
			if d.NUMANode >= 0 && !pd.Pool.ExcludeTopology {
				ad.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(d.NUMANode)}}}
			}
			pd.proto[i] = ad
		}
	})
	return pd.proto
}

// sameAs reports whether two scans of a pool advertise the same thing.
func (pd *PoolDevices) sameAs(o *PoolDevices) bool {
	if !poolEqual(&pd.Pool, &o.Pool) || len(pd.Devices) != len(o.Devices) || len(pd.Members) != len(o.Members) {
		return false
	}
	for i := range pd.Members {
		if !pd.Members[i].equal(&o.Members[i]) {
			return false
		}
	}
	for i := range pd.Devices {
		if !pd.Devices[i].equal(&o.Devices[i]) {
			return false
		}
	}
	return true
}

// Attachment is sluice-cni's attachment record of the VF at pciAddress at
// the scan: ok when a pod holds it through the CNI.
func (t *Tree) Attachment(pciAddress string) (r nodefiles.Record, ok bool) {
	r, ok = t.attached[pciAddress]
	return r, ok
}

// NewTreeAttached is NewTree with the CNI's attachment records at the scan.
func NewTreeAttached(snap *host.Snapshot, cfg *Config, attached map[string]nodefiles.Record) *Tree {
	return buildTree(scanInput{snap: snap, cfg: cfg, attached: attached})
}

// scanInput is everything a scan reads.
type scanInput struct {
	snap *host.Snapshot
	cfg  *Config
	// gate is nil when the readiness gate is disabled.
	gate     *nodefiles.GateState
	attached map[string]nodefiles.Record
	// claimed are the VFs DRA claims hold.
	claimed map[string]bool
	// prev is the previous scan, nil for the first.
	prev *Tree
}

// NewTree builds the tree of a discovery with every PF ready and no VF
// attached: a scan without the node agent's readiness gate or the CNI's
// registry (tools, and tests of what is built from a tree).
func NewTree(snap *host.Snapshot, cfg *Config) *Tree {
	return buildTree(scanInput{snap: snap, cfg: cfg})
}

// buildTree builds the device tree of a scan. It only computes: all reads
// happened before.
func buildTree(in scanInput) *Tree {
	t := &Tree{Pools: map[string]*PoolDevices{}, rdma: map[string]string{}, attached: in.attached}
	if in.cfg == nil || in.snap == nil {
		return t
	}
	for i := range in.cfg.Pools {
		p := &in.cfg.Pools[i]
		var prev *PoolDevices
		if in.prev != nil {
			prev = in.prev.Pools[p.Resource()]
		}
		var devs, members []Device
		switch {
		case p.Shared() && p.WholeSet:
			members = sharedBases(in, p, nil)
			devs = wholeSetUnits(p, members)
		case p.Shared():
			devs = sharedDevices(in, p, prev)
		default:
			devs = vfDevices(in, p, prev)
		}
		pd := newPoolDevices(*p, devs)
		pd.Members = members
		t.Pools[p.Resource()] = pd
		if p.RDMA {
			t.watchesRDMA = true
			t.watchRDMA(in.snap, pd)
		}
	}
	return t
}

// prevByAddress indexes a previous scan's devices by PCI address.
func prevByAddress(prev *PoolDevices) map[string]*Device {
	if prev == nil {
		return nil
	}
	m := make(map[string]*Device, len(prev.Devices))
	for i := range prev.Devices {
		d := &prev.Devices[i]
		if _, ok := m[d.PCIAddress]; !ok {
			m[d.PCIAddress] = d
		}
	}
	return m
}

func vfDevices(in scanInput, p *Pool, prev *PoolDevices) []Device {
	before := prevByAddress(prev)
	var devs []Device
	for i := range in.snap.PFs {
		pf := &in.snap.PFs[i]
		if in.gate != nil && !in.gate.IsReady(pf.PCIAddress) {
			continue
		}
		for j := range pf.VFs {
			vf := &pf.VFs[j]
			old := before[vf.PCIAddress]
			if !p.matchesVF(pf, vf, old != nil) {
				continue
			}
			_, attached := in.attached[vf.PCIAddress]
			held := attached || in.claimed[vf.PCIAddress]
			d := Device{
				ID: vf.PCIAddress, NUMANode: vf.NUMANode, PCIAddress: vf.PCIAddress,
				PFAddress: pf.PCIAddress, PFName: pf.Name, VFIndex: vf.Index, Netdev: vf.Netdev,
				Driver: vf.Driver, IOMMUGroup: vf.IOMMUGroup, UIO: vf.UIO, NoIOMMU: vf.NoIOMMU, Group: pf.PCIAddress,
				PCIeRoot: vf.PCIeRoot, Vendor: vf.Vendor, DeviceID: vf.Device, LinkType: pf.LinkType, MTU: vf.MTU,
			}
			if d.MTU == 0 {
				d.MTU = pf.MTU
			}
			if p.RDMA {
				d.RDMA = rdmaInfo(vf.RDMA)
				if d.RDMA == nil && old != nil {
					d.RDMA = old.RDMA // keep watching the one that vanished
				}
			}
			reasons := vfHealth(p, pf, vf, old, held)
			d.Healthy, d.Reason = len(reasons) == 0, strings.Join(reasons, "; ")
			devs = append(devs, d)
		}
	}
	return append(devs, wholeDevices(in, p, before)...)
}

func (p *Pool) matchesVF(pf *host.PF, vf *host.VF, inPool bool) bool {
	for i := range p.Selectors {
		if p.Selectors[i].matchVF(pf, vf, inPool) {
			return true
		}
	}
	return false
}

func (p *Pool) matchesShared(c candidate, inPool bool) bool {
	for i := range p.Selectors {
		if p.Selectors[i].matchShared(c, inPool) {
			return true
		}
	}
	return false
}

func sharedDevices(in scanInput, p *Pool, prev *PoolDevices) []Device {
	var devs []Device
	for _, base := range sharedBases(in, p, prevByAddress(prev)) {
		for k := range p.SharedMax {
			d := base
			d.ID = base.RDMA.Name + "-" + strconv.Itoa(k)
			devs = append(devs, d)
		}
	}
	return devs
}

// sharedBases lists the functions whose RDMA device a shared pool selects,
// one device each (without ID). before is the previous scan's devices by
// PCI address, nil to forget devices that vanished.
func sharedBases(in scanInput, p *Pool, before map[string]*Device) []Device {
	var devs []Device
	add := func(c candidate) {
		old := before[c.address()]
		if !p.matchesShared(c, old != nil) {
			return
		}
		r := rdmaInfo(c.rdma())
		if r == nil {
			if old == nil || old.RDMA == nil {
				return
			}
			r = old.RDMA
		}
		base := Device{
			NUMANode: c.pf.NUMANode, PCIAddress: c.address(), PFAddress: c.pf.PCIAddress, PFName: c.pf.Name,
			VFIndex: -1, Netdev: c.netdev(), Driver: c.pf.Driver, RDMA: r, Group: r.Name,
			PCIeRoot: c.pf.PCIeRoot, Vendor: c.pf.Vendor, DeviceID: c.pf.Device, LinkType: c.pf.LinkType, MTU: c.pf.MTU,
		}
		if c.vf != nil {
			base.VFIndex, base.Driver, base.IOMMUGroup = c.vf.Index, c.vf.Driver, c.vf.IOMMUGroup
			base.Vendor, base.DeviceID = c.vf.Vendor, c.vf.Device
			if c.vf.MTU != 0 {
				base.MTU = c.vf.MTU
			}
		}
		reasons := sharedHealth(c, old)
		base.Healthy, base.Reason = len(reasons) == 0, strings.Join(reasons, "; ")
		devs = append(devs, base)
	}
	for i := range in.snap.PFs {
		pf := &in.snap.PFs[i]
		add(candidate{pf: pf})
		if in.gate != nil && !in.gate.IsReady(pf.PCIAddress) {
			continue
		}
		for j := range pf.VFs {
			add(candidate{pf: pf, vf: &pf.VFs[j]})
		}
	}
	for i := range in.snap.NICs {
		add(candidate{pf: &in.snap.NICs[i]}) // an RDMA NIC without SR-IOV
	}
	return devs
}

func rdmaInfo(r *host.RDMADevice) *RDMAInfo {
	if r == nil {
		return nil
	}
	return &RDMAInfo{Name: r.Name, CharDevices: r.CharDevices}
}

// watchRDMA records the state of every RDMA device the pool advertises.
func (t *Tree) watchRDMA(snap *host.Snapshot, pd *PoolDevices) {
	present := map[string]*host.RDMADevice{}
	for i := range snap.PFs {
		pf := &snap.PFs[i]
		if pf.RDMA != nil {
			present[pf.RDMA.Name] = pf.RDMA
		}
		for j := range pf.VFs {
			if r := pf.VFs[j].RDMA; r != nil {
				present[r.Name] = r
			}
		}
	}
	presentRDMA(snap, present)
	for _, devs := range [][]Device{pd.Devices, pd.Members} {
		for i := range devs {
			r := devs[i].RDMA
			if r == nil {
				continue
			}
			var states []string
			d := present[r.Name]
			if d != nil {
				for _, p := range d.Ports {
					states = append(states, p.State)
				}
			}
			t.rdma[r.Name] = rdmaState(d != nil, states)
		}
	}
}

// rdmaState summarises an RDMA device's presence and port states as the
// light health check compares them.
func rdmaState(present bool, ports []string) string {
	if !present {
		return ""
	}
	return "ports:" + strings.Join(ports, ",")
}
