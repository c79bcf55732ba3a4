package agent

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-net/sluice/host"
)

// watchLinks triggers a sync when netdevs appear, vanish or change (VFs
// created or destroyed behind the agent's back, a driver reset), at most
// once per quiet period. Without netlink events (a restricted container, or
// a subscription that failed) it returns and the periodic resync alone
// finds drift.
func watchLinks(ctx context.Context, quiet time.Duration, trigger func(), log logr.Logger) error {
	updates, err := host.SubscribeLinks(ctx)
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
