package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// NodeStateReconciler renders each node's NodeNetworkState spec from the
// NetworkNodePolicies. Its key is the node's name; it runs when the node's
// labels, its NodeNetworkState or any policy change.
type NodeStateReconciler struct {
	Client client.Client
}

// +kubebuilder:rbac:groups="",resources=nodes,verbs=list;watch
// +kubebuilder:rbac:groups=sluice.dev,resources=networknodepolicies,verbs=list;watch
// +kubebuilder:rbac:groups=sluice.dev,resources=nodenetworkstates,verbs=list;watch;create;patch

// Reconcile applies the merged spec of one node's NodeNetworkState with
// server-side apply (NodeStateFieldManager), creating it (owned by the
// Node, so that it goes with it) when a policy selects the node and the
// agent has not created it yet. The apply carries no resourceVersion, so
// the agent's status patches never make it conflict; a spec rendered from
// interfaces the agent has changed since is rendered again on the event
// of that change. Nothing is sent when the spec and the owner reference
// are already as rendered.
func (r *NodeStateReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	node := nodeMetadata()
	if err := r.Client.Get(ctx, req.NamespacedName, node); err != nil {
		// A deleted node's NodeNetworkState is garbage-collected with it.
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if node.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	policies, err := listPolicies(ctx, r.Client)
	if err != nil {
		return reconcile.Result{}, err
	}
	nns := &sluicev1.NodeNetworkState{}
	if err := r.Client.Get(ctx, req.NamespacedName, nns); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("get NodeNetworkState %s: %w", req.Name, err)
		}
		if !selectsNode(policies, node) {
			return reconcile.Result{}, nil
		}
		// An empty NodeNetworkState for the agent to fill in; its spec is
		// rendered once the agent reports the node's interfaces.
		return reconcile.Result{}, r.apply(ctx, node, sluicev1.NodeNetworkStateSpec{})
	}

	res := NewMerger(policies).Node(NodeInput{Name: node.Name, Labels: node.Labels, Interfaces: nns.Status.Interfaces})
	if hasOwner(nns, node.UID) && equality.Semantic.DeepEqual(nns.Spec, res.Spec) {
		// An apply would change nothing, but still cost a request.
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, r.apply(ctx, node, res.Spec)
}

// apply writes the operator's fields of the node's NodeNetworkState. It
// forces: the spec is the operator's alone, and atomic, so the apply
// replaces it whole even where an earlier writer (an operator that still
// used updates, someone's edit) shares it.
func (r *NodeStateReconciler) apply(ctx context.Context, node *metav1.PartialObjectMetadata, spec sluicev1.NodeNetworkStateSpec) error {
	cfg := nodeStateConfig(node, spec)
	if err := r.Client.Apply(ctx, cfg, client.FieldOwner(NodeStateFieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply NodeNetworkState %s: %w", node.Name, err)
	}
	gen := int64(0)
	if cfg.Generation != nil {
		gen = *cfg.Generation
	}
	ctrl.LoggerFrom(ctx).V(1).Info("rendered NodeNetworkState", "generation", gen, "interfaces", len(spec.Interfaces))
	return nil
}

// selectsNode reports whether some policy not being deleted selects the
// node.
func selectsNode(policies []*sluicev1.NetworkNodePolicy, node *metav1.PartialObjectMetadata) bool {
	for _, p := range policies {
		if p.DeletionTimestamp == nil && matchesNode(p.Spec.NodeSelector, node.Labels) {
			return true
		}
	}
	return false
}

// SetupWithManager registers the reconciler: Nodes (metadata only, label
// changes), NodeNetworkStates (spec drift, discovered interfaces, owner) and
// policies (any spec change re-renders every node).
func (r *NodeStateReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("nodenetworkstate").
		For(&corev1.Node{}, builder.OnlyMetadata, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&sluicev1.NodeNetworkState{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(nnsInputChanged())).
		Watches(&sluicev1.NetworkNodePolicy{}, handler.EnqueueRequestsFromMapFunc(r.allNodes), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

func (r *NodeStateReconciler) allNodes(ctx context.Context, _ client.Object) []reconcile.Request {
	nodes, err := listNodes(ctx, r.Client)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list nodes to re-render after a policy change")
		return nil
	}
	reqs := make([]reconcile.Request, len(nodes))
	for i := range nodes {
		reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Name: nodes[i].Name}}
	}
	return reqs
}

// nnsInputChanged passes the NodeNetworkState changes that can change what
// the reconciler writes: a spec edited by someone else (generation), the
// discovered interfaces and the owner references. Status updates of the
// sync progress alone do not re-render.
func nnsInputChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*sluicev1.NodeNetworkState)
		n, ok2 := e.ObjectNew.(*sluicev1.NodeNetworkState)
		if !ok1 || !ok2 {
			return true
		}
		return o.Generation != n.Generation ||
			!equality.Semantic.DeepEqual(o.OwnerReferences, n.OwnerReferences) ||
			!sameSelectionInputs(o.Status.Interfaces, n.Status.Interfaces)
	}}
}

func nodeMetadata() *metav1.PartialObjectMetadata {
	n := &metav1.PartialObjectMetadata{}
	n.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	return n
}

func hasOwner(obj metav1.Object, uid types.UID) bool {
	for _, o := range obj.GetOwnerReferences() {
		if o.UID == uid {
			return true
		}
	}
	return false
}
