package envtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers"
)

// TestResourceAPIServed: the control plane the tests (and Kubernetes 1.37
// clusters) run serves resource.k8s.io/v1 with DRA on by default.
func TestResourceAPIServed(t *testing.T) {
	for _, kind := range []string{"DeviceClass", "ResourceSlice", "ResourceClaim"} {
		gvk := resourcev1.SchemeGroupVersion.WithKind(kind)
		if _, err := env.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			t.Errorf("%s is not served: %v", gvk, err)
		}
	}
}

func draPolicy(name, pool string) *sluicev1.NetworkNodePolicy {
	p := validPolicy(name)
	p.Spec.ResourceName = pool
	p.Spec.Allocation = sluicev1.AllocationDRA
	return p
}

// waitDeviceClass waits until the DeviceClass meets cond (nil: is gone).
func waitDeviceClass(t *testing.T, name, what string, cond func(*resourcev1.DeviceClass) bool) *resourcev1.DeviceClass {
	t.Helper()
	var dc *resourcev1.DeviceClass
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		cur := &resourcev1.DeviceClass{}
		err := env.Client.Get(ctx, client.ObjectKey{Name: name}, cur)
		if apierrors.IsNotFound(err) {
			return cond == nil, nil
		}
		if err != nil {
			return false, err
		}
		dc = cur
		return cond != nil && cond(cur), nil
	})
	if err != nil {
		t.Fatalf("DeviceClass %s: %s: %v (last seen %+v)", name, what, err, dc)
	}
	return dc
}

// editPolicy changes a policy's spec, retrying on the operator's status
// writes.
func editPolicy(t *testing.T, name string, edit func(*sluicev1.NetworkNodePolicySpec)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := getPolicy(name)
		if err != nil {
			return err
		}
		edit(&p.Spec)
		return env.Client.Update(context.Background(), p)
	})
	if err != nil {
		t.Fatalf("edit policy %s: %v", name, err)
	}
}

func selectorOf(dc *resourcev1.DeviceClass) string {
	if len(dc.Spec.Selectors) != 1 || dc.Spec.Selectors[0].CEL == nil {
		return ""
	}
	return dc.Spec.Selectors[0].CEL.Expression
}

// TestOperatorDeviceClassPerDRAPool: a DRA policy gets its pool's
// DeviceClass, selecting the driver's healthy devices of that pool; a
// second policy of the pool shares it; a device-plugin policy gets none;
// an edit is undone; when the last policy of the pool goes (or stops
// asking for DRA) the class goes.
func TestOperatorDeviceClassPerDRAPool(t *testing.T) {
	ctx := context.Background()
	startOperator(t)
	pool := uniqueName(t, "rail")
	class := pool + ".sluice.dev"
	a, b := draPolicy(uniqueName(t, "a"), pool), draPolicy(uniqueName(t, "b"), pool)
	b.Spec.NicSelector.PFNames = []sluicev1.PFName{"ens1f1"}
	dp := validPolicy(uniqueName(t, "dp"))
	for _, p := range []*sluicev1.NetworkNodePolicy{a, b, dp} {
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
	}

	dc := waitDeviceClass(t, class, "rendered for both policies", func(dc *resourcev1.DeviceClass) bool { return len(dc.OwnerReferences) == 2 })
	want := fmt.Sprintf(`device.driver == "sluice.dev" && device.attributes["sluice.dev"].pool == %q && device.attributes["sluice.dev"].healthy`, pool)
	if got := selectorOf(dc); got != want {
		t.Errorf("selector = %s\nwant       %s", got, want)
	}
	if dc.Labels["app.kubernetes.io/managed-by"] != "sluice" || dc.Labels[controllers.DRAPoolLabel] != pool {
		t.Errorf("labels = %v", dc.Labels)
	}
	for _, o := range dc.OwnerReferences {
		if o.Kind != "NetworkNodePolicy" || (o.UID != a.UID && o.UID != b.UID) {
			t.Errorf("owner %+v is not one of the pool's policies", o)
		}
	}
	var all resourcev1.DeviceClassList
	if err := env.Client.List(ctx, &all); err != nil {
		t.Fatal(err)
	}
	for _, c := range all.Items {
		if strings.HasPrefix(c.Name, dp.Spec.ResourceName+".") {
			t.Errorf("device-plugin policy got DeviceClass %s", c.Name)
		}
	}

	// A hand edit is undone.
	dc.Spec.Selectors[0].CEL.Expression = "true"
	if err := env.Client.Update(ctx, dc); err != nil {
		t.Fatal(err)
	}
	waitDeviceClass(t, class, "edit undone", func(dc *resourcev1.DeviceClass) bool { return selectorOf(dc) == want })

	// A deletes: b still feeds the pool.
	if err := env.Client.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitDeviceClass(t, class, "owned by b alone", func(dc *resourcev1.DeviceClass) bool {
		return len(dc.OwnerReferences) == 1 && dc.OwnerReferences[0].UID == b.UID
	})
	// b moves to the device plugin: the pool has no DRA policy left.
	editPolicy(t, b.Name, func(s *sluicev1.NetworkNodePolicySpec) { s.Allocation = sluicev1.AllocationDevicePlugin })
	waitDeviceClass(t, class, "deleted", nil)
	// And back.
	editPolicy(t, b.Name, func(s *sluicev1.NetworkNodePolicySpec) { s.Allocation = sluicev1.AllocationDRA })
	waitDeviceClass(t, class, "rendered again", func(dc *resourcev1.DeviceClass) bool { return selectorOf(dc) == want })
	if err := env.Client.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	waitDeviceClass(t, class, "deleted with the last policy", nil)
}

