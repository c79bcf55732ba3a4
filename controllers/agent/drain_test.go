package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host/hosttest"
)

// drainHarness is an agent whose node has 4 netdevice VFs on pfA and 2 on
// pfB, applied, and pods a (using pfA's VF 1) and b (using pfB's VF 0).
func drainHarness(t *testing.T) (*harness, PodRef, PodRef) {
	t.Helper()
	h := twoPFHarness(t)
	a := h.pod("a", map[string]string{"app": "a"})
	b := h.pod("b", map[string]string{"app": "b"})
	h.usage.use(h.node.VFAddress(pfA, 1), a)
	h.usage.use(h.node.VFAddress(pfB, 0), b)
	return h, a, b
}

// twoPFHarness is an agent on a node with pfA and pfB, synced to
// twoPFs(4, nil); each of with changes the harness before the agent
// starts.
func twoPFHarness(t *testing.T, with ...func(*harness)) *harness {
	t.Helper()
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	h.node.AddPF(hosttest.E810(pfB, "ens1f1", 0))
	h.node.AddDriver("vfio-pci")
	for _, f := range with {
		f(h)
	}
	h.start()
	h.waitFor("discovery", func(n *sluicev1.NodeNetworkState) error {
		if len(n.Status.Interfaces) != 2 {
			return fmt.Errorf("%d interfaces", len(n.Status.Interfaces))
		}
		return nil
	})
	h.synced(sluicev1.SyncSucceeded, h.setSpec(twoPFs(4, nil)))
	return h
}

