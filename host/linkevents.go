package host

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
)

// SubscribeLinks delivers the name of each link that changes in the
// caller's network namespace (a netdev appearing, vanishing, losing
// carrier, a PF's VF settings changing) until ctx ends; the name is empty
// when the kernel's message carried no link. Names are dropped while the
// channel is full: a full channel already holds a pending change. The
// channel is closed when the subscription fails (a receive error, e.g.
// ENOBUFS when events came faster than they were read); events may then
// have been lost, and the caller rediscovers and subscribes again.
func SubscribeLinks(ctx context.Context) (<-chan string, error) {
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	// A receive error ends netlink's reader, which closes updates.
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{ReceiveBufferSize: 1 << 20})
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
				name := ""
				if u.Link != nil {
					name = u.Attrs().Name
				}
				select {
				case out <- name:
				default:
				}
			}
		}
	}()
	return out, nil
}
