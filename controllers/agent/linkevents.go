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
	// Subscribe delivers the name of each changed link that keep accepts
	// until ctx ends. The channel is closed when the subscription fails.
	Subscribe(ctx context.Context, keep func(host.LinkEvent) bool) (<-chan string, error)
}

// netlinkEvents subscribes to RTNLGRP_LINK in the caller's namespace.
type netlinkEvents struct{}

func (netlinkEvents) Subscribe(ctx context.Context, keep func(host.LinkEvent) bool) (<-chan string, error) {
	return host.SubscribeLinks(ctx, keep)
}

// A failed subscription is made again after linkRetry, doubling up to
// maxLinkRetry while subscribing fails; one that ended (ENOBUFS) is made
// again at once, but at most once per linkRetry.
const (
	linkRetry    = time.Second
	maxLinkRetry = 30 * time.Second
)

// linkWatch triggers a sync when the node's PFs and VFs appear, vanish or
// change (VFs created or destroyed behind the agent's back, a driver
// reset), at most once per quiet period. keep (the reconciler's
// LinkFilter) drops every other link's events, pods' veths among them,
// before they reach it. When the subscription fails, events were lost: it
// subscribes again and triggers one sync. While it cannot subscribe (a
// restricted container), the periodic resync alone finds drift.
type linkWatch struct {
	links   LinkEvents
	keep    func(host.LinkEvent) bool
	quiet   time.Duration
	trigger func()
	log     logr.Logger
}

// run watches until ctx ends.
func (w linkWatch) run(ctx context.Context) error {
	retry := linkRetry
	failing, lost := false, false
	for {
		subscribed := time.Now()
		updates, err := w.links.Subscribe(ctx, w.keep)
		if err != nil {
			if !failing {
				w.log.Info("cannot subscribe to netlink link events; drift is found by the periodic resync until it works", "error", err.Error())
			}
			failing, lost = true, true
			if !sleep(ctx, retry) {
				return nil
			}
			retry = min(2*retry, maxLinkRetry)
			continue
		}
		if failing {
			w.log.Info("subscribed to netlink link events")
		}
		failing, retry = false, linkRetry
		if lost {
			w.trigger() // what changed while there was no subscription
		}
		if !w.follow(ctx, updates) {
			return nil
		}
		w.log.Info("netlink link events ended (events may have been lost); subscribing again and resyncing")
		lost = true
		if !sleep(ctx, linkRetry-time.Since(subscribed)) {
			return nil
		}
	}
}

// follow triggers on updates until the channel closes (true) or ctx ends
// (false).
func (w linkWatch) follow(ctx context.Context, updates <-chan string) bool {
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return false
		case _, ok := <-updates:
			if !ok {
				return ctx.Err() == nil
			}
			if timer == nil {
				timer = time.After(w.quiet)
			}
		case <-timer:
			timer = nil
			w.trigger()
		}
	}
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func objectMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
