package controllers

import (
	"fmt"
	"maps"

	"github.com/sluice-net/sluice/api/nodefiles"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
)

// Node DaemonSet layout.
const (
	// NodeDaemonSetName is the name of the node agent's DaemonSet.
	NodeDaemonSetName = "sluice-node"
	// AgentContainer runs 'sluice agent'.
	AgentContainer = "agent"
	// CNIInstallContainer copies the CNI plugin onto the host.
	CNIInstallContainer = "cni-install"
	// AgentMetricsPort serves the agent's (and its device plugin's and the
	// CNI's) Prometheus metrics on the node's network.
	AgentMetricsPort = 9402
	// AgentHealthPort answers the agent's liveness probe on the node's
	// network: /healthz says the process and its device plugin are alive,
	// and nothing else.
	AgentHealthPort = 9403

	// cniInImage is where the image carries the CNI plugin.
	cniInImage = "/usr/local/bin/sluice-cni"
	// hostCNIBin is where the host's /opt/cni/bin is mounted in cni-install.
	hostCNIBin = "/host/opt/cni/bin"
)

// NodeDaemonSetOptions shape the node agent DaemonSet.
type NodeDaemonSetOptions struct {
	// Namespace of the DaemonSet (the operator's).
	Namespace string
	// Image holds /usr/local/bin/sluice and /usr/local/bin/sluice-cni.
	Image string
	// ImagePullPolicy of both containers; empty leaves Kubernetes' default.
	ImagePullPolicy corev1.PullPolicy
	// NodeSelector restricts the nodes the agent runs on.
	NodeSelector map[string]string
	// MaxUnavailable is the cluster-wide number of nodes the agents may
	// drain at once, passed to every agent.
	MaxUnavailable int
	// ServiceAccount the agent runs as.
	ServiceAccount string
	// CDI makes the device plugin hand devices out as CDI device names,
	// with their specs in the runtime's /var/run/cdi.
	CDI bool
	// ResourcePrefix is passed to the agent as --resource-prefix: its
	// device plugin advertises every pool as <ResourcePrefix>/<pool>.
	// Empty leaves the agent's default (sluice.dev).
	ResourcePrefix string
	// SriovCNIAlias has the init container also install sluice-cni as
	// "sriov" on nodes that have no sriov binary (install-cni
	// --sriov-alias), so NetworkAttachmentDefinitions written for sriov-cni
	// run sluice-cni; off, such an alias is removed.
	SriovCNIAlias bool
	// DRA runs the agent's DRA kubelet plugin and NRI plugin (--dra),
	// with the kubelet's plugins and plugins_registry directories, the
	// runtime's NRI socket directory, /var/run/netns, /var/lib/cni/networks and the
	// CNI binaries mounted.
	DRA bool
}

// nodeDaemonSetLabels select the agent's pods.
func nodeDaemonSetLabels() map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      "sluice",
		"app.kubernetes.io/component": "node-agent",
	}
}

type hostMount struct {
	volume, hostPath, mountPath string
	pathType                    corev1.HostPathType
}

// agentMounts are the host directories the agent works in: sysfs and /dev
// for the NICs, the kubelet's device-plugin and pod-resources sockets, its
// own runtime directory, sluice-cni's state directory and the runtime's
// CDI directory. Nothing else of the host: the CNI configuration belongs
// to Multus and the runtime.
func agentMounts() []hostMount {
	return []hostMount{
		{"sys", "/sys", "/sys", corev1.HostPathDirectory},
		{"dev", "/dev", "/dev", corev1.HostPathDirectory},
		{"device-plugins", "/var/lib/kubelet/device-plugins", "/var/lib/kubelet/device-plugins", corev1.HostPathDirectoryOrCreate},
		{"pod-resources", "/var/lib/kubelet/pod-resources", "/var/lib/kubelet/pod-resources", corev1.HostPathDirectoryOrCreate},
		// Records, locks, the gate and the CNI's cache: kernel-lifetime
		// state (package nodefiles).
		{"run-sluice", nodefiles.RunDir, nodefiles.RunDir, corev1.HostPathDirectoryOrCreate},
		// sluice-cni's outcome counters, exported as metrics.
		{"cni-state", nodefiles.CNIStateDir, nodefiles.CNIStateDir, corev1.HostPathDirectoryOrCreate},
		// CDI specs of --cdi pools, which the runtime reads.
		{"cdi", "/var/run/cdi", "/var/run/cdi", corev1.HostPathDirectoryOrCreate},
		// Device-info files of allocated VFs, which Multus reads.
		{"device-info", nodefiles.DefaultDeviceInfoDir, nodefiles.DefaultDeviceInfoDir, corev1.HostPathDirectoryOrCreate},
	}
}

