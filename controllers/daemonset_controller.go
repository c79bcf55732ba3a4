package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// FieldManager is the server-side apply field manager of the operator.
const FieldManager = "sluice-operator"

// NodeDaemonSetReconciler keeps the node agent's DaemonSet as rendered:
// it applies it at start and again whenever the DaemonSet is edited or
// deleted.
type NodeDaemonSetReconciler struct {
	Client  client.Client
	Options NodeDaemonSetOptions
}

// The namespace below is where config/ installs the operator; a
// kustomization that installs it elsewhere must patch it.
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=list;watch;create;patch,namespace=sluice-system

// Reconcile applies the DaemonSet, taking back the fields it sets.
func (r *NodeDaemonSetReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	ds := nodeDaemonSet(r.Options)
	if err := r.Client.Apply(ctx, ds, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return reconcile.Result{}, fmt.Errorf("apply DaemonSet %s/%s: %w", r.Options.Namespace, NodeDaemonSetName, err)
	}
	return reconcile.Result{}, nil
}

func (r *NodeDaemonSetReconciler) key() types.NamespacedName {
	return types.NamespacedName{Namespace: r.Options.Namespace, Name: NodeDaemonSetName}
}

// SetupWithManager registers the reconciler. The manager's cache must
// watch DaemonSets in Options.Namespace.
func (r *NodeDaemonSetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	key := r.key()
	isOurs := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == key.Namespace && o.GetName() == key.Name
	})
	start := source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(reconcile.Request{NamespacedName: key})
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("node-daemonset").
		Watches(&appsv1.DaemonSet{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(
			isOurs, predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		WatchesRawSource(start).
		Complete(r)
}
