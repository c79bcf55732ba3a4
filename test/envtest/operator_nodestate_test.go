package envtest

import (
	"context"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers"
	"github.com/sluice-net/sluice/test/testenv"
)

// These tests run the NodeNetworkState reconciler directly, with clients
// that read the API server (or a stale copy) instead of the manager's
// cache, so that each step is one Reconcile.

const agentManager = "sluice-agent-test"

// countingWrites counts the writes sent through it.
type countingWrites struct {
	client.Client
	n *int
}

func (c countingWrites) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	*c.n++
	return c.Client.Create(ctx, obj, opts...)
}

func (c countingWrites) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	*c.n++
	return c.Client.Update(ctx, obj, opts...)
}

func (c countingWrites) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	*c.n++
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c countingWrites) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	*c.n++
	return c.Client.Apply(ctx, obj, opts...)
}

func reconcileNode(t *testing.T, c client.Client, node string) {
	t.Helper()
	r := &controllers.NodeStateReconciler{Client: c}
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: node}}); err != nil {
		t.Fatalf("reconcile %s: %v", node, err)
	}
}

// agentPatchesStatus writes the status as the agent does: a merge patch of
// what changed, without a resourceVersion.
func agentPatchesStatus(t *testing.T, node string, mutate func(*sluicev1.NodeNetworkStateStatus)) {
	t.Helper()
	nns, err := getNNS(node)
	if err != nil {
		t.Fatal(err)
	}
	base := nns.DeepCopy()
	mutate(&nns.Status)
	if err := env.Client.Status().Patch(context.Background(), nns, client.MergeFrom(base), client.FieldOwner(agentManager)); err != nil {
		t.Fatalf("agent: patch status of %s: %v", node, err)
	}
}

// managers maps each manager of the object's main resource (subresource
// "" ) or status to the top-level fields it owns.
func managers(t *testing.T, nns *sluicev1.NodeNetworkState) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, m := range nns.ManagedFields {
		key := m.Manager + "/" + string(m.Operation)
		if m.Subresource != "" {
			key += "/" + m.Subresource
		}
		for _, f := range []string{`"f:spec"`, `"f:status"`, `"f:ownerReferences"`} {
			if m.FieldsV1 != nil && strings.Contains(string(m.FieldsV1.Raw), f) {
				out[key] = append(out[key], strings.Trim(f, `"`))
			}
		}
	}
	return out
}

// TestNodeStateApplyIgnoresAgentStatusPatches: the operator renders from a
// NodeNetworkState the agent has patched since (its cache lags), and
// neither write undoes the other. The operator's update of old conflicted
// here (409), to be retried.
func TestNodeStateApplyIgnoresAgentStatusPatches(t *testing.T) {
	label := uniqueName(t, "l")
	node := uniqueName(t, "n")
	createNode(t, node, map[string]string{"sluice.dev/test": label})
	agentReports(t, node, twoPFs())
	p := testPolicy(uniqueName(t, "a"), label, 10, "ens1f0#0-3")
	createPolicy(t, p)

	cached, err := getNNS(node)
	if err != nil {
		t.Fatal(err)
	}
	agentPatchesStatus(t, node, func(st *sluicev1.NodeNetworkStateStatus) {
		st.SyncStatus = sluicev1.SyncSucceeded
		st.ObservedGeneration = cached.Generation
	})
	reconcileNode(t, testenv.StaleReads{Client: env.Client, NNS: cached}, node)

	nns, err := getNNS(node)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := groupsOf(nns.Spec.Interfaces), []string{"ens1f0:" + p.Name + "@1:0-3"}; !slices.Equal(got, want) {
		t.Errorf("spec groups = %v, want %v", got, want)
	}
	if nns.Status.SyncStatus != sluicev1.SyncSucceeded || nns.Status.ObservedGeneration != cached.Generation || len(nns.Status.Interfaces) != 2 {
		t.Errorf("the apply changed the agent's status: %+v", nns.Status)
	}
	if len(nns.OwnerReferences) != 1 || nns.OwnerReferences[0].Kind != "Node" || nns.OwnerReferences[0].Name != node {
		t.Errorf("owner references = %+v, want the node", nns.OwnerReferences)
	}

	// And the agent's next patch leaves the spec alone.
	agentPatchesStatus(t, node, func(st *sluicev1.NodeNetworkStateStatus) {
		st.SyncStatus = sluicev1.SyncInProgress
		st.ObservedGeneration = nns.Generation
	})
	after, err := getNNS(node)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(groupsOf(after.Spec.Interfaces), groupsOf(nns.Spec.Interfaces)) || after.Generation != nns.Generation {
		t.Errorf("the agent's patch changed the spec: %+v (generation %d, was %d)", after.Spec, after.Generation, nns.Generation)
	}
	got := managers(t, after)
	if want := []string{"f:spec", "f:ownerReferences"}; !slices.Equal(got[controllers.NodeStateFieldManager+"/Apply"], want) {
		t.Errorf("managed fields %v: want %s to own %v", got, controllers.NodeStateFieldManager, want)
	}
	for m, fields := range got {
		if m != controllers.NodeStateFieldManager+"/Apply" && slices.Contains(fields, "f:spec") {
			t.Errorf("%s owns spec fields too", m)
		}
	}
}

