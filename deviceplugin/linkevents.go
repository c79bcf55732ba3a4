package deviceplugin

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
)

// LinkEvents is a source of network link changes (a netdev appearing,
// vanishing, losing carrier, a PF's VF settings changing).
type LinkEvents interface {
	// Subscribe delivers the name of each changed link until ctx ends. The
	// channel is closed when the subscription fails; events may then have
	// been lost, and the caller rescans and subscribes again.
	Subscribe(ctx context.Context) (<-chan string, error)
}

// netlinkEvents subscribes to RTNLGRP_LINK in the caller's namespace.
type netlinkEvents struct{}

func (netlinkEvents) Subscribe(ctx context.Context) (<-chan string, error) {
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	// A receive error (ENOBUFS when events came faster than read) ends
	// netlink's reader, which closes updates.
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
				// A full buffer already holds a pending rescan.
				select {
				case out <- name:
				default:
				}
			}
		}
	}()
	return out, nil
}
