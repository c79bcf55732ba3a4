package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// eventRecorder is the part of an events.k8s.io recorder the operator uses.
type eventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// policyGauges receives the node counts of each policy.
type policyGauges interface {
	set(policy string, matched, ready int32)
	forget(policy string)
}

// PolicyStatusReconciler reports, per NetworkNodePolicy, where it applies
// (matchedNodes), where the node agent applied its current generation
// (readyNodes), its conflicts and its dry-run results. It merges the nodes
// the same way NodeStateReconciler does, from the same caches, so that a
// conflict is reported even though it never reaches a NodeNetworkState.
type PolicyStatusReconciler struct {
	Client   client.Client
	Recorder eventRecorder
	Gauges   policyGauges

	evals evalCache
}

// +kubebuilder:rbac:groups=sluice.dev,resources=networknodepolicies,verbs=list;watch
// +kubebuilder:rbac:groups=sluice.dev,resources=networknodepolicies/status,verbs=update
// +kubebuilder:rbac:groups=sluice.dev,resources=nodenetworkstates,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile recomputes one policy's status.
func (r *PolicyStatusReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	policy := &sluicev1.NetworkNodePolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, policy); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.Gauges.forget(req.Name)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if policy.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	policies, err := listPolicies(ctx, r.Client)
	if err != nil {
		return reconcile.Result{}, err
	}
	nodes, err := r.nodeViews(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	m, fingerprint := NewMerger(policies), policyFingerprint(policies)
	eval := func(n NodeInput) MergeResult { return r.evals.evaluate(m, fingerprint, n) }
	out := evaluatePolicy(policy, m, eval, nodes)
	r.Gauges.set(policy.Name, out.matched, out.ready)

	status := policyStatus(policy, out)
	if equality.Semantic.DeepEqual(policy.Status, status) {
		return reconcile.Result{}, nil
	}
	before := meta.FindStatusCondition(policy.Status.Conditions, sluicev1.ConditionConflict)
	policy.Status = status
	if err := r.Client.Status().Update(ctx, policy); err != nil {
		return reconcile.Result{}, fmt.Errorf("update status of NetworkNodePolicy %s: %w", policy.Name, err)
	}
	after := meta.FindStatusCondition(status.Conditions, sluicev1.ConditionConflict)
	if after.Status == metav1.ConditionTrue && (before == nil || before.Status != after.Status || before.Message != after.Message) {
		r.announceConflicts(policy, policies, out.findings)
	}
	return reconcile.Result{}, nil
}

// announceConflicts records, for every policy this one lost a claim to, a
// Warning event on both policies. The winner of a conflict of distinct
// priorities keeps Conflict=False, so the event is how its owner learns.
func (r *PolicyStatusReconciler) announceConflicts(policy *sluicev1.NetworkNodePolicy, all []*sluicev1.NetworkNodePolicy, findings []Finding) {
	byWinner := map[string][]Finding{}
	for _, f := range conflictsOf(findings) {
		if f.Policy == policy.Name {
			byWinner[f.Winner] = append(byWinner[f.Winner], f)
		}
	}
	for _, other := range all {
		fs := byWinner[other.Name]
		if len(fs) == 0 {
			continue
		}
		note := fs[0].Message
		if len(fs) > 1 {
			note = fmt.Sprintf("%s (and %d more PFs or nodes)", note, len(fs)-1)
		}
		if fs[0].DryRun {
			note = "dry run: " + note
		}
		r.Recorder.Eventf(policy, other, corev1.EventTypeWarning, ReasonConflict, "Merge", "%s", note)
		r.Recorder.Eventf(other, policy, corev1.EventTypeWarning, ReasonConflict, "Merge", "%s", note)
	}
}

// nodeViews joins the cached Nodes with their NodeNetworkStates, by name.
func (r *PolicyStatusReconciler) nodeViews(ctx context.Context) ([]nodeView, error) {
	nodes, err := listNodes(ctx, r.Client)
	if err != nil {
		return nil, err
	}
	states, err := listNodeStates(ctx, r.Client)
	if err != nil {
		return nil, err
	}
	views := make([]nodeView, len(nodes))
	live := make(map[string]bool, len(nodes))
	for i := range nodes {
		views[i] = nodeView{name: nodes[i].Name, labels: nodes[i].Labels, state: states[nodes[i].Name]}
		live[nodes[i].Name] = true
	}
	r.evals.prune(live)
	slices.SortFunc(views, func(a, b nodeView) int { return strings.Compare(a.name, b.name) })
	return views, nil
}

// SetupWithManager registers the reconciler. Every policy is re-evaluated
// when any policy's spec, any NodeNetworkState or any node's labels change,
// since each can change another policy's conflicts and counts. Node-side
// events are batched (statusBatchDelay); policy changes are not.
func (r *PolicyStatusReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("networknodepolicy-status").
		Watches(&sluicev1.NetworkNodePolicy{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&sluicev1.NodeNetworkState{}, enqueueAfter(r.allPolicies, statusBatchDelay), builder.WithPredicates(nnsReportChanged())).
		WatchesMetadata(&corev1.Node{}, enqueueAfter(r.allPolicies, statusBatchDelay), builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// nnsReportChanged passes the NodeNetworkState updates a policy's status
// depends on: the spec (generation), the sync result, the dry-run result
// and the PFs the merge selects from; not VF-level status churn.
func nnsReportChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*sluicev1.NodeNetworkState)
		n, ok2 := e.ObjectNew.(*sluicev1.NodeNetworkState)
		if !ok1 || !ok2 {
			return true
		}
		os, ns := &o.Status, &n.Status
		return o.Generation != n.Generation || os.SyncStatus != ns.SyncStatus || os.ObservedGeneration != ns.ObservedGeneration ||
			os.LastSyncError != ns.LastSyncError || !equality.Semantic.DeepEqual(os.DryRun, ns.DryRun) ||
			!sameSelectionInputs(os.Interfaces, ns.Interfaces)
	}}
}

// allPolicies maps any event to every policy, and to the object itself when
// it is a policy (a deleted one is no longer in the cache).
func (r *PolicyStatusReconciler) allPolicies(ctx context.Context, obj client.Object) []reconcile.Request {
	policies, err := listPolicies(ctx, r.Client)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list policies to re-evaluate")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(policies)+1)
	for _, p := range policies {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
	}
	if _, ok := obj.(*sluicev1.NetworkNodePolicy); ok {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: obj.GetName()}})
	}
	return reqs
}