// twoPFs is n netdevice VFs on pfA (plus extra groups) and 2 on pfB.
func twoPFs(n int32, extra []sluicev1.VFGroup) func(*sluicev1.NodeNetworkStateSpec) {
	return func(s *sluicev1.NodeNetworkStateSpec) {
		groups := append([]sluicev1.VFGroup{{Policy: "p1", ResourceName: "net1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice}}, extra...)
		if len(extra) == 0 {
			groups[0].VFRange = sluicev1.VFRange(fmt.Sprintf("0-%d", n-1))
		}
		s.Interfaces = []sluicev1.InterfaceSpec{
			{PCIAddress: pfA, Name: "ens1f0", NumVfs: n, VFGroups: groups},
			{PCIAddress: pfB, Name: "ens1f1", NumVfs: 2, VFGroups: []sluicev1.VFGroup{{Policy: "p1", ResourceName: "net1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice}}},
		}
	}
}

// TestAgentDrainEvictsOnlyAffectedPods: a VF count change on pfA evicts
// exactly the pod using one of pfA's VFs, then applies and reports Done.
func TestAgentDrainEvictsOnlyAffectedPods(t *testing.T) {
	h, a, b := drainHarness(t)
	gen := h.setSpec(twoPFs(6, nil))
	n := h.synced(sluicev1.SyncSucceeded, gen)
	if h.podExists(a.Name) {
		t.Errorf("pod %s using a VF of the changed PF was not evicted", a)
	}
	if !h.podExists(b.Name) {
		t.Errorf("pod %s on the other PF was evicted", b)
	}
	if got := h.numVFs(pfA); got != 6 {
		t.Errorf("pfA has %d VFs, want 6", got)
	}
	d := n.Status.Drain
	if d == nil || d.State != sluicev1.DrainDone || !slices.Equal(d.Pods, []string{a.String()}) {
		t.Errorf("drain = %+v, want Done with exactly %s", d, a)
	}
	h.noSlotHeld()
	// The Draining event, about the NodeNetworkState (in default: it is
	// cluster-scoped), passed the agent's RBAC and admission policy.
	h.eventually("a Draining event", func() error {
		var events eventsv1.EventList
		if err := h.env.Client.List(context.Background(), &events, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == "NodeNetworkState" && e.Regarding.Name == h.name && e.Reason == "Draining" {
				return nil
			}
		}
		return fmt.Errorf("none among %d events in %s", len(events.Items), metav1.NamespaceDefault)
	})
}

// TestAgentNoDrainForUnusedVFs: rebinding VFs nobody uses on a PF with a
// VF in use evicts nobody.
func TestAgentNoDrainForUnusedVFs(t *testing.T) {
	h, a, _ := drainHarness(t)
	gen := h.setSpec(twoPFs(4, []sluicev1.VFGroup{{Policy: "dpdk", ResourceName: "dpdk", VFRange: "2-3", DeviceType: sluicev1.DeviceTypeVfioPci}}))
	n := h.synced(sluicev1.SyncSucceeded, gen)
	if !h.podExists(a.Name) {
		t.Errorf("pod %s was evicted for a change to VFs it does not use", a)
	}
	for _, i := range []int{2, 3} {
		if d := h.node.Driver(h.node.VFAddress(pfA, i)); d != "vfio-pci" {
			t.Errorf("VF %d on %q, want vfio-pci", i, d)
		}
	}
	if d := h.node.Driver(h.node.VFAddress(pfA, 1)); d != "iavf" {
		t.Errorf("VF 1 (in use) on %q, want iavf", d)
	}
	if d := n.Status.Drain; d == nil || d.State != sluicev1.DrainNone {
		t.Errorf("drain = %+v, want None", d)
	}
}

// TestAgentDrainEvictsOnlyThisNodesPod: the VF's record names pod a
// without a UID (a record of an older sluice-cni), and the pod called a now
// runs on another node (a StatefulSet's pod created again there). It is not
// the VF's user: the change applies without a drain, and that pod stays.
func TestAgentDrainEvictsOnlyThisNodesPod(t *testing.T) {
	h, _, _ := drainHarness(t)
	ctx := context.Background()
	moved := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "web-0"},
		Spec:       corev1.PodSpec{NodeName: "another-node", Containers: []corev1.Container{{Name: "c", Image: "registry.example/app:1"}}},
	}
	if err := h.env.Client.Create(ctx, moved); err != nil {
		t.Fatal(err)
	}
	moved.Status.Phase = corev1.PodRunning
	if err := h.env.Client.Status().Update(ctx, moved); err != nil {
		t.Fatal(err)
	}
	// The record of pfA's VF 2: pod web-0, no UID.
	h.usage.use(h.node.VFAddress(pfA, 2), PodRef{Namespace: h.ns, Name: "web-0"})
	// pfA's VF 1 is pod a's (drainHarness): move it out of the change by
	// rebinding only VFs 2-3, which web-0's record names.
	gen := h.setSpec(twoPFs(4, []sluicev1.VFGroup{{Policy: "dpdk", ResourceName: "dpdk", VFRange: "2-3", DeviceType: sluicev1.DeviceTypeVfioPci}}))
	n := h.synced(sluicev1.SyncSucceeded, gen)
	if !h.podExists("web-0") {
		t.Error("the agent evicted web-0, a pod of that name on another node")
	}
	if d := n.Status.Drain; d == nil || d.State != sluicev1.DrainNone {
		t.Errorf("drain = %+v, want None: no pod of this node uses VFs 2-3", d)
	}
	if d := h.node.Driver(h.node.VFAddress(pfA, 2)); d != "vfio-pci" {
		t.Errorf("VF 2 on %q, want vfio-pci", d)
	}
}

// TestAgentDrainRespectsPDB: an eviction a PodDisruptionBudget refuses is
// reported as Draining with the reason and retried until it goes through.
func TestAgentDrainRespectsPDB(t *testing.T) {
	h, a, _ := drainHarness(t)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "keep-a"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
		},
	}
	if err := h.env.Client.Create(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	gen := h.setSpec(twoPFs(6, nil))
	n := h.waitFor("Draining, blocked by the PDB", func(n *sluicev1.NodeNetworkState) error {
		d := n.Status.Drain
		if n.Status.ObservedGeneration != gen || d == nil || d.State != sluicev1.DrainDraining || !strings.Contains(d.Reason, "eviction refused") {
			return fmt.Errorf("drain %+v", d)
		}
		return nil
	})
	for _, want := range []string{a.String(), "disruption budget", "retrying every", "numVfs 4 -> 6 destroys every VF of ens1f0"} {
		if !strings.Contains(n.Status.Drain.Reason, want) {
			t.Errorf("drain reason %q lacks %q", n.Status.Drain.Reason, want)
		}
	}
	if n.Status.SyncStatus != sluicev1.SyncInProgress {
		t.Errorf("syncStatus %s while draining, want InProgress", n.Status.SyncStatus)
	}
	if !h.podExists(a.Name) || h.numVFs(pfA) != 4 {
		t.Fatalf("the PDB was not respected: pod exists %v, %d VFs", h.podExists(a.Name), h.numVFs(pfA))
	}
	if g := h.gate(); slices.Contains(g.Ready, pfA) || !slices.Contains(g.Ready, pfB) {
		t.Errorf("gate %v while draining pfA: want pfA closed, pfB open", g.Ready)
	}
	// Still refused after several retries.
	time.Sleep(1 * time.Second)
	if !h.podExists(a.Name) {
		t.Fatal("pod evicted despite the PDB")
	}
	if err := h.env.Client.Delete(context.Background(), pdb); err != nil {
		t.Fatal(err)
	}
	h.synced(sluicev1.SyncSucceeded, gen)
	if h.podExists(a.Name) || h.numVFs(pfA) != 6 {
		t.Errorf("after the PDB went: pod exists %v, %d VFs", h.podExists(a.Name), h.numVFs(pfA))
	}
}

// TestAgentWaitsForDrainSlot: with max-unavailable 1 and another node
// holding the slot, the agent reports Waiting and evicts nobody; once the
// slot is free it drains, applies and releases it.
func TestAgentWaitsForDrainSlot(t *testing.T) {
	h, a, _ := drainHarness(t)
	slot := &coordinationv1.Lease{}
	if err := h.env.Client.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: "sluice-drain-0"}, slot); err != nil {
		t.Fatal(err)
	}
	slot.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr.To("other-node"), LeaseDurationSeconds: ptr.To(int32(3600)),
		RenewTime: &metav1.MicroTime{Time: time.Now()}, AcquireTime: &metav1.MicroTime{Time: time.Now()}}
	if err := h.env.Client.Update(context.Background(), slot); err != nil {
		t.Fatal(err)
	}
	gen := h.setSpec(twoPFs(6, nil))
	n := h.drainWaiting(gen)
	if !strings.Contains(n.Status.Drain.Reason, "other-node") || !slices.Equal(n.Status.Drain.Pods, []string{a.String()}) {
		t.Errorf("drain = %+v, want the holder named and %s listed", n.Status.Drain, a)
	}
	time.Sleep(500 * time.Millisecond)
	if !h.podExists(a.Name) || h.numVFs(pfA) != 4 {
		t.Fatal("evicted or applied without a drain slot")
	}

	if err := h.env.Client.Get(context.Background(), client.ObjectKeyFromObject(slot), slot); err != nil {
		t.Fatal(err)
	}
	slot.Spec.HolderIdentity = nil
	if err := h.env.Client.Update(context.Background(), slot); err != nil {
		t.Fatal(err)
	}
	n = h.synced(sluicev1.SyncSucceeded, gen)
	if h.podExists(a.Name) || h.numVFs(pfA) != 6 || n.Status.Drain.State != sluicev1.DrainDone {
		t.Errorf("after the slot freed: pod exists %v, %d VFs, drain %+v", h.podExists(a.Name), h.numVFs(pfA), n.Status.Drain)
	}
	h.noSlotHeld()
}

