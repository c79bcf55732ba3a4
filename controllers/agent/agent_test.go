package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host/hosttest"
)

// watchSync records every syncStatus the NodeNetworkState passes through.
func (h *harness) watchSync() func() []sluicev1.SyncStatus {
	h.t.Helper()
	wc, err := client.NewWithWatch(h.env.Config, client.Options{Scheme: h.env.Scheme})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := wc.Watch(ctx, &sluicev1.NodeNetworkStateList{}, client.MatchingFields{"metadata.name": h.name})
	if err != nil {
		h.t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []sluicev1.SyncStatus
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			n, ok := ev.Object.(*sluicev1.NodeNetworkState)
			if !ok {
				continue
			}
			mu.Lock()
			if len(seen) == 0 || seen[len(seen)-1] != n.Status.SyncStatus {
				seen = append(seen, n.Status.SyncStatus)
			}
			mu.Unlock()
		}
	}()
	h.t.Cleanup(func() { w.Stop(); cancel() })
	return func() []sluicev1.SyncStatus {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// TestAgentAppliesSpec: the agent creates its NodeNetworkState with what it
// discovered; a spec of 4 VFs goes InProgress then Succeeded, the node has
// the VFs, the gate lists the PF and the pools file has the pools. NICs
// without SR-IOV (which the device plugin may serve whole) are not
// interfaces: no policy can give them VFs.
func TestAgentAppliesSpec(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	h.node.AddDevice("0000:00:1f.2", "8086", "a102", "ahci")
	h.node.AddNonSRIOVNIC(hosttest.ConnectX6("0000:af:00.0", "ens5f0", 1))
	h.node.AddNIC("0000:02:00.0", "eno1", "igb")
	h.start()

	n := h.waitFor("NodeNetworkState with the discovered PF", func(n *sluicev1.NodeNetworkState) error {
		if len(n.Status.Interfaces) != 1 || n.Status.Interfaces[0].PCIAddress != pfA {
			return fmt.Errorf("status.interfaces = %+v", n.Status.Interfaces)
		}
		return nil
	})
	in := n.Status.Interfaces[0]
	if in.Name != "ens1f0" || in.TotalVfs != 128 || in.NumVfs != 0 || in.Vendor != "8086" || in.Driver != "ice" || in.LinkType != sluicev1.LinkTypeEthernet || in.MTU != 1500 {
		t.Errorf("discovered PF = %+v", in)
	}
	if len(n.OwnerReferences) != 1 || n.OwnerReferences[0].Kind != "Node" || n.OwnerReferences[0].Name != h.name || n.OwnerReferences[0].UID == "" {
		t.Errorf("owner references = %+v, want the Node", n.OwnerReferences)
	}

	seen := h.watchSync()
	gen := h.setSpec(nVFs(pfA, "ens1f0", 4))
	n = h.synced(sluicev1.SyncSucceeded, gen)

	if got := h.numVFs(pfA); got != 4 {
		t.Errorf("fake node has %d VFs, want 4", got)
	}
	if got := n.Status.Interfaces[0].NumVfs; got != 4 || len(n.Status.Interfaces[0].VFs) != 4 {
		t.Errorf("status reports %d VFs (%d listed), want 4", got, len(n.Status.Interfaces[0].VFs))
	}
	// The watch may lag the read that saw Succeeded (it did under load).
	h.eventually("syncStatus InProgress then Succeeded on the watch", func() error {
		if s := seen(); !isSubsequence([]sluicev1.SyncStatus{sluicev1.SyncInProgress, sluicev1.SyncSucceeded}, s) {
			return fmt.Errorf("syncStatus went %v", s)
		}
		return nil
	})
	if g := h.gate(); !slices.Equal(g.Ready, []string{pfA}) || g.Generation != gen {
		t.Errorf("gate = %+v, want %s ready at generation %d", g, pfA, gen)
	}
	var cfg struct {
		ResourcePrefix string                      `json:"resourcePrefix"`
		Pools          []sluicev1.DevicePluginPool `json:"pools"`
	}
	raw, err := os.ReadFile(h.opts.DevicePluginConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ResourcePrefix != "sluice.dev" || len(cfg.Pools) != 1 || cfg.Pools[0].ResourceName != "net1" ||
		!slices.Equal(cfg.Pools[0].Selectors.PFNames, []string{"ens1f0#0-3"}) {
		t.Errorf("device plugin config = %s", raw)
	}
	if c := meta.FindStatusCondition(n.Status.Conditions, sluicev1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != gen {
		t.Errorf("Ready condition = %+v", c)
	}
	if n.Status.Drain == nil || n.Status.Drain.State != sluicev1.DrainNone {
		t.Errorf("drain = %+v, want None: adding VFs disturbs nobody", n.Status.Drain)
	}
}

func isSubsequence[T comparable](want, got []T) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestAgentFailureAndRecovery: a failing sriov_numvfs write is reported
// as Failed naming the PF and the step, the PF stays out of the gate (the
// other PF goes in), and the agent recovers once the failure is gone.
func TestAgentFailureAndRecovery(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	h.node.AddPF(hosttest.E810(pfB, "ens1f1", 0))
	h.node.FailWrite(pfA+"/sriov_numvfs", syscall.EIO)
	h.start()
	h.waitFor("discovery", func(n *sluicev1.NodeNetworkState) error {
		if len(n.Status.Interfaces) != 2 {
			return fmt.Errorf("%d interfaces", len(n.Status.Interfaces))
		}
		return nil
	})
	gen := h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		nVFs(pfA, "ens1f0", 4)(s)
		b := s.Interfaces[0].DeepCopy()
		b.PCIAddress, b.Name = pfB, "ens1f1"
		s.Interfaces = append(s.Interfaces, *b)
	})
	n := h.synced(sluicev1.SyncFailed, gen)
	msg := n.Status.LastSyncError
	for _, want := range []string{"PF ens1f0 (0000:3b:00.0)", "set numVfs 0 -> 4", "write sriov_numvfs=4", "input/output error"} {
		if !strings.Contains(msg, want) {
			t.Errorf("lastSyncError %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "ens1f1") {
		t.Errorf("lastSyncError %q blames the PF that worked", msg)
	}
	if g := h.gate(); !slices.Equal(g.Ready, []string{pfB}) {
		t.Errorf("gate = %v, want only %s (the failed PF stays closed)", g.Ready, pfB)
	}
	if c := meta.FindStatusCondition(n.Status.Conditions, sluicev1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonSyncFailed {
		t.Errorf("Ready condition = %+v", c)
	}

	h.node.FailWrite(pfA+"/sriov_numvfs", nil)
	h.synced(sluicev1.SyncSucceeded, gen)
	if got := h.numVFs(pfA); got != 4 {
		t.Errorf("after recovery %d VFs, want 4", got)
	}
	if g := h.gate(); !slices.Equal(g.Ready, []string{pfA, pfB}) {
		t.Errorf("gate after recovery = %v", g.Ready)
	}
}

// TestAgentMTUOrder: raising the MTU raises the PF before its VFs, and
// lowering it lowers the VFs before the PF (which refuses otherwise).
func TestAgentMTUOrder(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	h.start()
	h.waitFor("discovery", func(n *sluicev1.NodeNetworkState) error {
		if len(n.Status.Interfaces) != 1 {
			return fmt.Errorf("no interfaces yet")
		}
		return nil
	})
	withMTU := func(mtu int32) func(*sluicev1.NodeNetworkStateSpec) {
		return func(s *sluicev1.NodeNetworkStateSpec) {
			nVFs(pfA, "ens1f0", 2, sluicev1.VFGroup{Policy: "p1", ResourceName: "net1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice, MTU: mtu})(s)
			s.Interfaces[0].MTU = mtu
		}
	}
	n := h.synced(sluicev1.SyncSucceeded, h.setSpec(withMTU(9000)))
	in := n.Status.Interfaces[0]
	if in.MTU != 9000 || len(in.VFs) != 2 || in.VFs[0].MTU != 9000 || in.VFs[1].MTU != 9000 {
		t.Fatalf("after raising: PF MTU %d, VFs %+v", in.MTU, in.VFs)
	}
	n = h.synced(sluicev1.SyncSucceeded, h.setSpec(withMTU(1400)))
	in = n.Status.Interfaces[0]
	if in.MTU != 1400 || in.VFs[0].MTU != 1400 || in.VFs[1].MTU != 1400 {
		t.Fatalf("after lowering: PF MTU %d, VFs %+v", in.MTU, in.VFs)
	}
}

// TestAgentRDMAModeBusy: switching the RDMA netns mode on a node with
// other network namespaces fails with the kernel's EBUSY explained, and
// the RDMA PF stays out of the gate.
func TestAgentRDMAModeBusy(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.ConnectX6(pfA, "ens1f0", 0))
	h.node.SetOtherNetns(3)
	h.start()
	h.waitFor("discovery", func(n *sluicev1.NodeNetworkState) error {
		if n.Status.RDMAMode != sluicev1.RDMAModeShared {
			return fmt.Errorf("rdmaMode %q", n.Status.RDMAMode)
		}
		return nil
	})
	gen := h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		nVFs(pfA, "ens1f0", 2, sluicev1.VFGroup{Policy: "rdma", ResourceName: "rdma", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice, RDMA: true})(s)
		s.RDMAMode = sluicev1.RDMAModeExclusive
	})
	n := h.synced(sluicev1.SyncFailed, gen)
	for _, want := range []string{"set RDMA netns mode shared -> exclusive", "device or resource busy", "other network namespaces exist", "netns_mode=0"} {
		if !strings.Contains(n.Status.LastSyncError, want) {
			t.Errorf("lastSyncError %q lacks %q", n.Status.LastSyncError, want)
		}
	}
	if got := h.numVFs(pfA); got != 2 {
		t.Errorf("the VFs are still made: %d, want 2", got)
	}
	if g := h.gate(); slices.Contains(g.Ready, pfA) {
		t.Errorf("gate %v lists the RDMA PF while the RDMA mode is wrong", g.Ready)
	}
}

// TestAgentReturnsRemovedPF: a PF sluice configured that leaves the spec
// goes back to zero VFs and its original MTU; a PF with VFs sluice never
// configured is not touched.
func TestAgentReturnsRemovedPF(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	h.node.AddPF(hosttest.E810(pfB, "ens1f1", 0))
	h.node.SetNumVFs(pfB, 3) // someone else's
	h.start()
	h.waitFor("discovery", func(n *sluicev1.NodeNetworkState) error {
		if len(n.Status.Interfaces) != 2 {
			return fmt.Errorf("no interfaces yet")
		}
		return nil
	})
	h.synced(sluicev1.SyncSucceeded, h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		nVFs(pfA, "ens1f0", 4)(s)
		s.Interfaces[0].MTU = 9000
	}))
	gen := h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) { s.Interfaces, s.Pools = nil, nil })
	n := h.synced(sluicev1.SyncSucceeded, gen)
	if got := h.numVFs(pfA); got != 0 {
		t.Errorf("removed PF has %d VFs, want 0", got)
	}
	if got := n.Status.Interfaces[0].MTU; got != 1500 {
		t.Errorf("removed PF MTU %d, want its original 1500", got)
	}
	if got := h.numVFs(pfB); got != 3 {
		t.Errorf("PF sluice never configured has %d VFs, want its 3 untouched", got)
	}
	if g := h.gate(); len(g.Ready) != 0 {
		t.Errorf("gate %v after the spec emptied", g.Ready)
	}
	rec, err := newStateFile(h.opts.StateDir).load()
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.PFs) != 0 {
		t.Errorf("state file still records %v", rec.PFs)
	}
}
