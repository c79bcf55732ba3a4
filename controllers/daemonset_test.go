package controllers

import (
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// --node-cdi turns the agent's CDI mode on, with the spec directory the
// runtime reads mounted from the host either way.
func TestNodeDaemonSetCDI(t *testing.T) {
	for _, cdi := range []bool{false, true} {
		ds := nodeDaemonSet(NodeDaemonSetOptions{Namespace: "ns", Image: "img", MaxUnavailable: 1, ServiceAccount: "sa", CDI: cdi})
		agent := ds.Spec.Template.Spec.Containers[0]
		if got := slices.Contains(agent.Args, "--cdi"); got != cdi {
			t.Errorf("CDI %t: agent args %v", cdi, agent.Args)
		}
		mounted := false
		for _, m := range agent.VolumeMounts {
			mounted = mounted || *m.MountPath == "/var/run/cdi"
		}
		if !mounted {
			t.Errorf("CDI %t: /var/run/cdi not mounted into the agent", cdi)
		}
	}
}

// --node-dra runs the agent's DRA kubelet plugin, with the kubelet's
// plugin directories mounted only then.
func TestNodeDaemonSetDRA(t *testing.T) {
	for _, on := range []bool{false, true} {
		ds := nodeDaemonSet(NodeDaemonSetOptions{Namespace: "ns", Image: "img", MaxUnavailable: 1, ServiceAccount: "sa", DRA: on})
		agent := ds.Spec.Template.Spec.Containers[0]
		if got := slices.Contains(agent.Args, "--dra"); got != on {
			t.Errorf("DRA %t: agent args %v", on, agent.Args)
		}
		var mounted []string
		for _, m := range agent.VolumeMounts {
			if *m.MountPath == "/var/lib/kubelet/plugins" || *m.MountPath == "/var/lib/kubelet/plugins_registry" {
				mounted = append(mounted, *m.MountPath)
			}
		}
		if (len(mounted) == 2) != on || (!on && len(mounted) != 0) {
			t.Errorf("DRA %t: kubelet plugin directories mounted: %v", on, mounted)
		}
		// The NRI plugin's: the runtime's socket, the pods' network
		// namespaces (mounted by the runtime later: propagated), the IPAM
		// plugins and host-local's leases.
		want := map[string]string{"/var/run/nri": "", "/var/run/netns": string(corev1.MountPropagationHostToContainer), "/opt/cni/bin": "", "/var/lib/cni/networks": ""}
		got := map[string]string{}
		for _, m := range agent.VolumeMounts {
			if _, ok := want[*m.MountPath]; ok {
				p := ""
				if m.MountPropagation != nil {
					p = string(*m.MountPropagation)
				}
				got[*m.MountPath] = p
			}
		}
		if on && !maps.Equal(got, want) || !on && len(got) != 0 {
			t.Errorf("DRA %t: NRI plugin mounts %v, want %v", on, got, want)
		}
	}
}

// TestNodeDaemonSetAsANodeComponent: the agent is what the node's pods get
// their VFs from, so it is scheduled, kept and probed as a node component,
// and reaches no more of the host than it uses.
func TestNodeDaemonSetAsANodeComponent(t *testing.T) {
	ds := nodeDaemonSet(NodeDaemonSetOptions{Namespace: "ns", Image: "img", MaxUnavailable: 1, ServiceAccount: "sa"})
	pod := ds.Spec.Template.Spec
	agent := pod.Containers[0]
	for _, m := range agent.VolumeMounts {
		if *m.MountPath == "/etc/cni/net.d" {
			t.Error("the host's CNI configuration is mounted into the agent, which never reads nor writes it")
		}
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil && (*v.HostPath.Path == "/var/lib/cni" || *v.HostPath.Path == "/etc/cni/net.d") {
			t.Errorf("host path %s mounted", *v.HostPath.Path)
		}
	}
	tolerated := false
	for _, tol := range pod.Tolerations {
		tolerated = tolerated || (tol.Operator != nil && *tol.Operator == "Exists" && tol.Key == nil && tol.Effect == nil)
	}
	if !tolerated {
		t.Errorf("tolerations %+v: want every taint tolerated (NoExecute too)", pod.Tolerations)
	}
	if pod.PriorityClassName == nil || *pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priority class %v, want system-node-critical", pod.PriorityClassName)
	}
	lp := agent.LivenessProbe
	if lp == nil || lp.HTTPGet == nil || *lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.StrVal != "health" {
		t.Fatalf("liveness probe %+v, want GET /healthz on the health port", lp)
	}
	if !slices.Contains(agent.Args, "--health-probe-bind-address=:9403") {
		t.Errorf("args %v do not serve the probe's port", agent.Args)
	}
	if slices.ContainsFunc(agent.Args, func(a string) bool { return a == "--metrics-secure=false" }) {
		t.Errorf("args %v serve metrics unauthenticated on the node's network", agent.Args)
	}
	r := agent.Resources
	if r == nil || r.Requests == nil || r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU and memory requests", r)
	}
	if r != nil && r.Limits != nil && !r.Limits.Memory().IsZero() {
		t.Errorf("memory limit %s: the kernel would kill the device plugin with the agent", r.Limits.Memory())
	}
}

// --node-sriov-cni-alias has the init container install sluice-cni as
// "sriov" too; off, the init container is told so, and removes an alias
// it made before.
func TestNodeDaemonSetSriovCNIAlias(t *testing.T) {
	for _, alias := range []bool{false, true} {
		ds := nodeDaemonSet(NodeDaemonSetOptions{Namespace: "ns", Image: "img", MaxUnavailable: 1, ServiceAccount: "sa", SriovCNIAlias: alias})
		install := ds.Spec.Template.Spec.InitContainers[0]
		if *install.Name != CNIInstallContainer || slices.Contains(install.Command, "--sriov-alias") != alias {
			t.Errorf("alias %t: %s command %v", alias, *install.Name, install.Command)
		}
	}
}
