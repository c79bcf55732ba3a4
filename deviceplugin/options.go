package deviceplugin

import (
	"flag"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// Defaults of the flags.
const (
	DefaultConfigFile    = nodefiles.DefaultDevicePluginConfig
	DefaultReadinessFile = nodefiles.DefaultGateFile
	DefaultCDIDir        = nodefiles.DefaultCDIDir
	DefaultDeviceInfoDir = nodefiles.DefaultDeviceInfoDir
	DefaultKubeletDir    = "/var/lib/kubelet/device-plugins"
	DefaultResync        = 30 * time.Second
	// DefaultRDMACheck is the period of the light RDMA health check.
	DefaultRDMACheck = 500 * time.Millisecond
)

// Options configure the device plugin. The zero value of a field means its
// flag's default, except ReadinessFile, where empty disables the gate.
type Options struct {
	// ConfigFile holds the pools, in any of the three formats.
	ConfigFile string
	// ResourcePrefix is the prefix of pools that name none (sluice.dev).
	ResourcePrefix string
	// ReadinessFile is the node agent's readiness gate; empty advertises
	// every selected VF at once (standalone use, without the agent).
	ReadinessFile string
	// KubeletDir is the kubelet's device-plugins directory.
	KubeletDir string
	// AttachmentsDir is the CNI's attachment registry.
	AttachmentsDir string
	// DRAClaimsDir is the DRA driver's claim checkpoints, whose holds
	// say which VFs a claim has (in a pod, or about to be).
	DRAClaimsDir string
	// SysRoot and DevRoot are where sysfs and devtmpfs are mounted.
	SysRoot, DevRoot string
	// Resync is the period of the safety rescan (and config re-read).
	Resync time.Duration
	// CDI hands out devices as CDI device names, with specs in CDIDir.
	CDI    bool
	CDIDir string
	// DeviceInfoDir receives the device-info file of each allocated VF
	// (the Network Plumbing Working Group's device-info spec), which
	// Multus reads into the pod's network-status.
	DeviceInfoDir string

	// Not flags.

	// Log receives the plugin's logs; the zero value discards them.
	Log logr.Logger
	// Host, when set, is used instead of one over SysRoot and DevRoot (the
	// agent shares its own; tests pass a fake node's).
	Host *host.Host
	// LinkEvents, when set, replaces the netlink link subscription.
	LinkEvents LinkEvents
	// OnScan, when set, is called with each scan's tree once the pools are
	// applied, from the scanning goroutine (it must not block long): the
	// DRA driver publishes its pools' devices from it.
	OnScan func(*Tree)
	// Trigger asks for an immediate rescan each time it receives.
	Trigger <-chan struct{}
	// RDMACheck is the period of the light RDMA health check (500 ms).
	RDMACheck time.Duration
	// Metrics, when set, receives the plugin's Prometheus metrics: devices
	// per pool and state, scan durations, allocations.
	Metrics prometheus.Registerer
	// RegisterTimeout bounds one Register call to the kubelet (20 s): the
	// kubelet answers only after it has dialled the pool's socket back,
	// which takes seconds on a busy node.
	RegisterTimeout time.Duration
}

// BindFlags binds the options to flags, with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.ConfigFile, "config-file", DefaultConfigFile, "device plugin pools: sluice's {\"pools\"}, sriov-network-device-plugin's {\"resourceList\"} or k8s-rdma-shared-dev-plugin's {\"configList\"}; re-read when it changes")
	fs.StringVar(&o.ResourcePrefix, "resource-prefix", DefaultResourcePrefix, "resource prefix of pools that set none (e.g. intel.com to keep an sriov-network-device-plugin config's names)")
	fs.StringVar(&o.ReadinessFile, "readiness-file", DefaultReadinessFile, "the node agent's readiness gate: VFs are advertised only once their PF is listed; empty disables the gate (standalone use)")
	fs.StringVar(&o.KubeletDir, "kubelet-dir", DefaultKubeletDir, "the kubelet's device-plugins directory (kubelet.sock and the plugin sockets)")
	fs.StringVar(&o.AttachmentsDir, "attachments-dir", nodefiles.DefaultAttachmentsDir, "the CNI's registry of VFs attached to pods")
	fs.StringVar(&o.DRAClaimsDir, "dra-claims-dir", nodefiles.DefaultDRAClaimsDir, "the DRA driver's claim checkpoints: a VF a claim holds is in use, not vanished, when its netdev leaves the host")
	fs.StringVar(&o.SysRoot, "sys", "/sys", "where sysfs is mounted")
	fs.StringVar(&o.DevRoot, "dev", "/dev", "the host's /dev as the plugin sees it; device host paths handed to the kubelet are under it, so on a node it must be the host's own path (/dev)")
	fs.DurationVar(&o.Resync, "resync", DefaultResync, "period of the safety rescan; events trigger rescans in between")
	fs.BoolVar(&o.CDI, "cdi", false, "hand devices out as CDI device names (kind <prefix>/<pool>) and write their CDI specs to --cdi-dir")
	fs.StringVar(&o.CDIDir, "cdi-dir", DefaultCDIDir, "where CDI specs are written when --cdi is set")
	fs.StringVar(&o.DeviceInfoDir, "device-info-dir", DefaultDeviceInfoDir, "where each allocated VF's device-info file (Network Plumbing Working Group spec) is written for Multus")
}

func (o *Options) defaults() {
	if o.RegisterTimeout <= 0 {
		o.RegisterTimeout = 20 * time.Second
	}
	if o.ConfigFile == "" {
		o.ConfigFile = DefaultConfigFile
	}
	if o.ResourcePrefix == "" {
		o.ResourcePrefix = DefaultResourcePrefix
	}
	if o.KubeletDir == "" {
		o.KubeletDir = DefaultKubeletDir
	}
	if o.AttachmentsDir == "" {
		o.AttachmentsDir = nodefiles.DefaultAttachmentsDir
	}
	if o.DRAClaimsDir == "" {
		o.DRAClaimsDir = nodefiles.DefaultDRAClaimsDir
	}
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.DevRoot == "" {
		o.DevRoot = "/dev"
	}
	if o.Resync <= 0 {
		o.Resync = DefaultResync
	}
	if o.CDIDir == "" {
		o.CDIDir = DefaultCDIDir
	}
	if o.DeviceInfoDir == "" {
		o.DeviceInfoDir = DefaultDeviceInfoDir
	}
	if o.RDMACheck <= 0 {
		o.RDMACheck = DefaultRDMACheck
	}
}
