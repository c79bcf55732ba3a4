package envtest

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func getNodeDaemonSet() (*appsv1.DaemonSet, error) {
	ds := &appsv1.DaemonSet{}
	return ds, env.Client.Get(context.Background(), client.ObjectKey{Namespace: operatorNamespace, Name: "sluice-node"}, ds)
}

// checkNodeDaemonSet returns nil when the DaemonSet is as the operator
// renders it for startOperator's options.
func checkNodeDaemonSet(ds *appsv1.DaemonSet) error {
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork || pod.HostPID {
		return errorf("hostNetwork=%v hostPID=%v, want true/false", pod.HostNetwork, pod.HostPID)
	}
	if pod.NodeSelector["sluice.dev/agent"] != "true" || len(pod.NodeSelector) != 1 {
		return errorf("nodeSelector = %v", pod.NodeSelector)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(t corev1.Toleration) bool {
		return t.Operator == corev1.TolerationOpExists && t.Effect == "" && t.Key == ""
	}) {
		return errorf("no toleration of every taint: %+v", pod.Tolerations)
	}
	if pod.ServiceAccountName != "sluice-node" {
		return errorf("serviceAccountName = %q", pod.ServiceAccountName)
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 1 {
		return errorf("%d containers, %d init containers", len(pod.Containers), len(pod.InitContainers))
	}
	agent := pod.Containers[0]
	if agent.Name != "agent" || agent.Image != testNodeImage {
		return errorf("agent container %s image %s", agent.Name, agent.Image)
	}
	if !slices.Equal(agent.Command, []string{"/usr/local/bin/sluice", "agent"}) || !slices.Equal(agent.Args, []string{"--max-unavailable=2", "--metrics-bind-address=:9402", "--health-probe-bind-address=:9403", "--resource-prefix=sluice.dev", "--dra"}) || len(agent.Ports) != 2 || agent.Ports[0].ContainerPort != 9402 || agent.Ports[1].ContainerPort != 9403 {
		return errorf("agent runs %v %v", agent.Command, agent.Args)
	}
	if agent.SecurityContext == nil || agent.SecurityContext.Privileged == nil || !*agent.SecurityContext.Privileged {
		return errorf("agent not privileged: %+v", agent.SecurityContext)
	}
	if !slices.ContainsFunc(agent.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		return errorf("no NODE_NAME from spec.nodeName: %+v", agent.Env)
	}
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]string{}
	for _, m := range agent.VolumeMounts {
		mounted[hostPaths[m.Name]] = m.MountPath
	}
	// envtest serves resource.k8s.io/v1, so --node-dra=auto (the default)
	// runs the DRA kubelet plugin: the kubelet's plugin directories too.
	for _, p := range []string{"/sys", "/dev", "/var/lib/kubelet/device-plugins", "/var/lib/kubelet/pod-resources", "/run/sluice", "/var/lib/cni/sluice", "/var/run/cdi",
		"/var/lib/kubelet/plugins", "/var/lib/kubelet/plugins_registry"} {
		if mounted[p] != p {
			return errorf("host %s mounted at %q in the agent", p, mounted[p])
		}
	}
	// sluice's own directory, not the runtime's (its networks' IPAM state
	// and result cache).
	if m, ok := mounted["/var/lib/cni"]; ok {
		return errorf("the runtime's whole /var/lib/cni is mounted in the agent at %s", m)
	}
	install := pod.InitContainers[0]
	if install.Name != "cni-install" || install.Image != testNodeImage || len(install.VolumeMounts) != 1 ||
		hostPaths[install.VolumeMounts[0].Name] != "/opt/cni/bin" || install.VolumeMounts[0].MountPath != "/host/opt/cni/bin" {
		return errorf("cni-install = %+v", install)
	}
	if c := install.Command; !slices.Equal(c, []string{"/usr/local/bin/sluice", "install-cni", "--src=/usr/local/bin/sluice-cni", "--dest-dir=/host/opt/cni/bin"}) {
		return errorf("cni-install runs %q", c)
	}
	if ds.Spec.Selector == nil || ds.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != "node-agent" {
		return errorf("selector = %+v", ds.Spec.Selector)
	}
	return nil
}

func TestOperatorNodeDaemonSet(t *testing.T) {
	startOperator(t)
	ctx := context.Background()
	var ds *appsv1.DaemonSet
	eventually(t, "node DaemonSet rendered", func() error {
		var err error
		if ds, err = getNodeDaemonSet(); err != nil {
			return err
		}
		return checkNodeDaemonSet(ds)
	})

	// Edits to what the operator renders are reverted.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := getNodeDaemonSet()
		if err != nil {
			return err
		}
		cur.Spec.Template.Spec.Containers[0].Image = "registry.example/other:v9"
		cur.Spec.Template.Spec.Containers[0].Args = []string{"--max-unavailable=50"}
		cur.Spec.Template.Spec.HostNetwork = false
		return env.Client.Update(ctx, cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	edited, err := getNodeDaemonSet()
	if err != nil {
		t.Fatal(err)
	}
	if checkNodeDaemonSet(edited) == nil && edited.Generation == ds.Generation {
		t.Fatal("the edit did not land; the test would prove nothing")
	}
	eventually(t, "edit reverted", func() error {
		cur, err := getNodeDaemonSet()
		if err != nil {
			return err
		}
		if cur.Generation == ds.Generation {
			return errorf("not edited yet")
		}
		return checkNodeDaemonSet(cur)
	})

	// A deleted DaemonSet comes back.
	if err := env.Client.Delete(ctx, ds); err != nil {
		t.Fatal(err)
	}
	eventually(t, "DaemonSet recreated", func() error {
		cur, err := getNodeDaemonSet()
		if err != nil {
			return err
		}
		if cur.UID == ds.UID {
			return errorf("not deleted yet")
		}
		return checkNodeDaemonSet(cur)
	})
}

// TestOperatorCreatesDrainSlots: the operator creates the drain slot
// Leases its --max-unavailable asks for (2 here), which the agents may
// only read and update, and leaves a slot some node holds as it is.
func TestOperatorCreatesDrainSlots(t *testing.T) {
	ctx := context.Background()
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}})
	held := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "sluice-drain-0"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-a")}}
	upsert(t, held)
	t.Cleanup(func() {
		for _, name := range []string{"sluice-drain-0", "sluice-drain-1"} {
			_ = env.Client.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: name}})
		}
	})
	startOperator(t)
	eventually(t, "drain slot sluice-drain-1 created", func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "sluice-drain-1"}, &coordinationv1.Lease{})
	})
	l := &coordinationv1.Lease{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(held), l); err != nil {
		t.Fatal(err)
	}
	if h := ptr.Deref(l.Spec.HolderIdentity, ""); h != "node-a" || l.ResourceVersion != held.ResourceVersion {
		t.Errorf("the held slot changed: holder %q, resourceVersion %s (was %s)", h, l.ResourceVersion, held.ResourceVersion)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "sluice-drain-2"}, &coordinationv1.Lease{}); !apierrors.IsNotFound(err) {
		t.Errorf("sluice-drain-2, beyond --max-unavailable=2: %v, want NotFound", err)
	}
}