// nodeDaemonSet renders the node agent's DaemonSet as a server-side apply
// configuration: everything set here is owned by the operator and put back
// when edited.
func nodeDaemonSet(o NodeDaemonSetOptions) *appsv1ac.DaemonSetApplyConfiguration {
	labels := nodeDaemonSetLabels()
	podLabels := maps.Clone(labels)
	podLabels[managedByLabel] = managedByValue

	var volumes []*corev1ac.VolumeApplyConfiguration
	var mounts []*corev1ac.VolumeMountApplyConfiguration
	hostMounts := agentMounts()
	if o.DRA {
		hostMounts = append(hostMounts,
			// The DRA plugin's socket, and its registration with the kubelet.
			hostMount{"kubelet-plugins", "/var/lib/kubelet/plugins", "/var/lib/kubelet/plugins", corev1.HostPathDirectoryOrCreate},
			hostMount{"kubelet-plugins-registry", "/var/lib/kubelet/plugins_registry", "/var/lib/kubelet/plugins_registry", corev1.HostPathDirectoryOrCreate})
	}
	for _, m := range hostMounts {
		volumes = append(volumes, hostPathVolume(m.volume, m.hostPath, m.pathType))
		mounts = append(mounts, corev1ac.VolumeMount().WithName(m.volume).WithMountPath(m.mountPath))
	}
	volumes = append(volumes, hostPathVolume("cni-bin", "/opt/cni/bin", corev1.HostPathDirectoryOrCreate))
	if o.DRA {
		// The runtime's NRI socket: its sandbox events move the claimed
		// VFs into the pods' network namespaces, which the runtime mounts
		// under /var/run/netns after the agent started (hence the
		// propagation). The IPAM plugins of claim configs run from the
		// CNI binaries; host-local keeps its leases in the host's
		// /var/lib/cni/networks.
		volumes = append(volumes,
			hostPathVolume("nri", "/var/run/nri", corev1.HostPathDirectoryOrCreate),
			hostPathVolume("netns", "/var/run/netns", corev1.HostPathDirectoryOrCreate),
			hostPathVolume("cni-networks", "/var/lib/cni/networks", corev1.HostPathDirectoryOrCreate))
		mounts = append(mounts,
			corev1ac.VolumeMount().WithName("nri").WithMountPath("/var/run/nri"),
			corev1ac.VolumeMount().WithName("netns").WithMountPath("/var/run/netns").WithMountPropagation(corev1.MountPropagationHostToContainer),
			corev1ac.VolumeMount().WithName("cni-networks").WithMountPath("/var/lib/cni/networks"),
			corev1ac.VolumeMount().WithName("cni-bin").WithMountPath("/opt/cni/bin").WithReadOnly(true))
	}

	// Metrics are HTTPS for authorized scrapers only (--metrics-secure,
	// the default): the agent is on the node's network.
	args := []string{fmt.Sprintf("--max-unavailable=%d", o.MaxUnavailable),
		fmt.Sprintf("--metrics-bind-address=:%d", AgentMetricsPort), fmt.Sprintf("--health-probe-bind-address=:%d", AgentHealthPort)}
	if o.ResourcePrefix != "" {
		args = append(args, "--resource-prefix="+o.ResourcePrefix)
	}
	if o.CDI {
		args = append(args, "--cdi", "--cdi-dir=/var/run/cdi")
	}
	if o.DRA {
		args = append(args, "--dra")
	}
	agent := corev1ac.Container().
		WithName(AgentContainer).
		WithImage(o.Image).
		WithCommand("/usr/local/bin/sluice", "agent").
		WithArgs(args...).
		WithPorts(
			corev1ac.ContainerPort().WithName("metrics").WithContainerPort(AgentMetricsPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName("health").WithContainerPort(AgentHealthPort).WithProtocol(corev1.ProtocolTCP),
		).
		// The process, not the API server: the device plugin serves on
		// while the agent's controller waits for the control plane.
		WithLivenessProbe(corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/healthz").WithPort(intstr.FromString("health"))).
			WithInitialDelaySeconds(10).WithPeriodSeconds(10).WithFailureThreshold(6)).
		// Requests only: a memory limit would let the kernel kill the
		// device plugin with the agent.
		WithResources(corev1ac.ResourceRequirements().WithRequests(corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
		})).
		WithEnv(
			corev1ac.EnvVar().WithName("NODE_NAME").WithValueFrom(corev1ac.EnvVarSource().
				WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("spec.nodeName"))),
			corev1ac.EnvVar().WithName("POD_NAMESPACE").WithValueFrom(corev1ac.EnvVarSource().
				WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.namespace"))),
		).
		WithSecurityContext(corev1ac.SecurityContext().WithPrivileged(true)).
		WithVolumeMounts(mounts...)
	// install-cni copies through a temporary name and a rename, so a
	// runtime never starts a half-written plugin; the image needs no shell.
	installCmd := []string{"/usr/local/bin/sluice", "install-cni", "--src=" + cniInImage, "--dest-dir=" + hostCNIBin}
	if o.SriovCNIAlias {
		installCmd = append(installCmd, "--sriov-alias")
	}
	install := corev1ac.Container().
		WithName(CNIInstallContainer).
		WithImage(o.Image).
		WithCommand(installCmd...).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("cni-bin").WithMountPath(hostCNIBin))
	if o.ImagePullPolicy != "" {
		agent.WithImagePullPolicy(o.ImagePullPolicy)
		install.WithImagePullPolicy(o.ImagePullPolicy)
	}

	pod := corev1ac.PodSpec().
		WithServiceAccountName(o.ServiceAccount).
		WithHostNetwork(true).
		WithHostPID(false).
		WithDNSPolicy(corev1.DNSClusterFirstWithHostNet).
		// Every taint, NoExecute too: a node's VFs are served wherever
		// pods may run, and a drained or unreachable node keeps its agent
		// (as kube-proxy and the CNI DaemonSets do).
		WithTolerations(corev1ac.Toleration().WithOperator(corev1.TolerationOpExists)).
		// Evicted last under node pressure: pods depend on its device
		// plugin and CNI state.
		WithPriorityClassName("system-node-critical").
		WithInitContainers(install).
		WithContainers(agent).
		WithVolumes(volumes...)
	if len(o.NodeSelector) > 0 {
		pod.WithNodeSelector(o.NodeSelector)
	}

	return appsv1ac.DaemonSet(NodeDaemonSetName, o.Namespace).
		WithLabels(labels).
		WithLabels(map[string]string{managedByLabel: managedByValue}).
		WithSpec(appsv1ac.DaemonSetSpec().
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
			WithTemplate(corev1ac.PodTemplateSpec().WithLabels(podLabels).WithSpec(pod)))
}

func hostPathVolume(name, path string, t corev1.HostPathType) *corev1ac.VolumeApplyConfiguration {
	return corev1ac.Volume().WithName(name).WithHostPath(corev1ac.HostPathVolumeSource().WithPath(path).WithType(t))
}
