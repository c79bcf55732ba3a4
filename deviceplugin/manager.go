package deviceplugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// nodeHost is what the plugin reads of the node.
type nodeHost interface {
	Discover(ctx context.Context) (*host.Snapshot, error)
	DevPath(p string) string
	RDMAPortStates(name string) ([]string, bool)
	RDMADeviceNames() []string
}

// Manager runs the device plugin: it scans the node into a device tree,
// diffs it against the previous one and starts, updates or stops one
// kubelet device plugin server per pool.
type Manager struct {
	opts        Options
	log         logr.Logger
	host        nodeHost
	links       LinkEvents
	attachments nodefiles.Attachments
	claims      nodefiles.DRAClaims
	alloc       allocator
	cdi         *cdiWriter
	devInfo     *devInfoFiles
	rescanReq   chan struct{}
	wg          sync.WaitGroup
	// linkFilter keeps the link events of the last scan's PFs and VFs and
	// of new ones; the rest (pods' veths) never wake Run.
	linkFilter *host.LinkFilter
	// scans counts completed scans.
	scans atomic.Int64
	// metrics is nil without Options.Metrics.
	metrics *metrics

	// Owned by the Run goroutine.
	servers  map[string]*poolServer
	cfgRaw   []byte
	lastGate *nodefiles.GateState
	// unreadable are the attachment records the last scan could not read.
	unreadable map[string]bool

	mu     sync.Mutex
	cfg    *Config
	cfgErr error
	tree   *Tree
}

// NewManager prepares a device plugin; Run serves it.
func NewManager(opts Options) (*Manager, error) {
	opts.defaults()
	h := opts.Host
	if h == nil {
		h = host.New(host.Paths{Sys: opts.SysRoot, Dev: opts.DevRoot})
	}
	m := &Manager{
		opts: opts, log: opts.Log, host: h, links: opts.LinkEvents, linkFilter: h.NewLinkFilter(),
		attachments: nodefiles.NewAttachments(opts.AttachmentsDir),
		claims:      nodefiles.NewDRAClaims(opts.DRAClaimsDir),
		rescanReq:   make(chan struct{}, 1),
		servers:     map[string]*poolServer{},
	}
	if m.links == nil {
		m.links = netlinkEvents{}
	}
	m.devInfo = newDevInfoFiles(opts.DeviceInfoDir, opts.Log)
	m.alloc = allocator{devPath: m.host.DevPath, cdi: opts.CDI, devInfo: m.devInfo}
	if opts.CDI {
		m.cdi = newCDIWriter(opts.CDIDir, m.host.DevPath)
	}
	if opts.KubeletDir == "" {
		return nil, errors.New("kubelet directory is empty: set --kubelet-dir")
	}
	if opts.Metrics != nil {
		m.metrics = newMetrics()
		if err := opts.Metrics.Register(collector{m: m, mt: m.metrics}); err != nil {
			return nil, fmt.Errorf("register device plugin metrics: %w", err)
		}
	}
	return m, nil
}

// Rescan asks for a rescan as soon as possible; it does not wait for it.
func (m *Manager) Rescan() {
	select {
	case m.rescanReq <- struct{}{}:
	default:
	}
}

// PoolCount is one pool's figures for metrics.
type PoolCount struct {
	Resource string
	// Advertised devices, Healthy among them.
	Advertised, Healthy int
	// Allocated are the pool's VFs the CNI attachment registry lists as
	// attached to pods. Shared RDMA pools report 0: the kubelet does not
	// tell a plugin when a pod releases a device.
	Allocated int
}

