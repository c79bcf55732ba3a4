package envtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers"
	"github.com/sluice-net/sluice/test/testenv"
)

// installTenantPolicy installs the admission policy and binding that
// config/default ships, with the operator's service account (their
// parameter), and waits until the API server enforces them; they are
// removed, and no longer enforced, when the test ends.
func installTenantPolicy(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}})
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sluice-operator", Namespace: operatorNamespace}})
	var objs []client.Object
	for _, u := range decodeAll(t, kustomizeBuild(t, filepath.Join(testenv.RepoRoot(), "config", "default"))) {
		var obj client.Object
		switch u.GetKind() {
		case "ValidatingAdmissionPolicy":
			obj = &admissionv1.ValidatingAdmissionPolicy{}
		case "ValidatingAdmissionPolicyBinding":
			obj = &admissionv1.ValidatingAdmissionPolicyBinding{}
		default:
			continue
		}
		if u.GetName() != "sluice-vfnetwork-tenants" {
			continue // the node agents' policy
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
	}
	if len(objs) != 2 {
		t.Fatalf("config/default has %d admission policies and bindings, want the VFNetwork tenants' policy and its binding", len(objs))
	}
	for _, o := range objs {
		upsert(t, o)
	}
	probeNS := env.Namespace(t)
	probe := func() error {
		n := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: probeNS}, Spec: sluicev1.VFNetworkSpec{ResourceName: "pool", Trust: sluicev1.On}}
		return env.Client.Create(ctx, n, client.DryRunAll)
	}
	eventually(t, "the tenant policy enforced", func() error {
		if err := probe(); err == nil || !strings.Contains(err.Error(), "sluice-vfnetwork-tenants") {
			return errorf("a trusted tenant VFNetwork: %v", err)
		}
		return nil
	})
	t.Cleanup(func() {
		for _, o := range objs {
			if err := env.Client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("remove %s: %v", o.GetName(), err)
			}
		}
		if err := eventuallyFor(waitTimeout, probe); err != nil {
			t.Errorf("the tenant policy is still enforced after its removal: %v", err)
		}
	})
}

// A tenant, whose service account may manage VFNetworks in its own
// namespace only, gets a clear rejection from the admission policy for
// every privileged option, and the same words the operator would put in
// the VFNetwork's Ready condition. A platform VFNetwork in the operator's
// namespace is admitted with all of them.
func TestTenantVFNetworkAdmission(t *testing.T) {
	ctx := context.Background()
	ns, other := env.Namespace(t), env.Namespace(t)
	tenant := tenantClient(t, ns)

	// Written before the policy, as a cluster upgraded to it has.
	legacy := &sluicev1.VFNetwork{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: ns, Finalizers: []string{controllers.NADFinalizer}},
		Spec:       sluicev1.VFNetworkSpec{ResourceName: "pool", NetworkNamespace: other, Trust: sluicev1.On},
	}
	if err := env.Client.Create(ctx, legacy); err != nil {
		t.Fatal(err)
	}

	installTenantPolicy(t)

	ok := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "ok", Namespace: ns}, Spec: tenantSpec(ns)}
	if err := tenant.Create(ctx, ok); err != nil {
		t.Fatalf("a VFNetwork with every option open to tenants was rejected: %v", err)
	}
	for i, o := range privilegedOptions(other) {
		t.Run(o.name, func(t *testing.T) {
			n := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Namespace: ns}, Spec: tenantSpec(ns)}
			o.set(&n.Spec)
			err := tenant.Create(ctx, n)
			if err == nil {
				t.Fatal("admitted")
			}
			msg := err.Error()
			for _, f := range o.fields {
				if !strings.Contains(msg, f) {
					t.Errorf("rejection does not say %q: %s", f, msg)
				}
			}
			// The operator refuses the same object with the same words.
			if want := controllers.TenantRefusal(n, operatorNamespace); want == "" || !strings.Contains(msg, want) {
				t.Errorf("rejection\n  %s\ndoes not carry the operator's refusal\n  %s", msg, want)
			}
			if !apierrors.IsForbidden(err) {
				t.Errorf("rejection is not Forbidden: %v", err)
			}

			// Nor can an allowed VFNetwork be changed into it.
			cur, err := getVFNetwork(ns, "ok")
			if err != nil {
				t.Fatal(err)
			}
			o.set(&cur.Spec)
			if err := tenant.Update(ctx, cur); err == nil || !strings.Contains(err.Error(), o.fields[0]) {
				t.Errorf("update to %s: %v", o.name, err)
			}
		})
	}

	// Every option at once: every field is named in one rejection.
	all := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: ns}, Spec: platformSpec(other)}
	err := tenant.Create(ctx, all)
	for _, o := range privilegedOptions(other) {
		if fix := o.fields[len(o.fields)-1]; err == nil || !strings.Contains(err.Error(), fix) {
			t.Errorf("rejection of every option at once does not say %q: %v", fix, err)
		}
	}
	// RBAC keeps the tenant out of the operator's namespace.
	err = tenant.Create(ctx, &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "in-platform", Namespace: operatorNamespace}, Spec: platformSpec(ns)})
	if !apierrors.IsForbidden(err) {
		t.Errorf("tenant created a VFNetwork in %s: %v", operatorNamespace, err)
	}

	// A platform VFNetwork may ask for all of it.
	createPlatformVFNetwork(t, uniqueName(t, "platform"), platformSpec(other))

	// The VFNetwork written before the policy can still be finalized and
	// deleted; its spec changes only to what a tenant may ask for.
	cur, err := getVFNetwork(ns, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.MTU = 1500
	if err := env.Client.Update(ctx, cur); err == nil || !strings.Contains(err.Error(), `spec.trust "on"`) {
		t.Errorf("spec update of a VFNetwork written before the policy: %v", err)
	}
	if cur, err = getVFNetwork(ns, "legacy"); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if cur, err = getVFNetwork(ns, "legacy"); err != nil {
		t.Fatal(err)
	}
	cur.Finalizers = nil
	if err := env.Client.Update(ctx, cur); err != nil {
		t.Errorf("removing the finalizer of a VFNetwork written before the policy: %v", err)
	}
}
