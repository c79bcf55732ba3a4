package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sluice-net/sluice/api/dradevice"
	"github.com/sluice-net/sluice/api/tenancy"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

const (
	// NADResourceAnnotation tells Multus which device-plugin resource a
	// NetworkAttachmentDefinition needs.
	NADResourceAnnotation = "k8s.v1.cni.cncf.io/resourceName"
	// VFNetworkAnnotation on a NetworkAttachmentDefinition is the
	// "namespace/name" of the VFNetwork that renders it.
	VFNetworkAnnotation = "sluice.dev/vfnetwork"
	// NADFinalizer is on a VFNetwork whose NetworkAttachmentDefinition is
	// in another namespace, where an owner reference cannot reach.
	NADFinalizer = "sluice.dev/networkattachmentdefinition"

	managedByLabel = "app.kubernetes.io/managed-by"
	managedByValue = "sluice"
)

// VFNetwork Ready reasons.
const (
	ReasonRendered      = "Rendered"
	ReasonInvalidIPAM   = "InvalidIPAM"
	ReasonNADNotManaged = "NADNotManaged"
	ReasonRenderFailed  = "RenderFailed"
	// ReasonClaimReference: the pool is allocated through DRA, so pods use
	// the VFNetwork through a ResourceClaim's config, not a
	// NetworkAttachmentDefinition (none is rendered).
	ReasonClaimReference = "ClaimReference"
)

// constError is an error that can be a constant.
type constError string

func (e constError) Error() string { return string(e) }

// errNotManaged is an existing NetworkAttachmentDefinition that some other
// VFNetwork or someone else made.
const errNotManaged = constError("not managed by this VFNetwork")

// VFNetworkReconciler renders each VFNetwork into a
// NetworkAttachmentDefinition of the same name, in spec.networkNamespace or
// the VFNetwork's own namespace, and keeps it as rendered. A tenant's
// VFNetwork (outside PlatformNamespace) that asks for what only a platform
// VFNetwork may (package api/tenancy) gets no NetworkAttachmentDefinition,
// and neither does a VFNetwork of a DRA pool (pods name it in their
// ResourceClaims' config instead).
type VFNetworkReconciler struct {
	Client client.Client
	Scheme *runtime.Scheme
	// PlatformNamespace is the operator's namespace: its VFNetworks may
	// render anywhere and set every option. Required.
	PlatformNamespace string
	// ResourcePrefix is the device plugin's resource prefix: pods of a
	// VFNetwork need <ResourcePrefix>/<spec.resourceName>. Required.
	ResourcePrefix string
}

// +kubebuilder:rbac:groups=sluice.dev,resources=vfnetworks,verbs=list;watch;update
// +kubebuilder:rbac:groups=sluice.dev,resources=networknodepolicies,verbs=list;watch
// +kubebuilder:rbac:groups=sluice.dev,resources=vfnetworks/status,verbs=update
// +kubebuilder:rbac:groups=sluice.dev,resources=vfnetworks/finalizers,verbs=update
// +kubebuilder:rbac:groups=k8s.cni.cncf.io,resources=network-attachment-definitions,verbs=list;watch;create;update;delete

