package dra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/klog/v2"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/deviceplugin"
)

// Options configure the DRA kubelet plugin.
type Options struct {
	// DriverName is the driver's name (dradevice.DriverName of the
	// resource prefix). Required.
	DriverName string
	// NodeName is the node the slices describe. Required.
	NodeName string
	// NodeUID owns the slices; empty: looked up.
	NodeUID types.UID
	// KubeClient writes the ResourceSlices. Required.
	KubeClient kubernetes.Interface
	// PluginDir holds the DRA socket (the kubelet's
	// /var/lib/kubelet/plugins/<driver>); RegistryDir the registration
	// socket (/var/lib/kubelet/plugins_registry). Empty: the kubelet's
	// defaults.
	PluginDir, RegistryDir string
	// Node configures and restores the VFs of the claims. Required.
	Node Node
	// ClaimsDir holds the claim checkpoints (nodefiles.DefaultDRAClaimsDir
	// when empty), CDIDir the claims' CDI specs (the runtime's
	// nodefiles.DefaultCDIDir), AttachmentsDir the CNI's attachment
	// records, whose VFs are never prepared (nodefiles.DefaultAttachmentsDir),
	// LockDir the VF locks (nodefiles.DefaultLockDir).
	ClaimsDir, CDIDir, AttachmentsDir, LockDir string
	// LockTimeout bounds the wait for a VF's lock (10 s).
	LockTimeout time.Duration
	// NRISocket is the runtime's NRI socket (StartNRI; DefaultNRISocket
	// when empty).
	NRISocket string
	// NoNRI runs no NRI plugin: claims are prepared, but no VF's netdev
	// moves into its pod. For runtimes without NRI.
	NoNRI bool
	// HostNetns is the network namespace the VFs' netdevs live in and
	// come back to; empty: the agent's own (the host's).
	HostNetns string
	// CNIPath is where the claim configs' IPAM plugins are looked for
	// ($CNI_PATH, else DefaultCNIPath, when empty).
	CNIPath string
	// VFNetworks reads the VFNetworks claim configs name (vfNetwork);
	// nil: such configs fail Prepare.
	VFNetworks VFNetworkGetter
	// PlatformNamespace is the operator's namespace: its VFNetworks are
	// the platform's (package api/tenancy), which decides the namespaces
	// whose claims may name a VFNetwork.
	PlatformNamespace string
	// NoHealth turns the kubelet's device health service off: the
	// kubelet then never watches the devices' health (health.go), which
	// stays in their healthy attribute only.
	NoHealth bool
	// HealthCheckTimeout is how long the kubelet keeps a device's
	// reported health before it says Unknown (DefaultHealthCheckTimeout;
	// whole seconds), HealthResend how often the health of every device
	// is sent again when nothing changed (DefaultHealthResend; less than
	// HealthCheckTimeout).
	HealthCheckTimeout, HealthResend time.Duration
	// Log receives the driver's logs; the zero value discards them.
	Log logr.Logger
}

func (o *Options) defaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.ClaimsDir, nodefiles.DefaultDRAClaimsDir)
	def(&o.CDIDir, nodefiles.DefaultCDIDir)
	def(&o.AttachmentsDir, nodefiles.DefaultAttachmentsDir)
	def(&o.LockDir, nodefiles.DefaultLockDir)
	if o.LockTimeout <= 0 {
		o.LockTimeout = 10 * time.Second
	}
	if o.HealthCheckTimeout <= 0 {
		o.HealthCheckTimeout = DefaultHealthCheckTimeout
	}
	if o.HealthResend <= 0 {
		o.HealthResend = DefaultHealthResend
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.DriverName == "" {
		errs = append(errs, errors.New("DRA driver name is empty: set it to the resource prefix (sluice.dev)"))
	} else if msgs := validation.IsDNS1123Subdomain(o.DriverName); len(msgs) > 0 || len(o.DriverName) > resourceapi.DriverNameMaxLength {
		errs = append(errs, fmt.Errorf("DRA driver name %q (the resource prefix) must be a DNS subdomain of at most %d characters (%s): use a shorter --resource-prefix",
			o.DriverName, resourceapi.DriverNameMaxLength, strings.Join(msgs, "; ")))
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("DRA driver node name is empty: set --node-name (or NODE_NAME) to the node the agent runs on"))
	}
	if o.KubeClient == nil {
		errs = append(errs, errors.New("DRA driver has no Kubernetes client"))
	}
	if o.Node == nil {
		errs = append(errs, errors.New("DRA driver has no host to configure VFs on"))
	}
	// Checked after defaults.
	if o.HealthCheckTimeout%time.Second != 0 {
		errs = append(errs, fmt.Errorf("DRA device health check timeout %s is not whole seconds", o.HealthCheckTimeout))
	}
	if o.HealthResend >= o.HealthCheckTimeout {
		errs = append(errs, fmt.Errorf("DRA device health resend period %s must be shorter than the health check timeout %s, or the kubelet reports Unknown in between", o.HealthResend, o.HealthCheckTimeout))
	}
	return errors.Join(errs...)
}

