package agent

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-net/sluice/host"
)

// LinkEvents is a source of network link changes; see
// host.SubscribeLinks, the netlink subscription it stands for.
type LinkEvents interface {
	// Subscribe delivers the name of each changed link until ctx ends. The
	// channel is closed when the subscription fails.
	Subscribe(ctx context.Context) (<-chan string, error)
}

// netlinkEvents subscribes to RTNLGRP_LINK in the caller's namespace.
type netlinkEvents struct{}

func (netlinkEvents) Subscribe(ctx context.Context) (<-chan string, error) {
	return host.SubscribeLinks(ctx, nil)
}

// watchLinks triggers a sync when netdevs appear, vanish or change (VFs
// created or destroyed behind the agent's back, a driver reset), at most
// once per quiet period. Without netlink events (a restricted container, or
// a subscription that failed) it returns and the periodic resync alone
// finds drift.
func watchLinks(ctx context.Context, links LinkEvents, quiet time.Duration, trigger func(), log logr.Logger) error {
	updates, err := links.Subscribe(ctx)
	if err != nil {
		log.Info("no netlink link events; drift is found by the periodic resync only", "error", err.Error())
		return nil
	}
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-updates:
			if !ok {
				if ctx.Err() == nil {
					log.Info("netlink link events ended; drift is found by the periodic resync only")
				}
				return nil
			}
			if timer == nil {
				timer = time.After(quiet)
			}
		case <-timer:
			timer = nil
			trigger()
		}
	}
}

func objectMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