// TestOperatorDeviceClassRenamedPool: renaming a DRA pool renders the new
// class and deletes the old one; a foreign DeviceClass of a pool's name is
// left alone.
func TestOperatorDeviceClassRenamedPool(t *testing.T) {
	ctx := context.Background()
	startOperator(t)
	foreignPool := uniqueName(t, "foreign")
	foreign := &resourcev1.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: foreignPool + ".sluice.dev"},
		Spec:       resourcev1.DeviceClassSpec{Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: "true"}}}},
	}
	if err := env.Client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, foreign) })

	old := uniqueName(t, "old")
	p := draPolicy(uniqueName(t, "p"), old)
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
	waitDeviceClass(t, old+".sluice.dev", "rendered", func(*resourcev1.DeviceClass) bool { return true })

	renamed := uniqueName(t, "new")
	editPolicy(t, p.Name, func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = renamed })
	waitDeviceClass(t, renamed+".sluice.dev", "rendered under the new name", func(*resourcev1.DeviceClass) bool { return true })
	waitDeviceClass(t, old+".sluice.dev", "old name deleted", nil)

	// A policy for the foreign class's pool: the class is not taken over.
	q := draPolicy(uniqueName(t, "q"), foreignPool)
	if err := env.Client.Create(ctx, q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, q) })
	time.Sleep(time.Second) // give the operator the chance to do wrong
	cur := waitDeviceClass(t, foreign.Name, "still there", func(*resourcev1.DeviceClass) bool { return true })
	if selectorOf(cur) != "true" || len(cur.OwnerReferences) != 0 || cur.Labels[controllers.DRAPoolLabel] != "" {
		t.Errorf("foreign DeviceClass was changed: %+v", cur)
	}
}

// TestOperatorRendersDRAPoolsApart: on a node, a DRA policy's pool is in
// the NodeNetworkState's draPools, a device-plugin policy's in pools; and
// a device-plugin policy for the same resourceName conflicts.
func TestOperatorRendersDRAPoolsApart(t *testing.T) {
	startOperator(t)
	label := uniqueName(t, "l")
	node := uniqueName(t, "n")
	createNode(t, node, map[string]string{"sluice.dev/test": label})
	agentReports(t, node, twoPFs())
	dp := testPolicy(uniqueName(t, "a"), label, 10, "ens1f0#0-3")
	draP := testPolicy(uniqueName(t, "b"), label, 10, "ens1f0#4-7", "ens1f1")
	draP.Spec.Allocation = sluicev1.AllocationDRA
	draP.Spec.ResourceName = uniqueName(t, "rail")
	createPolicy(t, dp)
	createPolicy(t, draP)

	eventually(t, "NodeNetworkState "+node+" rendered", func() error {
		nns, err := getNNS(node)
		if err != nil {
			return err
		}
		if len(nns.Spec.Pools) != 1 || nns.Spec.Pools[0].ResourceName != dp.Spec.ResourceName {
			return errorf("pools = %+v, want only %s", nns.Spec.Pools, dp.Spec.ResourceName)
		}
		if len(nns.Spec.DRAPools) != 1 || nns.Spec.DRAPools[0].ResourceName != draP.Spec.ResourceName ||
			!slices.Equal(nns.Spec.DRAPools[0].Selectors.PFNames, []string{"ens1f0#4-7", "ens1f1#0-7"}) {
			return errorf("draPools = %+v, want %s over ens1f0#4-7 and ens1f1#0-7", nns.Spec.DRAPools, draP.Spec.ResourceName)
		}
		for _, in := range nns.Spec.Interfaces {
			for _, g := range in.VFGroups {
				if g.DRA != (g.Policy == draP.Name) {
					return errorf("%s group of %s: dra = %t", in.Name, g.Policy, g.DRA)
				}
			}
		}
		return nil
	})

	// A lower-priority device-plugin policy feeding the DRA pool conflicts.
	late := testPolicy(uniqueName(t, "c"), label, 20, "ens1f1")
	late.Spec.ResourceName = draP.Spec.ResourceName
	late.Spec.NumVfs = 16
	late.Spec.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#8-9"}
	createPolicy(t, late)
	eventually(t, "policy "+late.Name+" reports the allocation conflict", func() error {
		p, err := getPolicy(late.Name)
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, sluicev1.ConditionConflict)
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "allocation DRA") {
			return errorf("Conflict condition = %+v", c)
		}
		return nil
	})
}
