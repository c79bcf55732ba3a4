package host

import (
	"net"
	"os"

	"github.com/vishvananda/netlink"
)

// The kernel interfaces the host layer uses, one per concern. A
// *netlink.Handle satisfies all four; tests use hosttest's fake node.

// LinkReader lists network links and their VF settings.
type LinkReader interface {
	LinkList() ([]netlink.Link, error)
	LinkByName(name string) (netlink.Link, error)
}

// VFSetter changes a PF's per-VF settings and link MTUs.
type VFSetter interface {
	LinkSetMTU(link netlink.Link, mtu int) error
	// LinkSetVfInfo sends several settings of one VF in one request. The
	// kernel applies them in a fixed order (MAC, VLAN, rate, spoof check,
	// link state, trust) and stops at the first the driver refuses,
	// leaving those before it applied.
	LinkSetVfInfo(link netlink.Link, vf int, set VFInfoSet) error
}

// VFInfoSet is the settings of one VF that one LinkSetVfInfo request
// carries; nil fields are not sent.
type VFInfoSet struct {
	MAC       net.HardwareAddr
	VLAN      *VFVLAN
	Rate      *VFRate
	SpoofChk  *bool
	LinkState *uint32
	Trust     *bool
}

// VFVLAN is a VF's VLAN tag: ID, priority and protocol (VLANProto8021Q or
// VLANProto8021AD).
type VFVLAN struct{ VLAN, QoS, Proto int }

// VFRate is a VF's TX rate limits in Mbps; 0 is no limit.
type VFRate struct{ Min, Max int }

// RDMASystem reads and sets the kernel's RDMA network-namespace mode.
type RDMASystem interface {
	RdmaSystemGetNetnsMode() (string, error)
	RdmaSystemSetNetnsMode(mode string) error
}

// RouteReader lists routes (of the main table, as RouteList does).
type RouteReader interface {
	RouteList(link netlink.Link, family int) ([]netlink.Route, error)
}

// Netlink is everything the Host needs from netlink.
type Netlink interface {
	LinkReader
	VFSetter
	RDMASystem
	RouteReader
}

// kernelNetlink is netlink in the caller's network namespace.
type kernelNetlink struct{ *netlink.Handle }

func newKernelNetlink() kernelNetlink { return kernelNetlink{&netlink.Handle{}} }

// AttrWriter writes one sysfs attribute. The kernel may refuse a write
// (EBUSY, EINVAL, ...), which is returned as the error.
type AttrWriter interface {
	WriteAttr(path, value string) error
}

// fileWriter writes attributes with a single write(2), as sysfs expects.
type fileWriter struct{}

func (fileWriter) WriteAttr(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
