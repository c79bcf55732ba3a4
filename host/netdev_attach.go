package host

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// NetdevSettings are what a netdev takes on arriving in a pod's namespace.
type NetdevSettings struct {
	// Name is its name there.
	Name string
	// MTU and MAC are set when non-zero.
	MTU int
	MAC net.HardwareAddr
	// Up sets it administratively up.
	Up bool
}

// AttachNetdev moves the netdev name from namespace from into namespace to
// and gives it set, in one netlink request: the kernel moves it, then sets
// its MAC, MTU and name and brings it up, in that order (rtnetlink's
// do_setlink). One request instead of one per step saves the round trips
// and the look-ups between them on the path of every pod.
//
// When name is taken in to the netdev arrives under set.Name directly; when
// both are, the kernel refuses the move and nothing changes. A failure once
// the netdev is in to (set.Name taken there, a MAC or MTU the driver
// refuses, a driver that cannot open) is undone: the netdev is back in
// from, under name, with the MAC, MTU and state it had.
func AttachNetdev(from *Netns, name string, to *Netns, set NetdevSettings) (err error) {
	if set.Name == "" {
		return stepErr(name, "attach", errors.New("no name for the netdev in the pod"))
	}
	link, err := from.link(name)
	if err != nil {
		return err
	}
	a, orig := link.Attrs(), stateOf(link)

	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(a.Index)
	if set.Up {
		msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(to.Fd()))))
	if set.MAC != nil && set.MAC.String() != orig.MAC {
		req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, set.MAC))
	}
	if set.MTU > 0 && set.MTU != orig.MTU {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(set.MTU))))
	}
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(set.Name)))
	sock, err := from.socket()
	if err != nil {
		return err
	}
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}
	if _, err = req.Execute(unix.NETLINK_ROUTE, 0); err == nil {
		return nil
	}
	what := fmt.Sprintf("move to network namespace %s as %s", to.Path(), set.Name)
	if errors.Is(err, syscall.EEXIST) {
		err = fmt.Errorf("%w: %s already has a netdev called %s: %v", ErrNameInUse, to.Path(), set.Name, err)
	}
	err = stepErr(name, what, err)
	// Where did the request stop? Still in from under its name: it did
	// not move. Otherwise it is in to, under name (moved, not renamed) or
	// set.Name (arrived under it, or renamed before a later step failed),
	// told apart from a netdev of to that had the name by its index (kept
	// unless taken in to) or its parent device (a VF's PCI address).
	if _, lerr := from.link(name); lerr == nil {
		return err
	}
	ours := func(l netlink.Link) bool {
		b := l.Attrs()
		return b.Index == a.Index || (a.ParentDev != "" && b.ParentDev == a.ParentDev && b.ParentDevBus == a.ParentDevBus)
	}
	cur := ""
	for _, n := range []string{set.Name, name} {
		if l, lerr := to.link(n); lerr == nil && ours(l) {
			cur = n
			break
		}
	}
	if cur == "" {
		return errors.Join(err, stepErr(name, "undo: find it in "+to.Path()+" (neither its index nor its parent device matches)", ErrNotFound))
	}
	back, merr := MoveNetdev(to, cur, from, name)
	if merr != nil {
		return errors.Join(err, fmt.Errorf("undo: %w", merr))
	}
	if rerr := from.RestoreNetdev(back, orig); rerr != nil {
		return errors.Join(err, fmt.Errorf("undo: %w", rerr))
	}
	return err
}