// Reconcile renders one VFNetwork.
func (r *VFNetworkReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	vfn := &sluicev1.VFNetwork{}
	if err := r.Client.Get(ctx, req.NamespacedName, vfn); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	target := nadKey(vfn)
	if vfn.DeletionTimestamp != nil {
		return reconcile.Result{}, r.finalize(ctx, vfn, target)
	}
	if refusal := TenantRefusal(vfn, r.PlatformNamespace); refusal != "" {
		return reconcile.Result{}, r.refuse(ctx, vfn, target, refusal)
	}
	pool, err := r.poolOf(ctx, vfn.Spec.ResourceName)
	if err != nil {
		return reconcile.Result{}, err
	}
	if pool.dra {
		return reconcile.Result{}, r.withdraw(ctx, vfn, target, r.claimReference(vfn, target))
	}

	// A NAD left behind in another namespace by an earlier networkNamespace.
	if prev := vfn.Status.NetworkAttachmentDefinition; prev != "" && prev != target.String() {
		if err := r.deleteNAD(ctx, vfn, parseKey(prev)); err != nil {
			return reconcile.Result{}, err
		}
	}
	crossNamespace := target.Namespace != vfn.Namespace
	if crossNamespace && !controllerutil.ContainsFinalizer(vfn, NADFinalizer) {
		controllerutil.AddFinalizer(vfn, NADFinalizer)
		if err := r.Client.Update(ctx, vfn); err != nil {
			return reconcile.Result{}, fmt.Errorf("add finalizer to VFNetwork %s: %w", req, err)
		}
	}

	status := vfn.Status.DeepCopy()
	status.ObservedGeneration = vfn.Generation
	cond := metav1.Condition{Type: sluicev1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: vfn.Generation}
	var result error

	resource := r.resource(vfn)
	config, err := renderCNIConfig(vfn, resource, pool.softRoCE)
	var invalid *invalidSpecError
	switch {
	case errors.As(err, &invalid):
		// The NAD stays as it was: pods keep attaching with the last good config.
		cond.Reason, cond.Message = invalid.condReason, invalid.Error()
	case err != nil:
		cond.Reason, cond.Message = ReasonRenderFailed, err.Error()
	default:
		err = r.ensureNAD(ctx, vfn, target, config)
		switch {
		case errors.Is(err, errNotManaged):
			cond.Reason = ReasonNADNotManaged
			cond.Message = fmt.Sprintf("NetworkAttachmentDefinition %s exists and was not rendered by this VFNetwork; delete it or give the VFNetwork another name or spec.networkNamespace", target)
		case err != nil:
			cond.Reason, cond.Message = ReasonRenderFailed, err.Error()
			result = err
		default:
			status.NetworkAttachmentDefinition = target.String()
			cond.Status, cond.Reason = metav1.ConditionTrue, ReasonRendered
			cond.Message = fmt.Sprintf("NetworkAttachmentDefinition %s attaches pods to VFs of %s", target, resource)
		}
	}
	meta.SetStatusCondition(&status.Conditions, cond)

	if !crossNamespace && status.NetworkAttachmentDefinition == target.String() {
		// Back in its own namespace: the owner reference takes over.
		if err := r.removeFinalizer(ctx, vfn); err != nil {
			return reconcile.Result{}, err
		}
	}
	if err := r.writeStatus(ctx, vfn, status); err != nil {
		return reconcile.Result{}, errors.Join(result, err)
	}
	return reconcile.Result{}, result
}

// refuse handles a tenant VFNetwork that asks for what only a platform
// VFNetwork may (refusal is TenantRefusal's message): every
// NetworkAttachmentDefinition it rendered before (before the operator
// refused such objects, or under an earlier spec) is withdrawn, and Ready
// says which fields and how to fix them. Unlike an invalid IPAM, which
// keeps the last good NetworkAttachmentDefinition, a refusal keeps none: no
// pod attaches through a VFNetwork its namespace may not have.
func (r *VFNetworkReconciler) refuse(ctx context.Context, vfn *sluicev1.VFNetwork, target types.NamespacedName, refusal string) error {
	return r.withdraw(ctx, vfn, target, metav1.Condition{Status: metav1.ConditionFalse, Reason: ReasonPlatformOnly, Message: refusal})
}

