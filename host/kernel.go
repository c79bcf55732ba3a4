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
	LinkSetVfHardwareAddr(link netlink.Link, vf int, hwaddr net.HardwareAddr) error
	LinkSetVfVlanQosProto(link netlink.Link, vf, vlan, qos, proto int) error
	LinkSetVfTrust(link netlink.Link, vf int, state bool) error
	LinkSetVfSpoofchk(link netlink.Link, vf int, check bool) error
	LinkSetVfState(link netlink.Link, vf int, state uint32) error
	LinkSetVfRate(link netlink.Link, vf, minRate, maxRate int) error
}

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
