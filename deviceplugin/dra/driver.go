package dra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	"github.com/sluice-net/sluice/deviceplugin"
)

// ErrPrepareNotImplemented is every claim's answer to Prepare and
// Unprepare until the DRA path configures VFs: the pod stays in
// ContainerCreating with this message rather than start without its VF.
var ErrPrepareNotImplemented = errors.New("sluice's DRA driver does not prepare claims yet (configuring the VF and moving it into the pod is not implemented): use allocation DevicePlugin for pods that must start")

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
	// Log receives the driver's logs; the zero value discards them.
	Log logr.Logger
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
	return errors.Join(errs...)
}

// Driver is the DRA kubelet plugin: it registers with the kubelet and
// publishes the DRA pools' VFs of every scan it is given (Publish, from
// deviceplugin.Options.OnScan).
type Driver struct {
	opts   Options
	log    logr.Logger
	helper *kubeletplugin.Helper

	mu sync.Mutex
	// published is the content last handed to the helper, to skip
	// identical rescans.
	published []resourceapi.Device
	started   bool
}

// Start registers the plugin with the kubelet; Stop unregisters it. No
// slice is published before the first Publish.
func Start(ctx context.Context, o Options) (*Driver, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	d := &Driver{opts: o, log: o.Log}
	opts := []kubeletplugin.Option{
		kubeletplugin.DriverName(o.DriverName),
		kubeletplugin.NodeName(o.NodeName),
		kubeletplugin.KubeClient(o.KubeClient),
		// Health is an attribute of the published devices; no per-device
		// health stream to the kubelet yet.
		kubeletplugin.HealthService(false),
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
	d.helper = h
	return d, nil
}

// Stop stops publishing and serving; the slices stay until the node goes
// or the next driver on the node replaces them.
func (d *Driver) Stop() { d.helper.Stop() }

// Publish makes the node's ResourceSlices hold exactly the DRA pools'
// devices of the scan: new VFs are added, changed ones updated, vanished
// ones removed, and a tree without DRA pools leaves the node no device.
func (d *Driver) Publish(ctx context.Context, t *deviceplugin.Tree) error {
	res, err := Resources(d.opts.NodeName, t)
	if err != nil {
		return fmt.Errorf("build the ResourceSlices of node %s: %w", d.opts.NodeName, err)
	}
	var devs []resourceapi.Device
	for _, s := range res.Pools[d.opts.NodeName].Slices {
		devs = append(devs, s.Devices...)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started && sameDevices(d.published, devs) {
		return nil
	}
	if err := d.helper.PublishResources(ctx, res); err != nil {
		return fmt.Errorf("publish the ResourceSlices of node %s: %w", d.opts.NodeName, err)
	}
	d.published, d.started = devs, true
	d.log.Info("published DRA devices", "devices", len(devs))
	return nil
}

func sameDevices(a, b []resourceapi.Device) bool {
	return len(a) == len(b) && equality.Semantic.DeepEqual(a, b)
}

// PrepareResourceClaims answers every claim with ErrPrepareNotImplemented.
func (d *Driver) PrepareResourceClaims(_ context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	for _, c := range claims {
		out[c.UID] = kubeletplugin.PrepareResult{Err: fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, ErrPrepareNotImplemented)}
	}
	return out, nil
}

// UnprepareResourceClaims answers every claim with ErrPrepareNotImplemented:
// nothing was prepared, so nothing is restored.
func (d *Driver) UnprepareResourceClaims(_ context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	out := make(map[types.UID]error, len(claims))
	for _, c := range claims {
		out[c.UID] = fmt.Errorf("claim %s: %w", c.NamespacedName, ErrPrepareNotImplemented)
	}
	return out, nil
}

// HandleError logs the helper's background errors: ResourceSlice
// publishing and gRPC failures, all retried by the helper.
func (d *Driver) HandleError(_ context.Context, err error, msg string) {
	d.log.Error(err, msg, "recoverable", errors.Is(err, kubeletplugin.ErrRecoverable))
}

// WatchHealthStatus is not supported: health is the devices' healthy
// attribute.
func (d *Driver) WatchHealthStatus(context.Context, chan<- kubeletplugin.DeviceHealthReport) error {
	return kubeletplugin.ErrHealthNotSupported
}
