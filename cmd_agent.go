package main

import (
	"context"
	"errors"
	"flag"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	kubeconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/sluice-net/sluice/controllers/agent"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/deviceplugin/dra"
)

// agentCommand binds the flags of 'sluice agent'.
func agentCommand(fs *flag.FlagSet) func(ctx context.Context) error {
	var o agent.Options
	namespace := envOr("POD_NAMESPACE", agent.DefaultNamespace)
	kubeconfig.RegisterFlags(fs)
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's Kubernetes name, also its NodeNetworkState's (NODE_NAME when set)")
	fs.StringVar(&o.Namespace, "namespace", namespace, "namespace of the drain slot Leases, which the operator creates: the agent's own, the operator's (POD_NAMESPACE when set); the DRA driver takes its VFNetworks as the platform's (docs/vfnetwork.md)")
	fs.IntVar(&o.MaxUnavailable, "max-unavailable", 1, "nodes that may drain for a VF change at once, cluster-wide (the same on every agent)")
	fs.StringVar(&o.SysRoot, "sys-root", agent.DefaultSysRoot, "where the host's sysfs is mounted")
	fs.StringVar(&o.DevRoot, "dev-root", agent.DefaultDevRoot, "where the host's /dev is mounted")
	fs.StringVar(&o.StateDir, "state-dir", agent.DefaultStateDir, "directory of the state file naming the PFs sluice configured; must survive the agent's container (a host tmpfs is right: VFs do not survive a reboot either)")
	fs.StringVar(&o.GatePath, "gate-path", agent.DefaultGatePath, "readiness gate file: the PFs whose VFs the device plugin may advertise")
	fs.StringVar(&o.DevicePluginConfig, "device-plugin-config", agent.DefaultDevicePluginConfig, "device plugin pools file the agent writes from spec.pools")
	fs.StringVar(&o.ResourcePrefix, "resource-prefix", agent.DefaultResourcePrefix, "resource prefix written to the pools file")
	fs.StringVar(&o.PodResourcesSocket, "pod-resources-socket", agent.DefaultPodResourcesSocket, `kubelet pod-resources socket, to learn which pods use which VFs; "" leaves the kubelet out`)
	fs.StringVar(&o.AttachmentsDir, "attachments-dir", agent.DefaultAttachmentsDir, `the CNI's VF attachment records; "" leaves them out`)
	fs.DurationVar(&o.ResyncPeriod, "resync-period", agent.DefaultResyncPeriod, "how often the host is rediscovered and drift repaired")
	fs.DurationVar(&o.RetryPeriod, "retry-period", agent.DefaultRetryPeriod, "how often a failed sync or a waiting drain is retried")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", agent.DefaultDrainTimeout, "how long evicted pods may take to go before the sync is reported Failed (it is still retried)")
	fs.DurationVar(&o.LeaseDuration, "drain-lease-duration", agent.DefaultLeaseDuration, "how long a drain slot stays taken without renewal (an agent that died)")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", "0", `address of the Prometheus /metrics endpoint; "0" turns it off`)
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to scrapers whose token the API server authenticates and authorizes for GET /metrics (ClusterRole sluice-metrics-reader); false serves plain HTTP to anyone who reaches the address")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", "0", `address of /healthz (the process and its device plugin are alive; the API server is not asked); "0" turns it off`)
	servePlugin := fs.Bool("device-plugin", true, "serve the kubelet device plugin in this process (over the same gate, pools file and attachment registry)")
	var dp deviceplugin.Options
	fs.StringVar(&dp.KubeletDir, "kubelet-dir", deviceplugin.DefaultKubeletDir, "the kubelet's device-plugins directory (kubelet.sock and the plugin sockets)")
	fs.DurationVar(&dp.Resync, "device-plugin-resync", deviceplugin.DefaultResync, "period of the device plugin's safety rescan; events trigger rescans in between")
	fs.BoolVar(&dp.CDI, "cdi", false, "hand devices out as CDI device names and write their CDI specs to --cdi-dir")
	fs.StringVar(&dp.CDIDir, "cdi-dir", deviceplugin.DefaultCDIDir, "where CDI specs are written when --cdi is set")
	fs.StringVar(&dp.DeviceInfoDir, "device-info-dir", deviceplugin.DefaultDeviceInfoDir, "where the device plugin writes each allocated VF's device-info file (Network Plumbing Working Group spec) for Multus")
	serveDRA := fs.Bool("dra", false, "also run the DRA kubelet plugin, publishing the VFs of pools whose policy asks for allocation DRA in ResourceSlices and preparing their claims, and the NRI plugin that moves each prepared VF's netdev into its pod at sandbox creation (needs resource.k8s.io/v1, the kubelet's plugins and plugins_registry directories, and containerd 2.x with NRI enabled: its socket, /var/run/netns and the CNI binaries; see docs/dra.md)")
	var draOpts dra.Options
	fs.StringVar(&draOpts.PluginDir, "dra-plugin-dir", "", `the DRA driver's socket directory; "" is /var/lib/kubelet/plugins/<driver>`)
	fs.StringVar(&draOpts.RegistryDir, "dra-registry-dir", "", `the kubelet's plugin registration directory; "" is /var/lib/kubelet/plugins_registry`)
	fs.StringVar(&draOpts.NRISocket, "dra-nri-socket", dra.DefaultNRISocket, "the container runtime's NRI socket, through which --dra moves claimed VFs into pods (containerd 2.x serves it unless NRI is disabled in its config); while it cannot be reached, claims of VFs with a netdev fail Prepare, saying why")
	draNRI := fs.Bool("dra-nri", true, "with --dra, connect to the runtime's NRI socket and move each prepared VF's netdev into its pod; false prepares claims without moving anything (the pods get no interface on their VFs): only for runtimes without NRI")
	fs.StringVar(&draOpts.CNIPath, "dra-cni-path", "", `where --dra looks for the IPAM plugins of claim configs; "" is $CNI_PATH, else /opt/cni/bin`)
	fs.StringVar(&draOpts.ClaimsDir, "dra-claims-dir", "", `the DRA driver's claim checkpoints (what each prepared claim changed on its VFs); "" is <state-dir>/dra/claims. Kernel-lifetime state like the VFs: keep it on a host tmpfs, so that a reboot forgets both. sluice-cni reads the per-VF holds (its vfs/ directory) at the default, /run/sluice/dra/claims, only`)
	newLogger := logFlag(fs)

	return func(ctx context.Context) error {
		logger, err := newLogger()
		if err != nil {
			return err
		}
		ctrl.SetLogger(logger)
		o.Logger = logger
		o.WatchLinks = true
		o.Metrics = ctrlmetrics.Registry // served on --metrics-bind-address
		if *servePlugin {
			dp.DevRoot, dp.SysRoot = o.DevRoot, o.SysRoot
			o.DevicePlugin = &dp
			if *serveDRA {
				draOpts.NoNRI = !*draNRI
				o.DRA = &draOpts
			}
		} else if *serveDRA {
			return errors.New("--dra publishes the device plugin's scans: it needs --device-plugin=true")
		}
		return agent.Run(ctx, o)
	}
}
