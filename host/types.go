package host

// Snapshot is one discovery of the node.
type Snapshot struct {
	// PFs are the SR-IOV capable PCI functions, sorted by PCI address.
	PFs []PF
	// NICs are the network functions (PCI class 0x02) that are neither
	// SR-IOV capable nor VFs of a PF on this node: a NIC without SR-IOV,
	// a VF passed into a virtual machine. They are described as PFs with
	// no VFs (TotalVFs 0), sorted by PCI address. Only the device plugin
	// serves them, whole; nothing configures them.
	NICs []PF
	// RDMANetnsMode is "shared" or "exclusive", empty when the kernel has no
	// RDMA core.
	RDMANetnsMode string
}

// PF is an SR-IOV capable physical function.
type PF struct {
	PCIAddress string
	// Name is the PF's netdev in this network namespace, empty if none.
	Name string
	// Vendor and Device are the PCI IDs in lower-case hex ("15b3", "101b").
	Vendor, Device string
	// VendorName and DeviceName come from the PCI ID database, when known.
	VendorName, DeviceName string
	Driver                 string
	// IOMMUGroup is the function's IOMMU group number, empty without an
	// IOMMU.
	IOMMUGroup string
	Userspace
	// NUMANode is -1 when the platform does not say.
	NUMANode int
	// PCIeRoot is the PCIe root complex the PF sits under ("pci0000:3a"),
	// empty when unknown.
	PCIeRoot string
	Link
	// DefaultRoute is set when the function's netdev carries a default
	// route of the main routing table: it is the node's own uplink. It is
	// read only for functions that could be served whole (NICs and PFs
	// without VFs).
	DefaultRoute bool
	TotalVFs     int
	NumVFs       int
	// RDMA is the PF's own RDMA device.
	RDMA *RDMADevice
	// VFs are sorted by index.
	VFs []VF
}

// Link is what netlink says of a netdev; zero when there is none.
type Link struct {
	// LinkType is "eth" or "ib" (or the kernel's encapsulation name).
	LinkType string
	MAC      string
	MTU      int
	// OperState is the RFC 2863 state ("up", "down", "lowerlayerdown", ...).
	OperState string
	// Carrier is true when the link has carrier (IFF_LOWER_UP).
	Carrier bool
	// Up is the administrative state (IFF_UP).
	Up bool
}

// VF is a virtual function.
type VF struct {
	Index      int
	PCIAddress string
	PFAddress  string
	// PFName is the PF's netdev, empty if none.
	PFName         string
	Vendor, Device string
	Driver         string
	NUMANode       int
	// PCIeRoot is its PF's PCIe root complex.
	PCIeRoot string
	// IOMMUGroup is the VF's IOMMU group number, empty without an IOMMU.
	IOMMUGroup string
	Userspace
	// Netdev is the VF's netdev in this namespace: empty when it has none
	// (vfio-pci) or when it was moved into a pod's namespace.
	Netdev string
	Link
	// Settings are the VF's settings as the PF reports them.
	Settings VFSettings
	// PFIndex is the PF netdev's ifindex when Settings were read from it
	// (the look-up by PCI address sets it; 0 otherwise).
	PFIndex int
	// RDMA is the VF's RDMA device (PCI-parented, or soft-RoCE on its netdev).
	RDMA *RDMADevice
}

// Userspace is how a process reaches a function bound to a userspace I/O
// driver.
type Userspace struct {
	// UIO is the function's uio device ("uio0", /dev/uio0) when it is
	// bound to a uio driver (igb_uio, uio_pci_generic), from its uio/
	// directory; empty otherwise.
	UIO string
	// NoIOMMU is set when the function is bound to vfio-pci in the vfio
	// module's no-IOMMU mode: its group is /dev/vfio/noiommu-<IOMMUGroup>.
	NoIOMMU bool
}

// VFSettings are a VF's PF-side settings (ip link set PF vf N ...).
type VFSettings struct {
	MAC       string
	VLAN      int
	QoS       int
	VLANProto int
	SpoofChk  bool
	Trust     bool
	// LinkState is "auto", "enable" or "disable".
	LinkState string
	// MinTxRate and MaxTxRate are in Mbps, 0 for none.
	MinTxRate int
	MaxTxRate int
}

// RDMADevice is an RDMA (verbs) device.
type RDMADevice struct {
	Name string
	// Parent is the PCI address of the function it belongs to; empty for
	// software devices such as rxe.
	Parent string
	// Netdev is the netdev of a software device (rxe's parent).
	Netdev string
	// CharDevices are the /dev paths a process needs, as seen in a container:
	// /dev/infiniband/uverbsN, /dev/infiniband/rdma_cm, and for InfiniBand
	// umadN and issmN.
	CharDevices []string
	Ports       []RDMAPort
}

// RDMAPort is one port of an RDMA device.
type RDMAPort struct {
	Num int
	// State is the port state name (ACTIVE, DOWN, INIT, ...).
	State string
	// LinkLayer is Ethernet or InfiniBand.
	LinkLayer string
}

// Active reports whether port 1 (or any port) is ACTIVE.
func (d *RDMADevice) Active() bool {
	for _, p := range d.Ports {
		if p.State == "ACTIVE" {
			return true
		}
	}
	return false
}

// VFByAddress returns the VF with the given PCI address.
func (s *Snapshot) VFByAddress(addr string) (*PF, *VF) {
	for i := range s.PFs {
		for j := range s.PFs[i].VFs {
			if s.PFs[i].VFs[j].PCIAddress == addr {
				return &s.PFs[i], &s.PFs[i].VFs[j]
			}
		}
	}
	return nil, nil
}

// PFByAddress returns the PF with the given PCI address.
func (s *Snapshot) PFByAddress(addr string) *PF {
	for i := range s.PFs {
		if s.PFs[i].PCIAddress == addr {
			return &s.PFs[i]
		}
	}
	return nil
}