// Counts returns each pool's figures at the last scan, sorted by resource.
func (m *Manager) Counts() []PoolCount {
	m.mu.Lock()
	t := m.tree
	m.mu.Unlock()
	if t == nil {
		return nil
	}
	out := make([]PoolCount, 0, len(t.Pools))
	for res, pd := range t.Pools {
		c := PoolCount{Resource: res, Advertised: len(pd.Devices), Healthy: pd.Healthy()}
		if !pd.Pool.Shared() {
			for i := range pd.Devices {
				if _, ok := t.attached[pd.Devices[i].PCIAddress]; ok {
					c.Allocated++
				}
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

// ConfigError is why the config file was last refused (the pools of the
// last good one keep running), nil when it was accepted.
func (m *Manager) ConfigError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfgErr
}

func (m *Manager) kubeletSocket() string {
	return filepath.Join(m.opts.KubeletDir, "kubelet.sock")
}

// loadConfig re-reads the config file and reports whether the pools may
// have changed. A file that cannot be read or parsed keeps the last good
// config.
func (m *Manager) loadConfig() bool {
	b, err := os.ReadFile(m.opts.ConfigFile)
	if err != nil {
		m.mu.Lock()
		first := m.cfg == nil
		if first {
			m.cfg = &Config{Format: FormatNative}
		}
		changed := m.cfgErr == nil || first
		m.cfgErr = fmt.Errorf("read device plugin config: %w", err)
		m.mu.Unlock()
		if changed {
			if errors.Is(err, os.ErrNotExist) {
				m.log.Info("no device plugin config yet; serving no pools until it appears", "file", m.opts.ConfigFile)
			} else {
				m.log.Error(err, "cannot read the device plugin config; keeping the last good one", "file", m.opts.ConfigFile)
			}
		}
		m.cfgRaw = nil
		return first
	}
	if m.cfgRaw != nil && bytes.Equal(b, m.cfgRaw) {
		return false
	}
	m.cfgRaw = b
	cfg, err := ParseConfig(b, m.opts.ResourcePrefix)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.cfgErr = fmt.Errorf("%s: %w", m.opts.ConfigFile, err)
		if m.cfg == nil {
			m.cfg = &Config{Format: FormatNative}
		}
		m.log.Error(err, "invalid device plugin config; keeping the last good one", "file", m.opts.ConfigFile)
		return false
	}
	m.cfg, m.cfgErr = cfg, nil
	res := make([]string, len(cfg.Pools))
	for i := range cfg.Pools {
		res[i] = cfg.Pools[i].Resource()
	}
	m.log.Info("loaded device plugin config", "file", m.opts.ConfigFile, "format", cfg.Format, "pools", res)
	for i := range cfg.Pools {
		if p := &cfg.Pools[i]; p.WholeSet && p.SharedMax == 0 {
			m.log.Info("pool advertises no units: its rdmaHcaMax is 0 (or absent), as k8s-rdma-shared-dev-plugin takes it; set rdmaHcaMax to how many pods may share the devices", "file", m.opts.ConfigFile, "pool", p.Resource())
		}
	}
	return true
}

// readGate returns the readiness gate: nil when disabled, an empty state
// when closed. An unreadable gate keeps the last one read.
func (m *Manager) readGate() *nodefiles.GateState {
	if m.opts.ReadinessFile == "" {
		return nil
	}
	s, err := nodefiles.ReadGate(m.opts.ReadinessFile)
	switch {
	case err == nil:
		m.lastGate = &s
	case nodefiles.GateClosed(err):
		m.lastGate = &nodefiles.GateState{}
	default:
		m.log.Error(err, "cannot read the readiness gate; keeping the last one read", "file", m.opts.ReadinessFile)
		if m.lastGate == nil {
			m.lastGate = &nodefiles.GateState{}
		}
	}
	return m.lastGate
}

// scan discovers the node, builds the tree and applies it.
func (m *Manager) scan(ctx context.Context) error {
	start := time.Now()
	defer func() { m.metrics.scanned(time.Since(start)) }()
	// Listed before discovery: a device appearing in between makes the
	// next RDMA check rescan rather than go unseen.
	rdmaNames := m.host.RDMADeviceNames()
	snap, err := m.host.Discover(ctx)
	if err != nil {
		return fmt.Errorf("discover the node: %w", err)
	}
	m.linkFilter.Update(snap)
	g := m.readGate()
	att, bad, err := m.attachments.Attached()
	if err != nil {
		m.log.Error(err, "cannot read the CNI attachment registry; VFs moved into pods may show as Unhealthy", "dir", m.attachments.Root())
	}
	seen := make(map[string]bool, len(bad))
	for _, u := range bad {
		// Its VF stays held (Attached says so); the agent quarantines the
		// file once the VF is back on the host. Logged when first seen,
		// not at every scan (the agent's event and gauge keep saying it).
		seen[u.Path] = true
		if !m.unreadable[u.Path] {
			m.log.Error(u.Err, "unreadable attachment record: its VF is held as in use", "file", u.Path, "vf", u.PCIAddress)
		}
	}
	m.unreadable = seen
	m.mu.Lock()
	prev, cfg := m.tree, m.cfg
	m.mu.Unlock()
	t := buildTree(scanInput{snap: snap, cfg: cfg, gate: g, attached: att, claimed: m.claimed(), prev: prev})
	t.rdmaNames = rdmaNames
	// Published before apply: once a pool registers, the kubelet (and
	// whoever saw it there) may read the figures of the scan behind it.
	m.mu.Lock()
	m.tree = t
	m.mu.Unlock()
	m.apply(ctx, prev, t)
	m.devInfo.reconcile(t, start)
	if m.opts.OnScan != nil {
		m.opts.OnScan(t)
	}
	m.scans.Add(1)
	return nil
}

// apply starts, updates and stops servers to match the new tree.
func (m *Manager) apply(ctx context.Context, prev, t *Tree) {
	// CDI specs first: a device must be in its spec before the kubelet
	// can allocate it.
	if m.cdi != nil {
		if err := m.cdi.sync(t); err != nil {
			m.log.Error(err, "cannot write CDI specs", "dir", m.opts.CDIDir)
		}
	}
	for res, pd := range t.Pools {
		var old *PoolDevices
		if prev != nil {
			old = prev.Pools[res]
		}
		m.logHealth(old, pd)
		if pd.Pool.DRA {
			continue // the DRA driver publishes it
		}
		srv := m.servers[res]
		if srv == nil {
			srv = newPoolServer(pd, m.opts.KubeletDir, m.alloc, m.log)
			srv.metrics = m.metrics
			srv.attached = m.attachments.PCIAddresses
			if err := srv.serve(); err != nil {
				m.log.Error(err, "cannot serve pool; retrying at the next scan", "resource", res)
				continue
			}
			m.servers[res] = srv
			m.log.Info("serving pool", "resource", res, "devices", len(pd.Devices), "healthy", pd.Healthy())
			m.register(ctx, srv)
			continue
		}
		if old == nil || !pd.sameAs(old) {
			srv.update(pd)
		}
	}
	for res, srv := range m.servers {
		if pd := t.Pools[res]; pd == nil || pd.Pool.DRA {
			srv.stop()
			delete(m.servers, res)
			m.log.Info("stopped pool", "resource", res)
		}
	}
}

// logHealth logs devices that changed health.
func (m *Manager) logHealth(old, pd *PoolDevices) {
	if old == nil {
		return
	}
	for i := range pd.Devices {
		d := &pd.Devices[i]
		o, ok := old.Device(d.ID)
		if !ok || o.Healthy == d.Healthy {
			continue
		}
		if d.Healthy {
			m.log.Info("device healthy again", "resource", pd.Pool.Resource(), "device", d.ID)
		} else {
			m.log.Info("device unhealthy", "resource", pd.Pool.Resource(), "device", d.ID, "reason", d.Reason)
		}
	}
}

// register announces a pool to the kubelet in the background; a failure
// is retried when kubelet.sock is (re)created and at every resync. A pool
// whose current socket the current kubelet already accepted is not sent
// again (see poolServer.regMu): after a kubelet restart both the wiped
// socket and the new kubelet.sock ask for one registration.
func (m *Manager) register(ctx context.Context, srv *poolServer) {
	if _, err := os.Stat(m.kubeletSocket()); err != nil {
		srv.registered.Store(false)
		return // registered when kubelet.sock appears
	}
	m.wg.Go(func() {
		srv.regMu.Lock()
		defer srv.regMu.Unlock()
		kubelet := fileIdentity(m.kubeletSocket())
		srv.mu.Lock()
		served := srv.served
		srv.mu.Unlock()
		if srv.registered.Load() && srv.regServed == served && srv.regKubelet == kubelet {
			return
		}
		accepted := func() bool {
			return srv.watching.Load() > 0 && srv.attemptServed == served && srv.attemptKubelet == kubelet
		}
		done := func() {
			srv.mu.Lock()
			srv.regServed, srv.regKubelet = srv.served, kubelet
			srv.mu.Unlock()
			srv.registered.Store(true)
		}
		if accepted() {
			m.log.Info("the kubelet streams from the pool's socket: its last registration was accepted after all", "resource", srv.resource)
			done()
			return
		}
		srv.registered.Store(false)
		send := func() error {
			srv.mu.Lock()
			srv.attemptServed, srv.attemptKubelet = srv.served, kubelet
			srv.mu.Unlock()
			return srv.register(ctx, m.kubeletSocket(), m.opts.RegisterTimeout)
		}
		err := send()
		// A kubelet that is starting binds kubelet.sock (the create event
		// that brought us here) before it listens on it: "connection
		// refused" in between. Try again shortly rather than at the next
		// resync, while the socket is still that kubelet's.
		for delay := refusedRetry; err != nil && refused(err) && delay <= maxRefusedRetry; delay *= 2 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			if fileIdentity(m.kubeletSocket()) != kubelet {
				break // a newer kubelet.sock brings its own registration
			}
			err = send()
		}
		if err != nil && strings.Contains(err.Error(), "already connected") {
			// The kubelet keeps an endpoint for this socket path that it
			// will never drop: serve under a new name and register that.
			m.log.Info("the kubelet holds a stale endpoint for the pool's socket; serving on a new socket", "resource", srv.resource, "socket", srv.socketBase())
			if err = srv.renameSocket(); err == nil {
				served++
				err = send()
			}
		}
		if err != nil && accepted() {
			m.log.Info("registration answered late, but the kubelet streams from the pool's socket: accepted", "resource", srv.resource, "error", err.Error())
			err = nil
		}
		if err != nil {
			if ctx.Err() == nil {
				m.log.Error(err, "registration failed; retrying when the kubelet restarts or at the next resync")
			}
			return
		}
		done()
		m.log.V(1).Info("registered with the kubelet", "resource", srv.resource, "socket", srv.socketBase())
	})
}

// Retries of a registration the kubelet refused to connect: 0.1 s, doubling,
// up to 1.6 s (3.1 s in all).
const (
	refusedRetry    = 100 * time.Millisecond
	maxRefusedRetry = 1600 * time.Millisecond
)

// refused tells a kubelet that does not listen yet (or any more) from one
// that answered.
func refused(err error) bool {
	return status.Code(err) == codes.Unavailable
}

// fileIdentity tells two files at one path apart: device, inode and change
// time ("" when it is missing).
func fileIdentity(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d:%d.%d", sys.Dev, sys.Ino, sys.Ctim.Sec, sys.Ctim.Nsec)
	}
	return st.ModTime().String()
}

