package nodefiles

// The node paths, each spelled once. RunDir is the DaemonSet's run-sluice
// host path.
const (
	RunDir = "/run/sluice"
	// DefaultGateFile is the readiness gate.
	DefaultGateFile = RunDir + "/readiness.json"
	// DefaultDevicePluginConfig is the pools the agent renders for the
	// device plugin.
	DefaultDevicePluginConfig = RunDir + "/device-plugin.json"
	// DefaultAgentStateDir holds the agent's record of the PFs it configured.
	DefaultAgentStateDir = RunDir
	// DefaultAttachmentsDir holds the attachment records.
	DefaultAttachmentsDir = RunDir + "/cni/attachments"
	// DefaultCacheDir holds the CNI's per-attachment cache entries.
	DefaultCacheDir = RunDir + "/cni/cache"
	// DefaultLockDir holds one lock file per VF.
	DefaultLockDir = RunDir + "/cni/locks"
	// CNIStateDir is sluice-cni's own persistent directory, not the
	// runtime's /var/lib/cni: what must survive a reboot.
	CNIStateDir = "/var/lib/cni/sluice"
	// DefaultStatsDir holds the CNI's outcome counters.
	DefaultStatsDir = CNIStateDir + "/stats"
	// DefaultCDIDir is the runtime's dynamic CDI spec directory
	// (containerd's and CRI-O's default), where the CNI writes soft-RoCE
	// specs.
	DefaultCDIDir = "/var/run/cdi"
	// DefaultDeviceInfoDir is where a device plugin writes the device-info
	// files of the Network Plumbing Working Group's device-info spec, which
	// Multus reads into a pod's network-status.
	DefaultDeviceInfoDir = "/var/run/k8s.cni.cncf.io/devinfo/dp"
)
