package envtest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers"
	"github.com/sluice-net/sluice/test/testenv"
)

// agentAccount is the node agent's ServiceAccount in config/.
const agentAccount = "sluice-node"

// TestAgentAccess checks what the node agent's ServiceAccount may do, with
// the RBAC and the admission policy of config/default as kustomize renders
// them, and with real service account tokens from the TokenRequest API
// (envtest's API server signs them: controller-runtime passes it the
// --service-account-* flags). A token bound to a pod carries the pod's node
// in the user's extra authentication.kubernetes.io/node-name, as the
// kubelet's projected token of a DaemonSet pod does; the agent's node is
// what the policy compares with.
func TestAgentAccess(t *testing.T) {
	ctx := context.Background()
	ns := installAgentAccess(t)
	own := createNode(t, uniqueName(t, "own"), nil)
	other := createNode(t, uniqueName(t, "other"), nil)
	agent := agentClient(t, ns, own)
	unbound := tokenClient(t, ns, nil)

	// The other node's NodeNetworkState, as its own agent created it.
	mustCreate(t, &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: other.Name}})
	// The operator's leader election Lease and a drain slot, as the
	// operator creates them.
	leader := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllers.DefaultLeaderElectionID},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("sluice-operator-0")}}
	mustCreate(t, leader)
	slot := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sluice-drain-0"}}
	mustCreate(t, slot)
	t.Cleanup(func() {
		_ = env.Client.Delete(ctx, slot)
		_ = env.Client.Delete(ctx, leader)
	})

	// Both RBAC and the policy take effect when the API server's informers
	// see them: wait until the agent may read its slot and the policy
	// refuses a write to another node's state (checked again below).
	waitForAccess(t, agent, slot, other.Name)

	ownNNS := &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: own.Name}}
	t.Run("cannot create its NodeNetworkState with a spec", func(t *testing.T) {
		withSpec := ownNNS.DeepCopy()
		withSpec.Spec.RDMAMode = sluicev1.RDMAModeExclusive
		err := agent.Create(ctx, withSpec, client.DryRunAll)
		wantDenied(t, err, "spec")
	})
	t.Run("creates its NodeNetworkState owned by its Node", func(t *testing.T) {
		nns := ownNNS.DeepCopy()
		nns.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: own.Name, UID: own.UID}}
		if err := agent.Create(ctx, nns); err != nil {
			t.Fatalf("create: %v", err)
		}
	})
	t.Run("cannot create another node's NodeNetworkState", func(t *testing.T) {
		err := agent.Create(ctx, &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: uniqueName(t, "third")}}, client.DryRunAll)
		wantDenied(t, err, "may write only NodeNetworkState "+own.Name)
	})
	t.Run("patches its own status", func(t *testing.T) {
		if err := patchStatus(ctx, agent, own.Name); err != nil {
			t.Errorf("patch status: %v", err)
		}
	})
	t.Run("cannot patch another node's status", func(t *testing.T) {
		wantDenied(t, patchStatus(ctx, agent, other.Name), "may write only NodeNetworkState "+own.Name)
	})
	t.Run("cannot write any spec", func(t *testing.T) {
		for _, name := range []string{own.Name, other.Name} {
			nns := &sluicev1.NodeNetworkState{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, nns); err != nil {
				t.Fatal(err)
			}
			nns.Spec.RDMAMode = sluicev1.RDMAModeShared
			wantDenied(t, agent.Update(ctx, nns, client.DryRunAll), "")
			patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"rdmaMode":"shared"}}`))
			wantDenied(t, agent.Patch(ctx, nns, patch, client.DryRunAll), "")
		}
	})
	t.Run("a token bound to no node writes no status", func(t *testing.T) {
		wantDenied(t, patchStatus(ctx, unbound, own.Name), "authentication.kubernetes.io/node-name")
	})

	t.Run("cannot read or take the operator's leader election Lease", func(t *testing.T) {
		l := &coordinationv1.Lease{}
		wantDenied(t, agent.Get(ctx, client.ObjectKeyFromObject(leader), l), "")
		l = leader.DeepCopy()
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(leader), l); err != nil {
			t.Fatal(err)
		}
		l.Spec.HolderIdentity = ptr.To(own.Name)
		wantDenied(t, agent.Update(ctx, l), "")
	})
	t.Run("takes and releases a drain slot", func(t *testing.T) {
		l := &coordinationv1.Lease{}
		if err := agent.Get(ctx, client.ObjectKeyFromObject(slot), l); err != nil {
			t.Fatalf("get: %v", err)
		}
		l.Spec.HolderIdentity = ptr.To(own.Name)
		if err := agent.Update(ctx, l); err != nil {
			t.Fatalf("take: %v", err)
		}
		l.Spec.HolderIdentity = nil
		if err := agent.Update(ctx, l); err != nil {
			t.Fatalf("release: %v", err)
		}
	})
	t.Run("cannot hand a drain slot to another node", func(t *testing.T) {
		l := &coordinationv1.Lease{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(slot), l); err != nil {
			t.Fatal(err)
		}
		l.Spec.HolderIdentity = ptr.To(other.Name)
		wantDenied(t, agent.Update(ctx, l, client.DryRunAll), "holder")
	})
	t.Run("cannot create a Lease", func(t *testing.T) {
		err := agent.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sluice-drain-99"}}, client.DryRunAll)
		wantDenied(t, err, "")
		// Leases may be created with a PUT, which RBAC then checks as a
		// create of that name: a slot name the Role lists is no way in.
		err = agent.Update(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sluice-drain-15"}}, client.DryRunAll)
		wantDenied(t, err, "cannot create")
	})

	// The agent's pod informer lists and watches its node's pods
	// (spec.nodeName=<node>), so its syncs read pods from a cache. RBAC
	// cannot hold a list to a field selector: that read stays cluster-wide.
	t.Run("gets a pod and lists its node's pods", func(t *testing.T) {
		if err := agent.Get(ctx, client.ObjectKey{Namespace: ns, Name: agentPodName}, &corev1.Pod{}); err != nil {
			t.Errorf("get pod: %v", err)
		}
		var pods corev1.PodList
		if err := agent.List(ctx, &pods, client.MatchingFields{"spec.nodeName": own.Name}); err != nil {
			t.Errorf("list its node's pods: %v", err)
		}
		if len(pods.Items) != 1 || pods.Items[0].Name != agentPodName {
			t.Errorf("its node's pods: %d, want its own pod", len(pods.Items))
		}
	})
	t.Run("records events about its own NodeNetworkState only", func(t *testing.T) {
		if err := agent.Create(ctx, nnsEvent(own.Name), client.DryRunAll); err != nil {
			t.Errorf("event about its own state: %v", err)
		}
		wantDenied(t, agent.Create(ctx, nnsEvent(other.Name), client.DryRunAll), "events about NodeNetworkState "+own.Name)
		core := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, GenerateName: "sluice-"},
			InvolvedObject: corev1.ObjectReference{APIVersion: sluicev1.GroupVersion.String(), Kind: "NodeNetworkState", Name: other.Name},
			Reason:         "Draining", Message: "forged", Type: corev1.EventTypeNormal}
		wantDenied(t, agent.Create(ctx, core, client.DryRunAll), "")
	})
}

// agentPodName is the agent's pod on its node, which its token is bound to.
const agentPodName = "sluice-node-test"

// installAgentAccess applies, from config/default as kustomize renders it,
// the agent's namespace, ServiceAccount, RBAC and admission policy, and
// returns the namespace. The RBAC and the policy are removed when the test
// ends.
func installAgentAccess(t *testing.T) string {
	t.Helper()
	return installAgentObjects(t, func(*unstructured.Unstructured) bool { return true })
}

// installAgentObjects is installAgentAccess with only the admission
// objects keep accepts.
func installAgentObjects(t *testing.T, keep func(*unstructured.Unstructured) bool) string {
	t.Helper()
	ctx := context.Background()
	var ns string
	var objs []*unstructured.Unstructured
	for _, o := range decodeAll(t, kustomizeBuild(t, filepath.Join(testenv.RepoRoot(), "config", "default"))) {
		kind := o.GetKind()
		switch {
		case kind == "ServiceAccount" && o.GetName() == agentAccount:
			ns = o.GetNamespace()
		case kind == "Namespace",
			strings.HasSuffix(kind, "Role") && o.GetName() == agentAccount,
			strings.HasSuffix(kind, "RoleBinding") && o.GetName() == agentAccount,
			o.GroupVersionKind().Group == "admissionregistration.k8s.io" && keep(o):
		default:
			continue
		}
		objs = append(objs, o)
	}
	if ns == "" {
		t.Fatalf("config/default has no ServiceAccount %s", agentAccount)
	}
	// Namespaces first, as kubectl apply orders them.
	for _, pass := range []bool{true, false} {
		for _, o := range objs {
			if (o.GetKind() == "Namespace") != pass {
				continue
			}
			if err := env.Client.Patch(ctx, o, client.Apply, client.ForceOwnership, client.FieldOwner("agent-access-test")); err != nil {
				t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
			}
			if o.GetKind() != "Namespace" && o.GetKind() != "ServiceAccount" {
				t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
			}
		}
	}
	return ns
}

// agentClient is a client acting as the agent on node: with a token of
// its ServiceAccount bound to a pod scheduled there.
func agentClient(t *testing.T, ns string, node *corev1.Node) client.Client {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: agentPodName},
		Spec: corev1.PodSpec{NodeName: node.Name, ServiceAccountName: agentAccount,
			Containers: []corev1.Container{{Name: "agent", Image: testNodeImage}}},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatalf("create the agent's pod: %v", err)
	}
	t.Cleanup(func() {
		// No kubelet finishes a graceful deletion here.
		_ = env.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0))
	})
	return tokenClient(t, ns, &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID})
}

// tokenClient is a client with a token of the agent's ServiceAccount from
// the TokenRequest API, bound to the object given (nil: to nothing).
func tokenClient(t *testing.T, ns string, bound *authenticationv1.BoundObjectReference) client.Client {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), agentAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: bound}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request a token of %s/%s: %v", ns, agentAccount, err)
	}
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tr.Status.Token
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitForAccess waits until the agent may read the drain slot and is
// refused a status write to the node other's state. It only logs when that
// does not happen: the checks after it then say what is missing.
func waitForAccess(t *testing.T, agent client.Client, slot *coordinationv1.Lease, other string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		readErr := agent.Get(ctx, client.ObjectKeyFromObject(slot), &coordinationv1.Lease{})
		writeErr := patchStatus(ctx, agent, other, client.DryRunAll)
		if readErr == nil && apierrors.IsForbidden(writeErr) {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("after 15s: reading the drain slot: %v; writing node %s's status: %v", readErr, other, writeErr)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// patchStatus merge-patches a NodeNetworkState's status, as the agent does.
func patchStatus(ctx context.Context, c client.Client, name string, opts ...client.SubResourcePatchOption) error {
	nns := &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: name}}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"status":{"syncStatus":"Succeeded"}}`))
	return c.Status().Patch(ctx, nns, patch, opts...)
}

// nnsEvent is an events.k8s.io Event about node's NodeNetworkState, as the
// agent's recorder writes it (in default: the object is cluster-scoped).
func nnsEvent(node string) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, GenerateName: node + "-"},
		EventTime:  metav1.NewMicroTime(time.Now()),
		Regarding:  corev1.ObjectReference{APIVersion: sluicev1.GroupVersion.String(), Kind: "NodeNetworkState", Name: node},
		Type:       corev1.EventTypeNormal, Reason: "Draining", Action: "Evict", Note: "evicting",
		ReportingController: "sluice-agent", ReportingInstance: "sluice-agent-" + node,
	}
}

// wantDenied fails unless err is the API server's refusal (403) whose
// message contains want.
func wantDenied(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("allowed, want denied (%q)", want)
	case !apierrors.IsForbidden(err):
		t.Errorf("got %v, want Forbidden", err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("denied with %q, want the message to contain %q", err, want)
	default:
		t.Logf("denied: %v", err)
	}
}
