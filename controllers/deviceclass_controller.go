package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sluice-net/sluice/api/dradevice"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// DRAPoolLabel on a rendered DeviceClass is the resourceName of the DRA
// pool it selects.
const DRAPoolLabel = "sluice.dev/dra-pool"

// deviceClassesKey is the one request the DeviceClass reconciler works on:
// every DeviceClass depends on every policy (a pool may be fed by several),
// so each event renders them all.
const deviceClassesKey = "deviceclasses"

// DeviceClassReconciler renders one DeviceClass per DRA pool: each
// resourceName that a NetworkNodePolicy with allocation DRA advertises gets
// <resourceName>.<prefix>, selecting the healthy devices of that pool that
// the node agents' DRA driver publishes. A DeviceClass whose pool no policy
// asks for any more is deleted; one of that name that sluice did not render
// is left alone.
type DeviceClassReconciler struct {
	Client client.Client
	// ResourcePrefix is the DRA driver's name and the class names' suffix.
	ResourcePrefix string
}

// +kubebuilder:rbac:groups=sluice.dev,resources=networknodepolicies,verbs=list;watch
// +kubebuilder:rbac:groups=resource.k8s.io,resources=deviceclasses,verbs=list;watch;create;update;delete

// Reconcile renders every DRA pool's DeviceClass and deletes the stale ones.
func (r *DeviceClassReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var policies sluicev1.NetworkNodePolicyList
	if err := r.Client.List(ctx, &policies); err != nil {
		return reconcile.Result{}, fmt.Errorf("list NetworkNodePolicies: %w", err)
	}
	want := map[string]*resourcev1.DeviceClass{}
	for _, p := range draPolicies(policies.Items) {
		name := dradevice.DeviceClassName(p.Spec.ResourceName, r.ResourcePrefix)
		dc := want[name]
		if dc == nil {
			dc = r.render(p.Spec.ResourceName)
			want[name] = dc
		}
		dc.OwnerReferences = append(dc.OwnerReferences, metav1.OwnerReference{
			APIVersion: sluicev1.GroupVersion.String(), Kind: "NetworkNodePolicy", Name: p.Name, UID: p.UID,
		})
	}

	var have resourcev1.DeviceClassList
	if err := r.Client.List(ctx, &have, client.MatchingLabels{managedByLabel: managedByValue}); err != nil {
		return reconcile.Result{}, fmt.Errorf("list DeviceClasses: %w", err)
	}
	var errs []error
	for i := range have.Items {
		cur := &have.Items[i]
		if _, ok := cur.Labels[DRAPoolLabel]; !ok {
			continue // sluice's, but not a pool's
		}
		dc, ok := want[cur.Name]
		if !ok {
			if err := r.Client.Delete(ctx, cur, client.Preconditions{UID: &cur.UID}); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("delete DeviceClass %s of a pool no policy asks DRA for: %w", cur.Name, err))
			}
			continue
		}
		delete(want, cur.Name)
		if equality.Semantic.DeepEqual(cur.Spec, dc.Spec) && equality.Semantic.DeepEqual(cur.Labels, dc.Labels) &&
			equality.Semantic.DeepEqual(cur.OwnerReferences, dc.OwnerReferences) {
			continue
		}
		cur.Spec, cur.Labels, cur.OwnerReferences = dc.Spec, dc.Labels, dc.OwnerReferences
		if err := r.Client.Update(ctx, cur); err != nil {
			errs = append(errs, fmt.Errorf("update DeviceClass %s: %w", cur.Name, err))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		err := r.Client.Create(ctx, want[name])
		switch {
		case apierrors.IsAlreadyExists(err):
			// Not labelled as sluice's: someone else's class of that name.
			ctrl.LoggerFrom(ctx).Error(err, "a DeviceClass of the DRA pool's name exists and was not rendered by sluice; leaving it alone: delete it, or rename the pool's resourceName",
				"deviceClass", name, "pool", want[name].Labels[DRAPoolLabel])
		case err != nil:
			errs = append(errs, fmt.Errorf("create DeviceClass %s: %w", name, err))
		}
	}
	return reconcile.Result{}, errors.Join(errs...)
}

// render is the DeviceClass of one DRA pool: the driver's healthy devices
// whose pool attribute is the resourceName.
func (r *DeviceClassReconciler) render(pool string) *resourcev1.DeviceClass {
	driver := dradevice.DriverName(r.ResourcePrefix)
	attr := func(name string) string { return "device.attributes[" + strconv.Quote(driver) + "]." + name }
	expr := fmt.Sprintf("device.driver == %s && %s == %s && %s",
		strconv.Quote(driver), attr(dradevice.AttrPool), strconv.Quote(pool), attr(dradevice.AttrHealthy))
	return &resourcev1.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:   dradevice.DeviceClassName(pool, r.ResourcePrefix),
			Labels: map[string]string{managedByLabel: managedByValue, DRAPoolLabel: pool},
		},
		Spec: resourcev1.DeviceClassSpec{
			Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: expr}}},
		},
	}
}

// draPolicies are the applied (not dry-run, not deleted) policies asking
// for DRA, by name.
func draPolicies(all []sluicev1.NetworkNodePolicy) []*sluicev1.NetworkNodePolicy {
	var out []*sluicev1.NetworkNodePolicy
	for i := range all {
		p := &all[i]
		if p.Spec.DRA() && !p.Spec.DryRun && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *sluicev1.NetworkNodePolicy) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SetupWithManager registers the reconciler: any policy event and any
// event on a DeviceClass sluice rendered (an edit or deletion is undone)
// renders the classes again.
func (r *DeviceClassReconciler) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: deviceClassesKey}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("deviceclass").
		Watches(&sluicev1.NetworkNodePolicy{}, all).
		Watches(&resourcev1.DeviceClass{}, all).
		Complete(r)
}
