package host

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Soft-RoCE (rdma_rxe) devices for pods. An rxe device dies when its netdev
// changes namespace and cannot be moved itself, and before 7.x kernels it
// cannot carry traffic for a netdev outside the initial namespace
// (docs/emulated-node.md). So a pod's device is created after its VF is in
// the pod's namespace, from inside that namespace: the kernel looks the
// netdev up there and opens rxe's UDP socket there. The node must be in
// shared RDMA mode: the device registers in the initial RDMA namespace, so
// in exclusive mode no pod could see it.

// SoftRoCEType is the RDMA link type of soft-RoCE.
const SoftRoCEType = "rxe"

// SoftRoCEName is the soft-RoCE device name sluice gives the VF at pci:
// unique on the node (RDMA device names are node-wide in shared mode) and
// stable, so a device left by an interrupted DEL is recognised.
func SoftRoCEName(pci string) string {
	return "rxe_" + strings.NewReplacer(":", "_", ".", "_").Replace(pci)
}

// AddSoftRoCE creates the soft-RoCE device name on netdev, which lives in
// namespace ns, and returns it with its char devices. The kernel loads
// rdma_rxe on demand.
func (h *Host) AddSoftRoCE(ns *Netns, name, netdev string) (*RDMADevice, error) {
	nl, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()), unix.NETLINK_RDMA)
	if err != nil {
		return nil, stepErr(name, "open RDMA netlink socket in "+ns.Path(), fmt.Errorf("%w (is the RDMA core, ib_core, loaded?)", err))
	}
	defer nl.Close()
	if err := nl.RdmaLinkAdd(name, SoftRoCEType, netdev); err != nil {
		switch {
		case errors.Is(err, syscall.EEXIST):
			err = fmt.Errorf("%w: a device of that name exists (left by an earlier attachment?)", err)
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOENT):
			err = fmt.Errorf("%w: the kernel has no soft-RoCE (rdma_rxe module), or %s is not in %s", err, netdev, ns.Path())
		}
		return nil, stepErr(name, "create soft-RoCE device on "+netdev, err)
	}
	// Registration is synchronous; the uverbs class device follows it.
	// Its entry is among the software devices' (their parent directory),
	// not the node's whole list: the kernel offers no lookup by name (RDMA
	// netlink's GET_CHARDEV wants the device index, which only a dump of
	// every device gives).
	deadline := time.Now().Add(h.settle)
	for {
		chars := h.charDevicesOf(name, h.virtualDevicesDir())
		if hasUverbs(chars) {
			return &RDMADevice{Name: name, Netdev: netdev, CharDevices: chars}, nil
		}
		if time.Now().After(deadline) {
			_ = h.DeleteSoftRoCE(name)
			return nil, stepErr(name, "find its /dev/infiniband/uverbs device", fmt.Errorf("none after %s (is ib_uverbs loaded?)", h.settle))
		}
		time.Sleep(h.poll)
	}
}

func hasUverbs(chars []string) bool {
	for _, c := range chars {
		if strings.HasPrefix(c, "/dev/infiniband/uverbs") {
			return true
		}
	}
	return false
}

// DeleteSoftRoCE removes the soft-RoCE device name; one that is gone (it
// dies with its netdev's namespace) is ErrNotFound, wrapped.
func (h *Host) DeleteSoftRoCE(name string) error {
	nl, err := netlink.NewHandle(unix.NETLINK_RDMA)
	if err != nil {
		return stepErr(name, "open RDMA netlink socket", err)
	}
	defer nl.Close()
	if err := nl.RdmaLinkDel(name); err != nil {
		if strings.Contains(err.Error(), "not found") || errors.Is(err, syscall.ENODEV) {
			err = fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		return stepErr(name, "delete soft-RoCE device", err)
	}
	return nil
}
