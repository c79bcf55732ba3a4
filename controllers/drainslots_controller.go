package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/sluice-net/sluice/api/drainslot"
)

// DefaultDrainSlotResync is how often the drain slots are created again
// when someone deleted one.
const DefaultDrainSlotResync = 5 * time.Minute

// DrainSlotsReconciler creates the drain slot Leases the node agents take
// before they evict pods (package drainslot): the agents' Role grants
// them by name, which does not allow creating them. It creates the missing
// ones at start and every Resync, and never reads nor changes a slot: who
// holds one is the agents' business.
type DrainSlotsReconciler struct {
	Client client.Client
	// Namespace is the agents' (the operator's).
	Namespace string
	// Slots is the operator's --max-unavailable.
	Slots int
	// Resync; 0 means DefaultDrainSlotResync.
	Resync time.Duration
}

// The drain slots live where config/ installs the operator (see
// daemonset_controller.go).
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=create,namespace=sluice-system

// Reconcile creates the slots that do not exist.
func (r *DrainSlotsReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var errs []error
	for _, name := range drainslot.Names(r.Slots) {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name}}
		err := r.Client.Create(ctx, l, client.FieldOwner(FieldManager))
		switch {
		case err == nil:
			ctrl.LoggerFrom(ctx).Info("created drain slot", "lease", name)
		case !apierrors.IsAlreadyExists(err):
			errs = append(errs, fmt.Errorf("create drain slot Lease %s/%s: %w", r.Namespace, name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return reconcile.Result{}, err
	}
	resync := r.Resync
	if resync <= 0 {
		resync = DefaultDrainSlotResync
	}
	return reconcile.Result{RequeueAfter: resync}, nil
}

// SetupWithManager registers the reconciler; it runs once the manager
// starts (after leader election) and then every Resync.
func (r *DrainSlotsReconciler) SetupWithManager(mgr ctrl.Manager) error {
	start := source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Namespace, Name: drainslot.Prefix}})
		return nil
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("drain-slots").
		WatchesRawSource(start).
		Complete(r)
}
