package deviceplugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// eventDelay coalesces a burst of events (a config written through a
// temporary file and a rename, a PF losing carrier with all its VFs) into
// one rescan.
const eventDelay = 20 * time.Millisecond

// A failed netlink subscription is made again after linkRetry, doubling
// up to maxLinkRetry while subscribing fails; a subscription that ended
// (ENOBUFS) is made again at once, but at most once per linkRetry.
const (
	linkRetry    = time.Second
	maxLinkRetry = 30 * time.Second
)

// maxScanGap bounds the pause kept between two scans. The pause is twice
// the last scan's duration, so a storm of PF and VF link events (pods
// starting by the hundred, each with a VF; pods' own veths are filtered
// out before Run sees them) costs at most a third of a core on a node
// whose scan is slow, and a health change still shows within
// maxScanGap + eventDelay + a scan.
const maxScanGap = 250 * time.Millisecond

// Run serves the device plugin until ctx ends.
func Run(ctx context.Context, opts Options) error {
	m, err := NewManager(opts)
	if err != nil {
		return err
	}
	return m.Run(ctx)
}

// Run serves the pools until ctx ends, then stops every server and
// removes its socket. It rescans when the config file or the readiness
// gate changes, on link events, when an RDMA device changes, on Rescan or
// Options.Trigger, and every Options.Resync; it registers again whenever
// the kubelet restarts.
func (m *Manager) Run(ctx context.Context) error {
	if err := os.MkdirAll(m.opts.KubeletDir, 0o755); err != nil {
		return fmt.Errorf("create the kubelet's device-plugins directory (check --kubelet-dir): %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch the config, gate and kubelet directories: %w", err)
	}
	defer w.Close()
	watched := map[string]bool{}
	for _, dir := range m.watchedDirs() {
		if watched[dir] {
			continue
		}
		watched[dir] = true
		_ = os.MkdirAll(dir, 0o755)
		if err := w.Add(dir); err != nil {
			m.log.Error(err, "cannot watch directory; changes are seen at the next resync", "dir", dir)
		}
	}
	defer func() {
		m.stopAll()
		m.wg.Wait()
	}()

	links := m.subscribeLinks(ctx)
	subscribed, retry := time.Now(), linkRetry
	linkTimer := time.NewTimer(retry)
	if links != nil {
		linkTimer.Stop()
	}
	defer linkTimer.Stop()

	m.loadConfig()
	if err := m.scan(ctx); err != nil {
		m.log.Error(err, "scan failed; retrying")
	}

	resync := time.NewTicker(m.opts.Resync)
	defer resync.Stop()
	rdma := time.NewTicker(m.opts.RDMACheck)
	defer rdma.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	pending := false
	var lastEnd time.Time
	var gap time.Duration
	schedule := func(d time.Duration) {
		if pending {
			return
		}
		if wait := time.Until(lastEnd.Add(gap)); wait > d {
			d = wait
		}
		pending = true
		debounce.Reset(d)
	}
	trigger := m.opts.Trigger
	fsEvents, fsErrors := w.Events, w.Errors

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fsEvents:
			if !ok {
				fsEvents = nil
				continue
			}
			if m.onFileEvent(ctx, ev) {
				schedule(eventDelay)
			}
		case err, ok := <-fsErrors:
			if !ok {
				fsErrors = nil
				continue
			}
			m.log.Error(err, "file watch error; rescanning")
			schedule(0)
		case _, ok := <-links:
			if !ok {
				// Events were lost: one rescan once subscribed again
				// covers them and the time in between.
				m.log.Info("netlink link events ended (events may have been lost); subscribing again and rescanning")
				links = nil
				linkTimer.Reset(max(0, linkRetry-time.Since(subscribed)))
				continue
			}
			schedule(eventDelay)
		case <-linkTimer.C:
			if links = m.subscribeLinks(ctx); links == nil {
				retry = min(2*retry, maxLinkRetry)
				linkTimer.Reset(retry)
				continue
			}
			subscribed, retry = time.Now(), linkRetry
			schedule(0)
		case _, ok := <-trigger:
			if !ok {
				trigger = nil
				continue
			}
			schedule(0)
		case <-m.rescanReq:
			schedule(0)
		case <-resync.C:
			m.loadConfig()
			m.reregister(ctx, true)
			schedule(0)
		case <-rdma.C:
			if m.rdmaChanged() {
				schedule(0)
			}
		case <-debounce.C:
			pending = false
			start := time.Now()
			if err := m.scan(ctx); err != nil {
				m.log.Error(err, "scan failed; keeping the devices of the last scan")
			}
			lastEnd = time.Now()
			gap = min(2*lastEnd.Sub(start), maxScanGap)
		}
	}
}

func (m *Manager) watchedDirs() []string {
	dirs := []string{filepath.Clean(m.opts.KubeletDir), filepath.Dir(m.opts.ConfigFile)}
	if m.opts.ReadinessFile != "" {
		dirs = append(dirs, filepath.Dir(m.opts.ReadinessFile))
	}
	return dirs
}

// subscribeLinks subscribes to the link events of the PFs and VFs (the
// filter's), nil when it cannot.
func (m *Manager) subscribeLinks(ctx context.Context) <-chan string {
	ch, err := m.links.Subscribe(ctx, m.linkFilter.Concerns)
	if err != nil {
		m.log.Error(err, "cannot subscribe to link events; retrying")
		return nil
	}
	return ch
}

// onFileEvent handles a change in a watched directory and reports whether
// it calls for a rescan.
func (m *Manager) onFileEvent(ctx context.Context, ev fsnotify.Event) bool {
	dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	rescan := false
	if dir == filepath.Clean(m.opts.KubeletDir) {
		switch {
		case base == "kubelet.sock" && ev.Has(fsnotify.Create):
			m.log.Info("kubelet.sock created: the kubelet restarted; registering every pool again")
			m.reregister(ctx, false)
		case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
			for _, srv := range m.servers {
				if srv.socketBase() != base || srv.socketPresent() {
					continue
				}
				m.log.Info("pool socket removed (kubelet restart?); recreating it", "resource", srv.resource)
				if err := srv.serve(); err != nil {
					m.log.Error(err, "cannot recreate the pool's socket", "resource", srv.resource)
					continue
				}
				m.register(ctx, srv)
			}
		}
	}
	// A ConfigMap volume swaps a "..data" symlink rather than writing the
	// file itself, so any change in the directory re-reads the config.
	if dir == filepath.Dir(m.opts.ConfigFile) && m.loadConfig() {
		rescan = true
	}
	if m.opts.ReadinessFile != "" && dir == filepath.Dir(m.opts.ReadinessFile) {
		rescan = true
	}
	return rescan
}
