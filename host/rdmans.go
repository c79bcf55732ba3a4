package host

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RDMANetnsMode returns the kernel's RDMA network-namespace mode, "shared"
// or "exclusive". In shared mode every RDMA device is visible from every
// namespace and cannot be moved; in exclusive mode a device belongs to one
// namespace and MoveRDMADevice moves it.
func (h *Host) RDMANetnsMode() (string, error) {
	mode, err := h.nl.RdmaSystemGetNetnsMode()
	if err != nil {
		return "", stepErr("rdma system", "read netns mode", fmt.Errorf("%w (is the RDMA core, ib_core, loaded?)", err))
	}
	return mode, nil
}

// MoveRDMADevice moves the RDMA device name from namespace from (where it
// is visible) into namespace to. The kernel allows it in exclusive mode,
// for devices whose driver supports it (mlx5 does; rxe does not). A device
// not in from is ErrNotFound (wrapped).
func (h *Host) MoveRDMADevice(from *Netns, name string, to *Netns) error {
	nl, err := netlink.NewHandleAt(netns.NsHandle(from.Fd()), unix.NETLINK_RDMA)
	if err != nil {
		return stepErr(name, "open RDMA netlink socket in "+from.Path(), fmt.Errorf("%w (is the RDMA core, ib_core, loaded?)", err))
	}
	defer nl.Close()
	var link *netlink.RdmaLink
	for try := 0; try < 5; try++ { // a dump interrupted by a change is retried
		if link, err = nl.RdmaLinkByName(name); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		if strings.Contains(err.Error(), "not found") || errors.Is(err, syscall.ENODEV) {
			err = fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		return stepErr(name, "find RDMA device in "+from.Path(), err)
	}
	if err := nl.RdmaLinkSetNsFd(link, uint32(to.Fd())); err != nil {
		if errors.Is(err, syscall.EOPNOTSUPP) {
			err = fmt.Errorf("%w: its driver cannot change namespace (soft-RoCE cannot; ConnectX can), or the node is in shared RDMA mode", err)
		}
		return stepErr(name, "move RDMA device to "+to.Path(), err)
	}
	return nil
}
