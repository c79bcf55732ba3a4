package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

// killedAfterNumVFs is the host as an agent killed right after creating
// VFs sees it: the context ends as soon as SetNumVFs returns.
type killedAfterNumVFs struct {
	*host.Host
	kill func()
}

func (k killedAfterNumVFs) SetNumVFs(ctx context.Context, pf string, n int) error {
	err := k.Host.SetNumVFs(ctx, pf, n)
	k.kill()
	return err
}

// TestAgentFinishesAfterKillMidApply: an agent stopped after creating the
// VFs but before binding and configuring them leaves the PF out of the
// gate and recorded as sluice's; the next run finishes the job.
func TestAgentFinishesAfterKillMidApply(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	h.node.AddDriver("vfio-pci")
	nns := &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: h.name}}
	nVFs(pfA, "ens1f0", 4,
		sluicev1.VFGroup{Policy: "p1", ResourceName: "net1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice, Trust: ptrTo(true)},
		sluicev1.VFGroup{Policy: "dpdk", ResourceName: "dpdk", VFRange: "2-3", DeviceType: sluicev1.DeviceTypeVfioPci},
	)(&nns.Spec)
	if err := h.env.Client.Create(context.Background(), nns); err != nil {
		t.Fatal(err)
	}

	ctx, kill := context.WithCancel(context.Background())
	o := h.opts.withDefaults()
	r := newReconciler(h.env.Client, nil, killedAfterNumVFs{h.node.Host(), kill}, h.usage, nil, o)
	_, _ = r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Name: h.name}})

	if got := h.numVFs(pfA); got != 4 {
		t.Fatalf("the killed run made %d VFs, want 4", got)
	}
	if d := h.node.Driver(h.node.VFAddress(pfA, 2)); d == "vfio-pci" {
		t.Fatal("the killed run got as far as binding: the scenario did not happen")
	}
	if g := h.gate(); slices.Contains(g.Ready, pfA) {
		t.Errorf("gate %v lists a PF whose VFs are not configured", g.Ready)
	}
	rec, err := newStateFile(o.StateDir).load()
	if err != nil {
		t.Fatal(err)
	}
	if rec.PFs[pfA] == nil {
		t.Errorf("the killed run did not record %s as configured by sluice before changing it", pfA)
	}

	h.start()
	h.synced(sluicev1.SyncSucceeded, h.nns().Generation)
	snap, err := h.node.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pf := snap.PFByAddress(pfA)
	for i, vf := range pf.VFs {
		want := "iavf"
		if i >= 2 {
			want = "vfio-pci"
		}
		if vf.Driver != want || (i < 2 && !vf.Settings.Trust) {
			t.Errorf("vf %d: driver %s trust %v, want %s trust %v", i, vf.Driver, vf.Settings.Trust, want, i < 2)
		}
	}
	if g := h.gate(); !slices.Contains(g.Ready, pfA) {
		t.Errorf("gate %v after the next run finished", g.Ready)
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestAgentRepairsDrift: a VF count or a VF setting reset behind the
// agent's back is put back on the next resync.
func TestAgentRepairsDrift(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	h.start()
	h.waitFor("discovery", hasInterfaces(1))
	gen := h.setSpec(nVFs(pfA, "ens1f0", 4, sluicev1.VFGroup{Policy: "p1", ResourceName: "net1", VFRange: "0-3", DeviceType: sluicev1.DeviceTypeNetdevice, Trust: ptrTo(true)}))
	h.synced(sluicev1.SyncSucceeded, gen)

	h.node.SetNumVFs(pfA, 0) // someone writes 0 to sriov_numvfs
	h.eventually("VF count repaired", func() error {
		if n := h.numVFs(pfA); n != 4 {
			return fmt.Errorf("%d VFs", n)
		}
		return h.trustOn(pfA, 4)
	})

	link, err := h.node.LinkByName("ens1f0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.node.LinkSetVfTrust(link, 1, false); err != nil { // ip link set ens1f0 vf 1 trust off
		t.Fatal(err)
	}
	h.eventually("VF trust repaired", func() error { return h.trustOn(pfA, 4) })
	n := h.synced(sluicev1.SyncSucceeded, gen)
	if c := meta.FindStatusCondition(n.Status.Conditions, sluicev1.ConditionDegraded); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Degraded = %+v after a repaired drift", c)
	}
	if g := h.gate(); !slices.Contains(g.Ready, pfA) {
		t.Errorf("gate %v after the repair", g.Ready)
	}
}

func (h *harness) trustOn(pf string, n int) error {
	snap, err := h.node.Host().Discover(context.Background())
	if err != nil {
		return err
	}
	p := snap.PFByAddress(pf)
	if len(p.VFs) != n {
		return fmt.Errorf("%d VFs", len(p.VFs))
	}
	for _, vf := range p.VFs {
		if !vf.Settings.Trust {
			return fmt.Errorf("vf %d trust off", vf.Index)
		}
	}
	return nil
}

func hasInterfaces(k int) func(*sluicev1.NodeNetworkState) error {
	return func(n *sluicev1.NodeNetworkState) error {
		if len(n.Status.Interfaces) != k {
			return fmt.Errorf("%d interfaces, want %d", len(n.Status.Interfaces), k)
		}
		return nil
	}
}

// TestAgentDegradedWhenDriftCannotBeRepaired: drift the agent fails to
// repair sets Degraded naming the PF and the policy, closes the PF in the
// gate, and clears once repaired.
func TestAgentDegradedWhenDriftCannotBeRepaired(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	h.start()
	h.waitFor("discovery", hasInterfaces(1))
	gen := h.setSpec(nVFs(pfA, "ens1f0", 4))
	h.synced(sluicev1.SyncSucceeded, gen)

	h.node.FailWrite(pfA+"/sriov_numvfs", syscall.EIO)
	h.node.SetNumVFs(pfA, 0)
	n := h.waitFor("Degraded", func(n *sluicev1.NodeNetworkState) error {
		if c := meta.FindStatusCondition(n.Status.Conditions, sluicev1.ConditionDegraded); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Degraded = %+v", c)
		}
		return nil
	})
	c := meta.FindStatusCondition(n.Status.Conditions, sluicev1.ConditionDegraded)
	for _, want := range []string{"PF ens1f0 (0000:3b:00.0) drifted", "policy p1", "numVfs 0 -> 4", "write sriov_numvfs=4"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("Degraded message %q lacks %q", c.Message, want)
		}
	}
	if c.Reason != ReasonDriftNotRepaired || n.Status.SyncStatus != sluicev1.SyncFailed {
		t.Errorf("reason %s, syncStatus %s", c.Reason, n.Status.SyncStatus)
	}
	if g := h.gate(); slices.Contains(g.Ready, pfA) {
		t.Errorf("gate %v lists the drifted PF", g.Ready)
	}

	h.node.FailWrite(pfA+"/sriov_numvfs", nil)
	h.waitFor("Degraded cleared", func(n *sluicev1.NodeNetworkState) error {
		if c := meta.FindStatusCondition(n.Status.Conditions, sluicev1.ConditionDegraded); c == nil || c.Status != metav1.ConditionFalse || n.Status.SyncStatus != sluicev1.SyncSucceeded {
			return fmt.Errorf("Degraded = %+v, sync %s", c, n.Status.SyncStatus)
		}
		return nil
	})
}