// TestAgentWaitsForMissingDrainSlot: the agent does not create drain
// slots (the operator does); without one it waits, saying so, and
// drains once the slot is there.
func TestAgentWaitsForMissingDrainSlot(t *testing.T) {
	h, a, _ := drainHarness(t)
	slot := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "sluice-drain-0"}}
	if err := h.env.Client.Delete(context.Background(), slot); err != nil {
		t.Fatal(err)
	}
	gen := h.setSpec(twoPFs(6, nil))
	n := h.drainWaiting(gen)
	if want := "sluice-drain-0 does not exist in " + h.ns + " (the operator creates the drain slots"; !strings.Contains(n.Status.Drain.Reason, want) {
		t.Errorf("drain reason %q, want it to say %q", n.Status.Drain.Reason, want)
	}
	if !h.podExists(a.Name) {
		t.Fatal("evicted without a drain slot")
	}
	createDrainSlots(t, h.env, h.ns, 1)
	n = h.synced(sluicev1.SyncSucceeded, gen)
	if h.podExists(a.Name) || h.numVFs(pfA) != 6 || n.Status.Drain.State != sluicev1.DrainDone {
		t.Errorf("once the slot was there: pod exists %v, %d VFs, drain %+v", h.podExists(a.Name), h.numVFs(pfA), n.Status.Drain)
	}
	h.noSlotHeld()
}