// Driver is the DRA kubelet plugin: it registers with the kubelet,
// publishes the DRA pools' VFs of every scan it is given (Publish, from
// deviceplugin.Options.OnScan), and prepares the claims allocated to them
// (prepare.go).
type Driver struct {
	opts   Options
	log    logr.Logger
	helper *kubeletplugin.Helper
	// publish hands the slices to the helper (the tests' own in theirs).
	publish func(context.Context, resourceslice.DriverResources) error
	// health is the published devices' health, for WatchHealthStatus.
	health healthFeed

	mu sync.Mutex
	// published is the content last handed to the helper, to skip
	// identical rescans.
	published []resourceapi.Device
	started   bool
	// tree is the latest scan, where Prepare finds the claims' VFs.
	tree *deviceplugin.Tree

	// prepMu serialises Prepare, Unprepare and the runtime's sandbox
	// events (nri.go), which own claims.
	prepMu sync.Mutex
	claims *claims

	// nri is the connection to the runtime (StartNRI); statusQ feeds the
	// claim status writer (status.go).
	nri     *nriConn
	statusQ chan nodefiles.DRAClaim
	// nriDial connects to the NRI socket (nil: a Unix socket dial); the
	// tests cut the connection through it.
	nriDial func(path string) (net.Conn, error)
}

// newDriver checks the options and reads the claim checkpoints, before the
// kubelet can call.
func newDriver(o Options) (*Driver, error) {
	o.defaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	d := &Driver{opts: o, log: o.Log, nri: newNRIConn()}
	if err := d.loadClaims(); err != nil {
		return nil, err
	}
	return d, nil
}

// Start reads the claim checkpoints a previous run left (finishing or
// undoing what it was doing), then registers the plugin with the kubelet;
// Stop unregisters it. No slice is published before the first Publish.
func Start(ctx context.Context, o Options) (*Driver, error) {
	d, err := newDriver(o)
	if err != nil {
		return nil, err
	}
	o = d.opts
	opts := []kubeletplugin.Option{
		kubeletplugin.DriverName(o.DriverName),
		kubeletplugin.NodeName(o.NodeName),
		kubeletplugin.KubeClient(o.KubeClient),
	}
	if o.NoHealth {
		opts = append(opts, kubeletplugin.HealthService(false))
	}
	if o.NodeUID != "" {
		opts = append(opts, kubeletplugin.NodeUID(o.NodeUID))
	}
	if o.PluginDir == "" {
		o.PluginDir = filepath.Join(kubeletplugin.KubeletPluginsDir, o.DriverName)
	}
	if o.RegistryDir == "" {
		o.RegistryDir = kubeletplugin.KubeletRegistryDir
	}
	// The kubelet creates the registry; the plugin's own directory is ours.
	for _, dir := range []string{o.PluginDir, o.RegistryDir} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("DRA driver directory: %w", err)
		}
	}
	opts = append(opts, kubeletplugin.PluginDataDirectoryPath(o.PluginDir), kubeletplugin.RegistrarDirectoryPath(o.RegistryDir))
	h, err := kubeletplugin.Start(klog.NewContext(ctx, o.Log), d, opts...)
	if err != nil {
		return nil, fmt.Errorf("start the DRA kubelet plugin %s: %w", o.DriverName, err)
	}
	d.helper, d.publish = h, h.PublishResources
	return d, nil
}

// Stop stops publishing and serving; the slices stay until the node goes
// or the next driver on the node replaces them.
func (d *Driver) Stop() { d.helper.Stop() }

// Publish makes the node's ResourceSlices hold exactly the DRA pools'
// devices of the scan: new VFs are added, changed ones updated, vanished
// ones removed, and a tree without DRA pools leaves the node no device.
// The devices' health goes to the kubelet's health watchers (health.go),
// even when the slices cannot be written.
func (d *Driver) Publish(ctx context.Context, t *deviceplugin.Tree) error {
	res, err := Resources(d.opts.NodeName, t)
	if err != nil {
		return fmt.Errorf("build the ResourceSlices of node %s: %w", d.opts.NodeName, err)
	}
	var devs []resourceapi.Device
	for _, s := range res.Pools[d.opts.NodeName].Slices {
		devs = append(devs, s.Devices...)
	}
	health := deviceHealth(d.opts.NodeName, t, d.opts.HealthCheckTimeout, time.Now())
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tree = t
	if d.health.set(health) {
		unhealthy := 0
		for _, h := range health {
			if h.Health != kubeletplugin.HealthStatusHealthy {
				unhealthy++
			}
		}
		d.log.Info("DRA device health changed", "devices", len(health), "unhealthy", unhealthy)
	}
	if d.started && sameDevices(d.published, devs) {
		return nil
	}
	if err := d.publish(ctx, res); err != nil {
		return fmt.Errorf("publish the ResourceSlices of node %s: %w", d.opts.NodeName, err)
	}
	d.published, d.started = devs, true
	d.log.Info("published DRA devices", "devices", len(devs))
	return nil
}

func sameDevices(a, b []resourceapi.Device) bool {
	return len(a) == len(b) && equality.Semantic.DeepEqual(a, b)
}

// HandleError logs the helper's background errors: ResourceSlice
// publishing and gRPC failures, all retried by the helper.
func (d *Driver) HandleError(_ context.Context, err error, msg string) {
	d.log.Error(err, msg, "recoverable", errors.Is(err, kubeletplugin.ErrRecoverable))
}
