package host

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// LinkEvent is what one netlink link message says of its link: enough to
// tell a PF or a VF from a pod's veth without asking the kernel again.
type LinkEvent struct {
	Name string
	// Kind is the link's rtnetlink kind: "device" for the netdev of a
	// hardware driver, "ipoib", or a software kind ("veth", "bridge", ...).
	Kind string
	// ParentBus and ParentDev name the device under the netdev ("pci",
	// "0000:03:00.2") when the kernel says (Linux 5.16 and later); empty for
	// software links and on older kernels.
	ParentBus, ParentDev string
	// Deleted: the link vanished or left the namespace.
	Deleted bool
}

// SubscribeLinks delivers the name of each link that changes in the
// caller's network namespace (a netdev appearing, vanishing, losing
// carrier, a PF's VF settings changing) and for which keep is true (every
// link when keep is nil), until ctx ends. Events keep refuses are dropped
// here, before they wake the caller; a LinkFilter's Concerns is the keep
// of sluice's watchers. Names are dropped while the channel is full: a full
// channel already holds a pending change. The channel is closed when the
// subscription fails (a receive error, e.g. ENOBUFS when events came
// faster than they were read); events may then have been lost, and the
// caller rediscovers and subscribes again.
func SubscribeLinks(ctx context.Context, keep func(LinkEvent) bool) (<-chan string, error) {
	return subscribeLinks(ctx, nil, keep)
}

// SubscribeLinks is SubscribeLinks in the namespace n.
func (n *Netns) SubscribeLinks(ctx context.Context, keep func(LinkEvent) bool) (<-chan string, error) {
	h := netns.NsHandle(n.Fd())
	return subscribeLinks(ctx, &h, keep)
}

// subscribeLinks subscribes in ns, the caller's namespace when nil.
func subscribeLinks(ctx context.Context, ns *netns.NsHandle, keep func(LinkEvent) bool) (<-chan string, error) {
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	// A receive error ends netlink's reader, which closes updates.
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{Namespace: ns, ReceiveBufferSize: 1 << 20})
	if err != nil {
		close(done)
		return nil, fmt.Errorf("subscribe to netlink link events: %w", err)
	}
	out := make(chan string, 64)
	go func() {
		defer func() {
			close(done)
			// Let netlink's reader finish a blocked send and close updates.
			go func() {
				for range updates {
				}
			}()
			close(out)
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				ev := linkEventOf(u)
				if keep != nil && !keep(ev) {
					continue
				}
				select {
				case out <- ev.Name:
				default:
				}
			}
		}
	}()
	return out, nil
}

func linkEventOf(u netlink.LinkUpdate) LinkEvent {
	ev := LinkEvent{Deleted: u.Header.Type == unix.RTM_DELLINK}
	if u.Link == nil {
		return ev
	}
	a := u.Attrs()
	ev.Name, ev.Kind = a.Name, u.Link.Type()
	ev.ParentBus, ev.ParentDev = a.ParentDevBus, a.ParentDev
	return ev
}