// noSlotHeld checks this node released its drain slot.
func (h *harness) noSlotHeld() {
	h.t.Helper()
	var leases coordinationv1.LeaseList
	if err := h.env.Client.List(context.Background(), &leases, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	for _, l := range leases.Items {
		if ptr.Deref(l.Spec.HolderIdentity, "") == h.name {
			h.t.Errorf("drain slot %s still held after the drain", l.Name)
		}
	}
}

// TestAgentDryRun: spec.dryRun is reported (drain needed, the pods, the
// changes) and nothing is applied nor evicted.
func TestAgentDryRun(t *testing.T) {
	h, a, b := drainHarness(t)
	var dry sluicev1.NodeNetworkStateSpec
	twoPFs(6, nil)(&dry)
	gen := h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		s.DryRun = &sluicev1.DryRunSpec{Policies: []string{"p1-bigger"}, Interfaces: dry.Interfaces}
	})
	n := h.synced(sluicev1.SyncSucceeded, gen)
	r := n.Status.DryRun
	if r == nil {
		t.Fatal("no status.dryRun")
	}
	if !slices.Equal(r.Policies, []string{"p1-bigger"}) || !r.DrainRequired || !slices.Equal(r.PodsToEvict, []string{a.String()}) {
		t.Errorf("dryRun = %+v, want p1-bigger, drain, %s", r, a)
	}
	if len(r.Changes) != 1 || !strings.Contains(r.Changes[0], "ens1f0 (0000:3b:00.0): numVfs 4 -> 6") || !strings.Contains(r.Changes[0], "drain: evicts "+a.String()) {
		t.Errorf("dryRun changes = %q", r.Changes)
	}
	time.Sleep(500 * time.Millisecond)
	if !h.podExists(a.Name) || !h.podExists(b.Name) || h.numVFs(pfA) != 4 {
		t.Errorf("dry run changed something: pods %v %v, %d VFs", h.podExists(a.Name), h.podExists(b.Name), h.numVFs(pfA))
	}
	gen = h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) { s.DryRun = nil })
	if n := h.synced(sluicev1.SyncSucceeded, gen); n.Status.DryRun != nil {
		t.Errorf("dryRun %+v left after spec.dryRun went", n.Status.DryRun)
	}
}

// TestAgentTakesTheCNIsLock: a CNI ADD holds VF 1's lock when a VF count
// change of its PF is planned with no pod on the PF (the plan read the
// users before the ADD wrote its record). The agent waits for the lock,
// reads the users again under it, finds the pod the ADD attached, and
// drains it instead of destroying the VF under it.
func TestAgentTakesTheCNIsLock(t *testing.T) {
	h := twoPFHarness(t)
	a := h.pod("a", map[string]string{"app": "a"})
	vf := h.node.VFAddress(pfA, 1)
	lock, err := nodefiles.LockVF(h.opts.LockDir, vf, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	gen := h.setSpec(twoPFs(6, nil))
	h.eventually("the agent at the change: pfA's gate closed, or its VFs changed", func() error {
		if slices.Contains(h.gate().Ready, pfA) && h.numVFs(pfA) == 4 {
			return fmt.Errorf("gate %v, %d VFs", h.gate().Ready, h.numVFs(pfA))
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	if n := h.numVFs(pfA); n != 4 {
		lock.Unlock()
		t.Fatalf("pfA has %d VFs: the agent changed them while a CNI command held VF 1's lock", n)
	}
	h.usage.use(vf, a) // the ADD's record
	lock.Unlock()
	h.synced(sluicev1.SyncSucceeded, gen)
	if h.podExists(a.Name) {
		t.Errorf("pod %s, attached to VF 1 under the lock, was not drained before its VF was destroyed", a)
	}
	if n := h.numVFs(pfA); n != 6 {
		t.Errorf("pfA has %d VFs after the drain, want 6", n)
	}
}

// TestAgentTrustChangeUnderAPodNoDrain: trust is a PF-side setting, so a
// change of it goes on under the pod using the VF, lock or not: the pods
// read again under the VF lock are the ones the plan knew of.
func TestAgentTrustChangeUnderAPodNoDrain(t *testing.T) {
	h, a, _ := drainHarness(t) // a uses pfA's VF 1
	gen := h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		twoPFs(4, nil)(s)
		s.Interfaces[0].VFGroups[0].Trust = ptrTo(true)
	})
	h.synced(sluicev1.SyncSucceeded, gen)
	if !h.podExists(a.Name) {
		t.Errorf("pod %s was drained for a trust change", a)
	}
	if err := h.trustOn(pfA, 4); err != nil {
		t.Errorf("pfA after the trust change: %v", err)
	}
}

// drainWaiting waits for the agent to report, at generation gen, a drain
// waiting for a slot.
func (h *harness) drainWaiting(gen int64) *sluicev1.NodeNetworkState {
	h.t.Helper()
	return h.waitFor("Waiting for a drain slot", func(n *sluicev1.NodeNetworkState) error {
		if d := n.Status.Drain; n.Status.ObservedGeneration != gen || d == nil || d.State != sluicev1.DrainWaiting {
			return fmt.Errorf("drain %+v", d)
		}
		return nil
	})
}
