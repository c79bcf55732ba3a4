package host

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// rtextFilterSkipStats asks the kernel to leave each VF's counters out of a
// link's VF list (RTEXT_FILTER_SKIP_STATS, include/uapi/linux/rtnetlink.h).
const rtextFilterSkipStats = 1 << 3

// LinkByName reads one link with its VF list, as the netlink package does,
// but without the VFs' counters, which sluice never reads: for each VF the
// kernel asks the driver for them (a firmware command per VF on some NICs),
// so a PF with many VFs made every CNI look-up pay for all of them.
// A kernel that refuses the filter gets the netlink package's request.
func (k kernelNetlink) LinkByName(name string) (netlink.Link, error) {
	if len(name) >= unix.IFNAMSIZ {
		return k.Handle.LinkByName(name) // an alternative name
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(nl.RTEXT_FILTER_VF|rtextFilterSkipStats)))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, 0)
	switch {
	case errors.Is(err, syscall.EINVAL):
		return k.Handle.LinkByName(name)
	case errors.Is(err, syscall.ENODEV):
		return nil, fmt.Errorf("link %s not found: %w", name, err)
	case err != nil:
		return nil, err
	case len(msgs) != 1:
		return nil, fmt.Errorf("link %s: %d answers to one look-up", name, len(msgs))
	}
	return netlink.LinkDeserialize(nil, msgs[0])
}
