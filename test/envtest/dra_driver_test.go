package envtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/deviceplugin/dra"
	"github.com/sluice-net/sluice/host/hosttest"
)

// agentClientset is a clientset with a token of the agent's ServiceAccount
// bound to a pod on node, as the DaemonSet's pods get: the RBAC and the
// admission policy of config/ apply to it.
func agentClientset(t *testing.T, ns string, node *corev1.Node) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(agentConfig(t, ns, node))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// agentConfig is the API configuration of agentClientset.
func agentConfig(t *testing.T, ns string, node *corev1.Node) *rest.Config {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sluice-node-dra-" + node.Name[len(node.Name)-4:]},
		Spec: corev1.PodSpec{NodeName: node.Name, ServiceAccountName: agentAccount,
			Containers: []corev1.Container{{Name: "agent", Image: testNodeImage}}},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatalf("create the agent's pod: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0)) })
	admin, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, agentAccount, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tr.Status.Token
	return cfg
}

const (
	draCX  = "0000:3b:00.0" // ens1f0
	draE8  = "0000:86:00.0" // ens2f0
	draCfg = `{"pools": [{"resourceName": "dp", "selectors": {"pfNames": ["ens9f0"]}}],
	  "draPools": [{"resourceName": "rail", "selectors": {"pfNames": ["ens1f0"], "isRdma": true}},
	               {"resourceName": "intel", "selectors": {"pfNames": ["ens2f0"]}}]}`
)

func draTree(t *testing.T, n *hosttest.Node, cfg string) *deviceplugin.Tree {
	t.Helper()
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := deviceplugin.ParseConfig([]byte(cfg), "")
	if err != nil {
		t.Fatal(err)
	}
	return deviceplugin.NewTree(snap, c)
}

// nodeSlices are the driver's ResourceSlices of a node.
func nodeSlices(t *testing.T, node string) []resourcev1.ResourceSlice {
	t.Helper()
	var l resourcev1.ResourceSliceList
	if err := env.Client.List(context.Background(), &l, client.MatchingFields{"spec.nodeName": node, "spec.driver": "sluice.dev"}); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// waitSlices waits until the node's slices hold exactly the devices named
// (in slices of the given sizes), and returns them.
func waitSlices(t *testing.T, node, what string, sizes []int, cond func(map[string]resourcev1.Device) bool) map[string]resourcev1.Device {
	t.Helper()
	var last []resourcev1.ResourceSlice
	var devs map[string]resourcev1.Device
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
		last = nodeSlices(t, node)
		devs = map[string]resourcev1.Device{}
		var got []int
		for _, s := range last {
			got = append(got, len(s.Spec.Devices))
			for _, d := range s.Spec.Devices {
				if _, dup := devs[d.Name]; dup {
					return false, nil
				}
				devs[d.Name] = d
			}
		}
		slices.Sort(got)
		return slices.Equal(got, sizes) && (cond == nil || cond(devs)), nil
	})
	if err != nil {
		var got []string
		for _, s := range last {
			got = append(got, fmt.Sprintf("%s (pool %s gen %d, %d devices)", s.Name, s.Spec.Pool.Name, s.Spec.Pool.Generation, len(s.Spec.Devices)))
		}
		t.Fatalf("node %s: %s: want slices of %v devices, have %v", node, what, sizes, got)
	}
	return devs
}

// TestDRADriverPublishesSlices runs the DRA kubelet plugin as the node
// agent's ServiceAccount (pod-bound token, config/'s RBAC and admission
// policy) and checks that the node's ResourceSlices follow the scans
// exactly: the DRA pools' VFs only, split at 128 devices, shrinking and
// growing with the VFs, health changes, and no stale or duplicate slices;
// and that the agent cannot write another node's slices.
func TestDRADriverPublishesSlices(t *testing.T) {
	ctx := context.Background()
	// Only the node-identity admission policy: the tenants' one denies
	// VFNetwork writes for a moment after its removal, which would hit the
	// tests that follow.
	ns := installAgentObjects(t, func(o *unstructured.Unstructured) bool { return o.GetName() == agentAccount })
	node := createNode(t, uniqueName(t, "node"), nil)
	other := createNode(t, uniqueName(t, "other"), nil)
	cs := agentClientset(t, ns, node)

	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(draCX, "ens1f0", 0))
	n.AddPF(hosttest.E810(draE8, "ens2f0", 1))
	n.AddPF(hosttest.ConnectX6("0000:d8:00.0", "ens9f0", 1))
	for _, pf := range n.PFs() {
		n.SetNumVFs(pf, 100)
	}

	dir, err := os.MkdirTemp("", "dra-envtest-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	d, err := dra.Start(ctx, dra.Options{
		DriverName: "sluice.dev", NodeName: node.Name, KubeClient: cs, Node: n.Host(),
		PluginDir: dir + "/plugin", RegistryDir: dir + "/registry", Log: testr.New(t),
		ClaimsDir: dir + "/claims", CDIDir: dir + "/cdi", AttachmentsDir: dir + "/attachments", LockDir: dir + "/locks",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)

	// RBAC and the admission policy take a moment to reach the API
	// server's informers: the first publish may be refused and retried.
	publish := func(cfg string) {
		t.Helper()
		if err := d.Publish(ctx, draTree(t, n, cfg)); err != nil {
			t.Fatal(err)
		}
	}
	publish(draCfg)
	devs := waitSlices(t, node.Name, "200 VFs of the two DRA pools", []int{72, 128}, nil)
	if _, ok := devs[dra.DeviceName(n.VFAddress("0000:d8:00.0", 0))]; ok {
		t.Error("a VF of the device-plugin pool was published")
	}
	first := nodeSlices(t, node.Name)
	for _, s := range first {
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "Node" || s.OwnerReferences[0].UID != node.UID {
			t.Errorf("slice %s owners = %+v, want Node %s", s.Name, s.OwnerReferences, node.Name)
		}
	}

	// Fewer VFs: one slice, the old second one gone.
	n.SetNumVFs(draCX, 0)
	n.SetNumVFs(draCX, 2)
	n.SetNumVFs(draE8, 0)
	n.SetNumVFs(draE8, 2)
	publish(draCfg)
	devs = waitSlices(t, node.Name, "4 VFs after the PFs went to 2", []int{4}, nil)
	vf := dra.DeviceName(n.VFAddress(draE8, 1))
	if h := devs[vf].Attributes["healthy"].BoolValue; h == nil || !*h {
		t.Fatalf("%s healthy = %v before the carrier went", vf, h)
	}

	// A PF loses carrier: its VFs stay published, unhealthy.
	n.SetCarrier("ens2f0", false)
	publish(draCfg)
	waitSlices(t, node.Name, "ens2f0's VFs unhealthy", []int{4}, func(devs map[string]resourcev1.Device) bool {
		h := devs[vf].Attributes["healthy"].BoolValue
		return h != nil && !*h
	})

	// No DRA pool left: no device on the node.
	publish(`{"pools": []}`)
	waitSlices(t, node.Name, "no DRA pool", []int{0}, nil)

	// The agent cannot write another node's slices.
	foreign := &resourcev1.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "sluice.dev-"},
		Spec: resourcev1.ResourceSliceSpec{Driver: "sluice.dev", NodeName: &other.Name,
			Pool: resourcev1.ResourcePool{Name: other.Name, ResourceSliceCount: 1}},
	}
	_, err = cs.ResourceV1().ResourceSlices().Create(ctx, foreign, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) {
		t.Errorf("creating a slice of node %s as node %s's agent: %v, want Forbidden", other.Name, node.Name, err)
	}
}