// reregister recreates missing sockets and registers every pool again:
// the kubelet was restarted.
func (m *Manager) reregister(ctx context.Context, onlyFailed bool) {
	for _, srv := range m.servers {
		if !srv.socketPresent() {
			if err := srv.serve(); err != nil {
				m.log.Error(err, "cannot recreate the pool's socket", "resource", srv.resource)
				continue
			}
		} else if onlyFailed && srv.registered.Load() {
			continue
		}
		m.register(ctx, srv)
	}
}

// rdmaChanged polls the RDMA devices the pools advertise and reports
// whether one changed port state since the scan, or, when any RDMA pool
// exists (even one advertising nothing yet), whether the node's set of RDMA
// devices changed.
func (m *Manager) rdmaChanged() bool {
	m.mu.Lock()
	t := m.tree
	m.mu.Unlock()
	if t == nil || !t.watchesRDMA {
		return false
	}
	if !slices.Equal(m.host.RDMADeviceNames(), t.rdmaNames) {
		return true // one appeared (perhaps under a new name) or vanished
	}
	for name, want := range t.rdma {
		states, ok := m.host.RDMAPortStates(name)
		if rdmaState(ok, states) != want {
			return true
		}
	}
	return false
}

func (m *Manager) stopAll() {
	for res, srv := range m.servers {
		srv.stop()
		delete(m.servers, res)
	}
}

// claimed is the VFs DRA claims hold (an unreadable hold holds its VF
// too): the driver moves their netdevs into pods, where the scan does not
// see them.
func (m *Manager) claimed() map[string]bool {
	holds, bad, err := m.claims.Holds()
	if err != nil {
		m.log.Error(err, "cannot read the DRA claims' holds; VFs moved into pods by the DRA driver may show as Unhealthy", "dir", m.claims.HoldsDir())
	}
	out := make(map[string]bool, len(holds)+len(bad))
	for _, h := range holds {
		out[h.PCIAddress] = true
	}
	for _, u := range bad {
		out[u.PCIAddress] = true
	}
	return out
}
