package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/sluice-net/sluice/api/drainslot"
	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/deviceplugin/dra"
	"github.com/sluice-net/sluice/host"
)

// Defaults of Options, the paths as the node DaemonSet mounts them.
const (
	DefaultSysRoot            = "/sys"
	DefaultDevRoot            = "/dev"
	DefaultStateDir           = nodefiles.DefaultAgentStateDir
	DefaultGatePath           = nodefiles.DefaultGateFile
	DefaultDevicePluginConfig = nodefiles.DefaultDevicePluginConfig
	DefaultPodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"
	DefaultAttachmentsDir     = nodefiles.DefaultAttachmentsDir
	DefaultNamespace          = "sluice-system"
	DefaultResyncPeriod       = time.Minute
	DefaultRetryPeriod        = 10 * time.Second
	DefaultDrainTimeout       = 10 * time.Minute
	DefaultLeaseDuration      = 2 * time.Minute
	DefaultResourcePrefix     = "sluice.dev"
)

// Options configure the node agent.
type Options struct {
	// NodeName is the Kubernetes node this agent runs on (NODE_NAME); its
	// NodeNetworkState has the same name.
	NodeName string
	// RestConfig reaches the API server; nil loads it as kubectl does.
	RestConfig *rest.Config
	// SysRoot and DevRoot are where sysfs and /dev are mounted.
	SysRoot, DevRoot string
	// Host overrides the host built from SysRoot and DevRoot (tests pass a
	// hosttest fake node's).
	Host *host.Host
	// StateDir holds the state file naming the PFs sluice configured. It
	// must outlive the agent's container; a tmpfs is right: after a reboot
	// no PF has VFs sluice made.
	StateDir string
	// GatePath is the readiness gate file the device plugin reads.
	GatePath string
	// DevicePluginConfig is the pools file the device plugin reads.
	DevicePluginConfig string
	// ResourcePrefix is the pools file's default resource prefix.
	ResourcePrefix string
	// PodResourcesSocket is the kubelet's pod-resources socket; empty turns
	// the kubelet out of the VF usage (nodes without a kubelet, tests).
	PodResourcesSocket string
	// AttachmentsDir is the CNI's attachment registry; empty leaves it out.
	AttachmentsDir string
	// LockDir holds the per-VF locks the CNI takes: the agent takes them
	// too before it changes a VF (nodefiles.LockVF).
	LockDir string
	// LockTimeout bounds the wait for one VF's lock; past it the PF's
	// change waits for the next pass.
	LockTimeout time.Duration
	// Usage overrides the VF usage source built from the two above.
	Usage UsageSource
	// Namespace holds the drain slot Leases (the agent's namespace, where
	// the operator creates them).
	Namespace string
	// MaxUnavailable is how many nodes may drain at once, cluster-wide: the
	// number of drain slots, at most drainslot.Max.
	MaxUnavailable int
	// ResyncPeriod is how often the host is rediscovered and drift repaired.
	ResyncPeriod time.Duration
	// RetryPeriod is how often a failed sync, a drain waiting for a slot or
	// for pods to go is retried.
	RetryPeriod time.Duration
	// DrainTimeout bounds the wait for evicted pods; past it the sync is
	// reported Failed (and still retried).
	DrainTimeout time.Duration
	// LeaseDuration of a drain slot; the holder renews it on every sync.
	LeaseDuration time.Duration
	// MetricsBindAddress and HealthProbeBindAddress; "0" or empty turns them off.
	MetricsBindAddress, HealthProbeBindAddress string
	// MetricsSecure serves metrics over HTTPS to authenticated and
	// authorized scrapers only (metricsserver.go).
	MetricsSecure bool
	// CacheSyncTimeout bounds the wait for the agent's caches at start
	// (controller-runtime's default, 2 minutes, when zero); past it the
	// agent's controller stops and is started again.
	CacheSyncTimeout time.Duration
	// Logger; the zero value discards.
	Logger logr.Logger

	// DevicePlugin, when set, serves the kubelet device plugin in this
	// process over the agent's host, readiness gate, pools file, attachment
	// registry and resource prefix (those fields of it are overridden), and
	// rescans it after every sync that changed the gate or the pools.
	DevicePlugin *deviceplugin.Options
	// DRA, when set with DevicePlugin, runs the DRA kubelet plugin beside
	// it, publishing the DRA pools' VFs of every device-plugin scan in
	// ResourceSlices. Its DriverName, NodeName and KubeClient are the
	// agent's (resource prefix, node, API server) when empty.
	DRA *dra.Options
	// WatchLinks subscribes to netlink link events in the agent's network
	// namespace, so drift (VFs destroyed behind its back) is repaired in
	// seconds instead of at the next resync. Only the events of SR-IOV PFs
	// and VFs (host.LinkFilter) bring a sync; pods' veths do not.
	WatchLinks bool
	// LinkEvents, when set, replaces the netlink subscription WatchLinks
	// makes (tests watch a network namespace of their own).
	LinkEvents LinkEvents
	// Metrics, when set, receives the agent's Prometheus metrics (sync
	// durations, VFs configured per pool, the CNI plugin's outcomes from
	// CNIStatsDir) and the in-process device plugin's.
	Metrics prometheus.Registerer
	// CNIStatsDir is where sluice-cni counts its outcomes.
	CNIStatsDir string
	// Rescan, when set, is called after a sync changed the readiness gate or
	// the pools file (besides DevicePlugin's own rescan).
	Rescan func()
	// Alongside are run next to the agent (e.g. the device plugin's serve
	// loop); Run returns when any of them or the agent fails.
	Alongside []func(ctx context.Context) error
}

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.SysRoot, DefaultSysRoot)
	def(&o.DevRoot, DefaultDevRoot)
	def(&o.StateDir, DefaultStateDir)
	def(&o.LockDir, nodefiles.DefaultLockDir)
	def(&o.GatePath, DefaultGatePath)
	def(&o.DevicePluginConfig, DefaultDevicePluginConfig)
	def(&o.ResourcePrefix, DefaultResourcePrefix)
	def(&o.Namespace, DefaultNamespace)
	def(&o.CNIStatsDir, nodefiles.DefaultStatsDir)
	def(&o.MetricsBindAddress, "0")
	def(&o.HealthProbeBindAddress, "0")
	dur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	dur(&o.ResyncPeriod, DefaultResyncPeriod)
	dur(&o.RetryPeriod, DefaultRetryPeriod)
	dur(&o.DrainTimeout, DefaultDrainTimeout)
	dur(&o.LockTimeout, 10*time.Second)
	dur(&o.LeaseDuration, DefaultLeaseDuration)
	if o.MaxUnavailable == 0 {
		o.MaxUnavailable = 1
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if o.NodeName == "" {
		errs = append(errs, errors.New("node name is empty: set --node-name or NODE_NAME (the pod's spec.nodeName)"))
	}
	if err := drainslot.Validate(o.MaxUnavailable); err != nil {
		errs = append(errs, err)
	}
	if o.RetryPeriod > o.LeaseDuration/2 {
		errs = append(errs, fmt.Errorf("retry period %s must be at most half the lease duration %s, or a draining node loses its slot", o.RetryPeriod, o.LeaseDuration))
	}
	return errors.Join(errs...)
}
