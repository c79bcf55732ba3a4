package agent

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
	"github.com/sluice-net/sluice/test/testenv"
)

// statusAtRemoval reads the server's status when the VFs are removed.
type statusAtRemoval struct {
	*host.Host
	read func() string
	seen *string
}

func (s statusAtRemoval) SetNumVFs(ctx context.Context, pf string, n int) error {
	if n == 0 {
		*s.seen = s.read()
	}
	return s.Host.SetNumVFs(ctx, pf, n)
}

// TestStaleCacheNeverReportsUnappliedSpec: a sync that starts from a
// cached copy older than the server's status (the previous sync's last
// write not in the cache yet) must not merge its generation into that
// sync's Succeeded. Seen on the emulated node: the spec removed the PF,
// and the status read Succeeded at the new generation while the PF still
// had its 4 VFs.
func TestStaleCacheNeverReportsUnappliedSpec(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	nns := &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: h.name}}
	nVFs(pfA, "ens1f0", 4, sluicev1.VFGroup{Policy: "p1", ResourceName: "net1", VFRange: "0-3", DeviceType: sluicev1.DeviceTypeNetdevice})(&nns.Spec)
	if err := h.env.Client.Create(ctx, nns); err != nil {
		t.Fatal(err)
	}
	o := h.opts.withDefaults()
	req := reconcile.Request{NamespacedName: client.ObjectKey{Name: h.name}}
	if _, err := newReconciler(h.env.Client, nil, h.node.Host(), h.usage, nil, o).Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	g1 := h.synced(sluicev1.SyncSucceeded, h.nns().Generation).Generation

	// The previous sync at g1 is in progress; the spec removes the PF
	// (g2); the cache takes that object; then the previous sync writes its
	// Succeeded at g1, which the cache has not seen.
	setStatus := func(s sluicev1.SyncStatus) {
		t.Helper()
		n := h.nns()
		base := n.DeepCopy()
		n.Status.SyncStatus, n.Status.ObservedGeneration = s, g1
		if err := h.env.Client.Status().Patch(ctx, n, client.MergeFrom(base)); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(sluicev1.SyncInProgress)
	g2 := h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) { s.Interfaces, s.Pools = nil, nil })
	stale := h.nns()
	setStatus(sluicev1.SyncSucceeded)

	var seen string
	read := func() string {
		n := h.nns()
		return fmt.Sprintf("%s at generation %d", n.Status.SyncStatus, n.Status.ObservedGeneration)
	}
	hst := statusAtRemoval{Host: h.node.Host(), read: read, seen: &seen}
	_, _ = newReconciler(testenv.StaleReads{Client: h.env.Client, NNS: stale}, nil, hst, h.usage, nil, o).Reconcile(ctx, req)
	if seen == "" {
		t.Fatal("the sync from the stale copy did not remove the VFs: the scenario did not happen")
	}
	if want := fmt.Sprintf("%s at generation %d", sluicev1.SyncSucceeded, g2); seen == want {
		t.Errorf("while the VFs were still there the status read %s: a sync's generation merged into another sync's result", seen)
	}
	// The next sync, from a current copy, reports the removal.
	if _, err := newReconciler(h.env.Client, nil, h.node.Host(), h.usage, nil, o).Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	h.synced(sluicev1.SyncSucceeded, g2)
	if got := h.numVFs(pfA); got != 0 {
		t.Errorf("%d VFs after the PF left the spec, want 0", got)
	}
}
