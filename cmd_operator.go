package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	kubeconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/sluice-net/sluice/api/drainslot"
	"github.com/sluice-net/sluice/controllers"
)

// operatorCommand binds the flags of 'sluice operator'.
func operatorCommand(fs *flag.FlagSet) func(ctx context.Context) error {
	var o controllers.Options
	namespace := envOr("POD_NAMESPACE", controllers.DefaultNamespace)
	kubeconfig.RegisterFlags(fs)
	fs.StringVar(&o.Namespace, "namespace", namespace, "namespace of the operator, its node DaemonSet, the drain slot Leases and its leader election Lease (POD_NAMESPACE when set)")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", `address of the Prometheus /metrics endpoint; "0" turns it off`)
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", `address of /healthz and /readyz; "0" turns them off`)
	fs.BoolVar(&o.LeaderElection, "leader-elect", false, "elect a leader so that only one operator replica reconciles")
	fs.StringVar(&o.ResourcePrefix, "resource-prefix", controllers.DefaultResourcePrefix, "prefix of the pools' resource names (<prefix>/<resourceName>): passed to the node agents' device plugin and written into every VFNetwork's NetworkAttachmentDefinition")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", controllers.DefaultLeaderElectionID, "name of the leader election lease")
	fs.StringVar(&o.NodeDaemonSet.Image, "node-image", os.Getenv("SLUICE_NODE_IMAGE"), "image of the node DaemonSet (sluice agent and sluice-cni); required (SLUICE_NODE_IMAGE when set)")
	pullPolicy := fs.String("node-image-pull-policy", "", "pull policy of the node image: Always, IfNotPresent or Never (default: Kubernetes')")
	nodeSelector := fs.String("node-selector", "", "nodes the agent runs on, as key=value[,key=value]; empty: every node")
	fs.IntVar(&o.NodeDaemonSet.MaxUnavailable, "max-unavailable", 1, fmt.Sprintf("nodes that may drain for a VF change at once, cluster-wide: the operator creates this many drain slot Leases and passes the number to every agent (at most %d, the slots the agent's Role grants)", drainslot.Max))
	o.NodeDRA = controllers.DRAAuto
	fs.Var((*draModeFlag)(&o.NodeDRA), "node-dra", "whether the node agents also run the DRA kubelet plugin, which publishes the VFs of pools whose policy asks for allocation DRA in ResourceSlices and prepares their claims, and its NRI plugin, which moves each claimed VF's netdev into its pod at sandbox creation (containerd 2.x with NRI enabled; the agent then mounts /var/run/nri, /var/run/netns, /var/lib/cni/networks and the CNI binaries; docs/dra.md): auto (when the cluster serves resource.k8s.io/v1, Kubernetes 1.34+), true or false")
	fs.BoolVar(&o.NodeDaemonSet.CDI, "node-cdi", false, "the node agent's device plugin hands devices out as CDI device names (specs in /var/run/cdi) instead of device specs; needs a runtime with CDI (containerd 2.x, CRI-O 1.28+). Soft-RoCE pools use CDI either way")
	fs.BoolVar(&o.NodeDaemonSet.SriovCNIAlias, "node-sriov-cni-alias", false, `the node DaemonSet also installs sluice-cni as "sriov" on nodes with no sriov binary, so NetworkAttachmentDefinitions of "type": "sriov" (sriov-cni's) run sluice-cni; an existing sriov-cni is never replaced (docs/migrating.md)`)
	fs.StringVar(&o.NodeDaemonSet.ServiceAccount, "node-service-account", controllers.DefaultServiceAccount, "service account of the node agent")
	fs.IntVar(&o.NodeStateWorkers, "node-state-workers", 4, "concurrent NodeNetworkState renders")
	fs.IntVar(&o.PolicyStatusWorkers, "policy-status-workers", 2, "concurrent NetworkNodePolicy status updates")
	newLogger := logFlag(fs)

	return func(ctx context.Context) error {
		logger, err := newLogger()
		if err != nil {
			return err
		}
		ctrl.SetLogger(logger)
		o.Logger = logger

		sel, err := parseLabels(*nodeSelector)
		if err != nil {
			return fmt.Errorf("--node-selector: %w", err)
		}
		o.NodeDaemonSet.NodeSelector = sel
		switch p := corev1.PullPolicy(*pullPolicy); p {
		case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
			o.NodeDaemonSet.ImagePullPolicy = p
		default:
			return fmt.Errorf("--node-image-pull-policy %q: use Always, IfNotPresent or Never", *pullPolicy)
		}
		return controllers.Run(ctx, o)
	}
}

// parseLabels reads "a=b,c=d".
func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