// claimReference is the Ready condition of a VFNetwork of a DRA pool: it
// works, through claims, and says how a claim names it.
func (r *VFNetworkReconciler) claimReference(vfn *sluicev1.VFNetwork, target types.NamespacedName) metav1.Condition {
	return metav1.Condition{
		Status: metav1.ConditionTrue, Reason: ReasonClaimReference,
		Message: fmt.Sprintf("pool %s is allocated through DRA (spec.allocation DRA on its NetworkNodePolicies), so no NetworkAttachmentDefinition is rendered: "+
			"pods in namespace %s use this VFNetwork through a ResourceClaim or ResourceClaimTemplate for DeviceClass %s whose device config has opaque parameters for driver %s "+
			"with apiVersion: %s, kind: %s and vfNetwork: {name: %s, namespace: %s}",
			vfn.Spec.ResourceName, target.Namespace, dradevice.DeviceClassName(vfn.Spec.ResourceName, r.ResourcePrefix), dradevice.DriverName(r.ResourcePrefix),
			dradevice.ClaimConfigAPIVersion, dradevice.ClaimConfigKind, vfn.Name, vfn.Namespace),
	}
}

// withdraw leaves a VFNetwork without NetworkAttachmentDefinitions: every
// one it rendered (in its namespace, the target's, or the one its status
// names) is deleted, its finalizer goes once nothing is left in another
// namespace, and cond (Status, Reason, Message) becomes its Ready
// condition. A deletion that failed is added to the message and retried.
func (r *VFNetworkReconciler) withdraw(ctx context.Context, vfn *sluicev1.VFNetwork, target types.NamespacedName, cond metav1.Condition) error {
	errs := r.deleteRendered(ctx, vfn, target)
	status := vfn.Status.DeepCopy()
	status.ObservedGeneration = vfn.Generation
	if len(errs) == 0 {
		status.NetworkAttachmentDefinition = ""
	} else {
		cond.Message += fmt.Sprintf(" (removing what it rendered before failed, retrying: %v)", errors.Join(errs...))
	}
	cond.Type, cond.ObservedGeneration = sluicev1.ConditionReady, vfn.Generation
	meta.SetStatusCondition(&status.Conditions, cond)
	if len(errs) == 0 {
		if err := r.removeFinalizer(ctx, vfn); err != nil {
			return err
		}
	}
	if err := r.writeStatus(ctx, vfn, status); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// deleteRendered deletes the NetworkAttachmentDefinitions the VFNetwork
// may have rendered: in its own namespace, in target, and the one its
// status names.
func (r *VFNetworkReconciler) deleteRendered(ctx context.Context, vfn *sluicev1.VFNetwork, target types.NamespacedName) []error {
	keys := []types.NamespacedName{client.ObjectKeyFromObject(vfn), target}
	if prev := vfn.Status.NetworkAttachmentDefinition; prev != "" {
		keys = append(keys, parseKey(prev))
	}
	var errs []error
	deleted := map[types.NamespacedName]bool{}
	for _, k := range keys {
		if deleted[k] {
			continue
		}
		if err := r.deleteNAD(ctx, vfn, k); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted[k] = true
	}
	return errs
}

// removeFinalizer takes NADFinalizer off the VFNetwork, if it is there.
func (r *VFNetworkReconciler) removeFinalizer(ctx context.Context, vfn *sluicev1.VFNetwork) error {
	if !controllerutil.RemoveFinalizer(vfn, NADFinalizer) {
		return nil
	}
	if err := r.Client.Update(ctx, vfn); err != nil {
		return fmt.Errorf("remove finalizer from VFNetwork %s/%s: %w", vfn.Namespace, vfn.Name, err)
	}
	return nil
}

// writeStatus writes status as the VFNetwork's, unless it is already.
func (r *VFNetworkReconciler) writeStatus(ctx context.Context, vfn *sluicev1.VFNetwork, status *sluicev1.VFNetworkStatus) error {
	if equality.Semantic.DeepEqual(&vfn.Status, status) {
		return nil
	}
	vfn.Status = *status
	if err := r.Client.Status().Update(ctx, vfn); err != nil {
		return fmt.Errorf("update status of VFNetwork %s/%s: %w", vfn.Namespace, vfn.Name, err)
	}
	return nil
}

// resource is the device-plugin resource pods of the VFNetwork need.
func (r *VFNetworkReconciler) resource(vfn *sluicev1.VFNetwork) string {
	return r.ResourcePrefix + "/" + vfn.Spec.ResourceName
}

// finalize deletes the NetworkAttachmentDefinitions a VFNetwork being
// deleted rendered outside its namespace, then lets it go.
func (r *VFNetworkReconciler) finalize(ctx context.Context, vfn *sluicev1.VFNetwork, target types.NamespacedName) error {
	if !controllerutil.ContainsFinalizer(vfn, NADFinalizer) {
		return nil
	}
	if err := r.deleteNAD(ctx, vfn, target); err != nil {
		return err
	}
	if prev := vfn.Status.NetworkAttachmentDefinition; prev != "" && prev != target.String() {
		if err := r.deleteNAD(ctx, vfn, parseKey(prev)); err != nil {
			return err
		}
	}
	return r.removeFinalizer(ctx, vfn)
}

// ensureNAD creates the NetworkAttachmentDefinition or puts back what was
// changed in the parts sluice renders (config, resource annotation, owner).
// Annotations and labels that others add are kept.
func (r *VFNetworkReconciler) ensureNAD(ctx context.Context, vfn *sluicev1.VFNetwork, key types.NamespacedName, config string) error {
	nad := &nadv1.NetworkAttachmentDefinition{}
	err := r.Client.Get(ctx, key, nad)
	switch {
	case apierrors.IsNotFound(err):
		nad = &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}
		if err := r.render(vfn, nad, config); err != nil {
			return err
		}
		if err := r.Client.Create(ctx, nad); err != nil {
			return fmt.Errorf("create NetworkAttachmentDefinition %s: %w", key, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get NetworkAttachmentDefinition %s: %w", key, err)
	}
	if !managedBy(vfn, nad) {
		return errNotManaged
	}
	before := nad.DeepCopy()
	if err := r.render(vfn, nad, config); err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(before, nad) {
		return nil
	}
	if err := r.Client.Update(ctx, nad); err != nil {
		return fmt.Errorf("update NetworkAttachmentDefinition %s: %w", key, err)
	}
	return nil
}

// render writes what sluice owns of a NetworkAttachmentDefinition.
func (r *VFNetworkReconciler) render(vfn *sluicev1.VFNetwork, nad *nadv1.NetworkAttachmentDefinition, config string) error {
	if nad.Annotations == nil {
		nad.Annotations = map[string]string{}
	}
	nad.Annotations[NADResourceAnnotation] = r.resource(vfn)
	nad.Annotations[VFNetworkAnnotation] = vfn.Namespace + "/" + vfn.Name
	if nad.Labels == nil {
		nad.Labels = map[string]string{}
	}
	nad.Labels[managedByLabel] = managedByValue
	nad.Spec.Config = config
	if nad.Namespace == vfn.Namespace {
		if err := controllerutil.SetControllerReference(vfn, nad, r.Scheme); err != nil {
			return fmt.Errorf("own NetworkAttachmentDefinition %s/%s: %w", nad.Namespace, nad.Name, err)
		}
	}
	return nil
}

// deleteNAD deletes a NetworkAttachmentDefinition if this VFNetwork made it.
func (r *VFNetworkReconciler) deleteNAD(ctx context.Context, vfn *sluicev1.VFNetwork, key types.NamespacedName) error {
	nad := &nadv1.NetworkAttachmentDefinition{}
	if err := r.Client.Get(ctx, key, nad); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !managedBy(vfn, nad) {
		return nil
	}
	if err := r.Client.Delete(ctx, nad, client.Preconditions{UID: &nad.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete NetworkAttachmentDefinition %s: %w", key, err)
	}
	return nil
}

// managedBy reports whether the VFNetwork rendered the NAD: by annotation,
// or, when someone removed it, by owner reference.
func managedBy(vfn *sluicev1.VFNetwork, nad *nadv1.NetworkAttachmentDefinition) bool {
	if nad.Annotations[VFNetworkAnnotation] == vfn.Namespace+"/"+vfn.Name {
		return true
	}
	owner := metav1.GetControllerOf(nad)
	return owner != nil && owner.UID == vfn.UID
}

func nadKey(vfn *sluicev1.VFNetwork) types.NamespacedName {
	return types.NamespacedName{Namespace: tenancy.NetworkNamespace(vfn), Name: vfn.Name}
}

func parseKey(s string) types.NamespacedName {
	ns, name, _ := strings.Cut(s, "/")
	return types.NamespacedName{Namespace: ns, Name: name}
}

// SetupWithManager registers the reconciler. A NetworkAttachmentDefinition
// event goes to the VFNetwork named in its annotation or owning it, so hand
// edits and deletions are reverted in every namespace.
func (r *VFNetworkReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&sluicev1.VFNetwork{}).
		Watches(&nadv1.NetworkAttachmentDefinition{}, handler.EnqueueRequestsFromMapFunc(nadOwner)).
		Watches(&sluicev1.NetworkNodePolicy{}, handler.EnqueueRequestsFromMapFunc(r.networksOfPolicy)).
		Complete(r)
}

// poolKind is what the applied (not dry-run) NetworkNodePolicies of a
// resourceName make of its pool, for the VFNetworks of that pool.
type poolKind struct {
	// softRoCE: attachments create the pod's soft-RoCE device.
	softRoCE bool
	// dra: the pool is allocated through DRA, so no pod can ask for its
	// device-plugin resource and the VFNetwork renders no
	// NetworkAttachmentDefinition.
	dra bool
}

// poolOf reads the pool of resource from the NetworkNodePolicies.
//
// The pool counts as DRA only when every applied policy of it asks for
// DRA. Policies that disagree on allocation conflict on each node they
// both select: the merge applies the one that takes precedence there, and
// the other's Conflict condition says why (no need to say it here too).
// So the device plugin may still serve the pool on some nodes: the
// NetworkAttachmentDefinition stays for those, and a DRA claim, which
// never reads it, is not hindered by it.
func (r *VFNetworkReconciler) poolOf(ctx context.Context, resource string) (poolKind, error) {
	var l sluicev1.NetworkNodePolicyList
	if err := r.Client.List(ctx, &l); err != nil {
		return poolKind{}, fmt.Errorf("list NetworkNodePolicies: %w", err)
	}
	var k poolKind
	applied, dra := 0, 0
	for i := range l.Items {
		s := &l.Items[i].Spec
		if s.ResourceName != resource || s.DryRun || l.Items[i].DeletionTimestamp != nil {
			continue
		}
		applied++
		if s.DRA() {
			dra++
		}
		if s.RDMA != nil && s.RDMA.Enabled && s.RDMA.Provider == sluicev1.RDMAProviderSoftRoCE {
			k.softRoCE = true
		}
	}
	k.dra = applied > 0 && dra == applied
	return k, nil
}

// networksOfPolicy maps a NetworkNodePolicy to the VFNetworks of its pool,
// whose configuration depends on the pool's RDMA provider, and whether they
// render at all on its allocation.
func (r *VFNetworkReconciler) networksOfPolicy(ctx context.Context, obj client.Object) []reconcile.Request {
	p, ok := obj.(*sluicev1.NetworkNodePolicy)
	if !ok {
		return nil
	}
	var l sluicev1.VFNetworkList
	if err := r.Client.List(ctx, &l); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range l.Items {
		if l.Items[i].Spec.ResourceName == p.Spec.ResourceName {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&l.Items[i])})
		}
	}
	return out
}

func nadOwner(_ context.Context, obj client.Object) []reconcile.Request {
	if v, ok := obj.GetAnnotations()[VFNetworkAnnotation]; ok && strings.Contains(v, "/") {
		return []reconcile.Request{{NamespacedName: parseKey(v)}}
	}
	if o := metav1.GetControllerOf(obj); o != nil && o.Kind == "VFNetwork" && strings.HasPrefix(o.APIVersion, sluicev1.Group+"/") {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: o.Name}}}
	}
	return nil
}