// TestNodeStateUnchangedSpecNoWrite: a reconcile that renders what is
// there sends nothing; a status-only change by the agent is no reason to
// write either. The creation is an apply too.
func TestNodeStateUnchangedSpecNoWrite(t *testing.T) {
	label := uniqueName(t, "l")
	node := uniqueName(t, "n")
	createNode(t, node, map[string]string{"sluice.dev/test": label})
	createPolicy(t, testPolicy(uniqueName(t, "a"), label, 10, "ens1f1"))
	var writes int
	c := countingWrites{Client: env.Client, n: &writes}

	reconcileNode(t, c, node)
	nns, err := getNNS(node)
	if err != nil {
		t.Fatalf("the operator did not create the NodeNetworkState: %v", err)
	}
	if writes != 1 || len(nns.OwnerReferences) != 1 || nns.OwnerReferences[0].Name != node {
		t.Fatalf("created with %d writes, owners %+v", writes, nns.OwnerReferences)
	}
	if got := managers(t, nns); !slices.Contains(got[controllers.NodeStateFieldManager+"/Apply"], "f:ownerReferences") {
		t.Errorf("managed fields %v: the creation was not an apply", got)
	}
	reconcileNode(t, c, node)
	if writes != 1 {
		t.Errorf("reconcile of an unchanged empty state wrote %d times", writes-1)
	}

	agentReports(t, node, twoPFs())
	reconcileNode(t, c, node)
	if writes != 2 {
		t.Fatalf("rendering the discovered PFs took %d writes, want 1", writes-1)
	}
	rendered, err := getNNS(node)
	if err != nil {
		t.Fatal(err)
	}
	agentPatchesStatus(t, node, func(st *sluicev1.NodeNetworkStateStatus) {
		st.SyncStatus = sluicev1.SyncSucceeded
		st.ObservedGeneration = rendered.Generation
	})
	reconcileNode(t, c, node)
	reconcileNode(t, c, node)
	if writes != 2 {
		t.Errorf("reconciles of an unchanged spec wrote %d times", writes-2)
	}
	now, err := getNNS(node)
	if err != nil {
		t.Fatal(err)
	}
	if now.Generation != rendered.Generation {
		t.Errorf("generation %d -> %d without a spec change", rendered.Generation, now.Generation)
	}
}

// TestNodeStateApplyReplacesSpecWrittenByUpdate: after an upgrade from an
// operator that wrote the spec with updates (under the client's default
// manager), which still shares the spec, the apply replaces the spec
// whole: a PF no policy selects any more leaves it.
func TestNodeStateApplyReplacesSpecWrittenByUpdate(t *testing.T) {
	label := uniqueName(t, "l")
	node := uniqueName(t, "n")
	createNode(t, node, map[string]string{"sluice.dev/test": label})
	agentReports(t, node, twoPFs())
	pa := testPolicy(uniqueName(t, "a"), label, 10, "ens1f0")
	pb := testPolicy(uniqueName(t, "b"), label, 10, "ens1f1")
	pb.Spec.MTU = 9000
	createPolicy(t, pa)
	createPolicy(t, pb)

	// The old operator's write: the spec as rendered now and the owner
	// reference, by an update under the client's default manager.
	var policies []*sluicev1.NetworkNodePolicy
	for _, p := range []*sluicev1.NetworkNodePolicy{pa, pb} {
		got, err := getPolicy(p.Name)
		if err != nil {
			t.Fatal(err)
		}
		policies = append(policies, got)
	}
	k8sNode, err := getNode(node)
	if err != nil {
		t.Fatal(err)
	}
	nns, err := getNNS(node)
	if err != nil {
		t.Fatal(err)
	}
	nns.Spec = controllers.NewMerger(policies).Node(controllers.NodeInput{Name: node, Labels: k8sNode.Labels, Interfaces: nns.Status.Interfaces}).Spec
	nns.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: k8sNode.UID}}
	if err := env.Client.Update(context.Background(), nns, client.FieldOwner("sluice")); err != nil {
		t.Fatal(err)
	}
	if len(nns.Spec.Interfaces) != 2 {
		t.Fatalf("old spec = %+v, want both PFs", nns.Spec)
	}
	// Nothing to change: nothing is sent, and the old manager keeps the spec.
	var writes int
	reconcileNode(t, countingWrites{Client: env.Client, n: &writes}, node)
	if writes != 0 {
		t.Errorf("the operator wrote %d times over the spec it renders", writes)
	}
	if nns, err = getNNS(node); err != nil {
		t.Fatal(err)
	}
	if got := managers(t, nns); !slices.Contains(got["sluice/Update"], "f:spec") {
		t.Fatalf("managed fields %v: the old operator's update does not own the spec", got)
	}

	if err := env.Client.Delete(context.Background(), pb); err != nil {
		t.Fatal(err)
	}
	reconcileNode(t, env.Client, node)
	if nns, err = getNNS(node); err != nil {
		t.Fatal(err)
	}
	if got, want := groupsOf(nns.Spec.Interfaces), []string{"ens1f0:" + pa.Name + "@1:0-7"}; !slices.Equal(got, want) {
		t.Errorf("spec groups = %v, want %v", got, want)
	}
	if len(nns.Spec.Interfaces) != 1 || nns.Spec.Interfaces[0].MTU != 0 || len(nns.Spec.Pools) != 1 {
		t.Errorf("spec = %+v, want only ens1f0 without an MTU and one pool", nns.Spec)
	}
	got := managers(t, nns)
	if slices.Contains(got["sluice/Update"], "f:spec") || !slices.Contains(got[controllers.NodeStateFieldManager+"/Apply"], "f:spec") {
		t.Errorf("managed fields %v: want the spec the operator's apply's alone", got)
	}
}
