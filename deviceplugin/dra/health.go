package dra

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/sluice-net/sluice/deviceplugin"
)

// Device health over the kubelet's DRAResourceHealth service (KEP-4680):
// the kubelet shows it per device in the status of the pods that hold the
// device (status.containerStatuses[].allocatedResourcesStatus). Each
// Publish records the health of every device it publishes, as the scan
// found it (the same health as the devices' healthy attribute, with the
// scan's reason as the message of an unhealthy device); every
// WatchHealthStatus sends it at once, again whenever a Publish changes a
// device's health or the set of devices, and again every HealthResend, so
// that the kubelet never lets it go stale (HealthCheckTimeout).

const (
	// DefaultHealthCheckTimeout is how long the kubelet keeps a reported
	// health before it says Unknown: the kubelet's own default.
	DefaultHealthCheckTimeout = 30 * time.Second
	// DefaultHealthResend is how often the health of every device is sent
	// again when nothing changed.
	DefaultHealthResend = 10 * time.Second
)

// healthFeed is the devices' health of the latest Publish, for the
// watchers. Publish never waits for a watcher: it replaces the devices
// and closes changed, on which every watcher waits.
type healthFeed struct {
	mu      sync.Mutex
	devices []kubeletplugin.DeviceHealth
	// changed is closed when the devices or their health change, and then
	// replaced by the next get.
	changed chan struct{}
}

// set records the health of a scan's devices (in device-name order; the
// feed keeps the slice).
func (f *healthFeed) set(devs []kubeletplugin.DeviceHealth) (changed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed = !sameHealth(f.devices, devs)
	// Replaced even when the same: LastUpdated is the latest scan.
	f.devices = devs
	if changed && f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
	return changed
}

// get returns the devices' health (a copy) and a channel closed at the
// next change.
func (f *healthFeed) get() ([]kubeletplugin.DeviceHealth, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return slices.Clone(f.devices), f.changed
}

// sameHealth: the same devices with the same health and messages.
func sameHealth(a, b []kubeletplugin.DeviceHealth) bool {
	return slices.EqualFunc(a, b, func(x, y kubeletplugin.DeviceHealth) bool {
		return x.PoolName == y.PoolName && x.DeviceName == y.DeviceName && x.Health == y.Health &&
			x.Message == y.Message && x.HealthCheckTimeout == y.HealthCheckTimeout
	})
}

// deviceHealth is the health of the devices Resources(node, t) publishes,
// in device-name order, determined at now.
func deviceHealth(node string, t *deviceplugin.Tree, timeout time.Duration, now time.Time) []kubeletplugin.DeviceHealth {
	var out []kubeletplugin.DeviceHealth
	for _, d := range draVFs(t) {
		h := kubeletplugin.DeviceHealth{
			PoolName: node, DeviceName: DeviceName(d.PCIAddress),
			Health: kubeletplugin.HealthStatusHealthy, LastUpdated: now, HealthCheckTimeout: timeout,
		}
		if !d.Healthy {
			h.Health, h.Message = kubeletplugin.HealthStatusUnhealthy, d.Reason
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b kubeletplugin.DeviceHealth) int { return cmp.Compare(a.DeviceName, b.DeviceName) })
	return out
}

// WatchHealthStatus sends the health of every published device (none
// before the first Publish) at once, again after each Publish that
// changes it, and every HealthResend otherwise, until ctx ends. Each call
// (the kubelet reconnects) watches on its own.
func (d *Driver) WatchHealthStatus(ctx context.Context, reports chan<- kubeletplugin.DeviceHealthReport) error {
	if d.opts.NoHealth {
		return kubeletplugin.ErrHealthNotSupported
	}
	resend := time.NewTicker(d.opts.HealthResend)
	defer resend.Stop()
	for {
		devs, changed := d.health.get()
		select {
		case <-ctx.Done():
			return nil
		case reports <- kubeletplugin.DeviceHealthReport{Devices: devs}:
		}
		resend.Reset(d.opts.HealthResend)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-resend.C:
		}
	}
}
