package deviceplugin

import (
	"context"

	"github.com/sluice-net/sluice/host"
)

// LinkEvents is a source of network link changes (a netdev appearing,
// vanishing, losing carrier, a PF's VF settings changing).
type LinkEvents interface {
	// Subscribe delivers the name of each changed link that keep accepts
	// until ctx ends. The channel is closed when the subscription fails;
	// events may then have been lost, and the caller rescans and
	// subscribes again.
	Subscribe(ctx context.Context, keep func(host.LinkEvent) bool) (<-chan string, error)
}

// netlinkEvents subscribes to RTNLGRP_LINK in the caller's namespace.
type netlinkEvents struct{}

func (netlinkEvents) Subscribe(ctx context.Context, keep func(host.LinkEvent) bool) (<-chan string, error) {
	return host.SubscribeLinks(ctx, keep)
}
