package agent

import (
	"context"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

const (
	pfA = "0000:3b:00.0"
	pfB = "0000:3b:00.1"
)

func group(policy, rng string, dt sluicev1.DeviceType) sluicev1.VFGroup {
	return sluicev1.VFGroup{Policy: policy, ResourceName: policy, VFRange: sluicev1.VFRange(rng), DeviceType: dt}
}

func iface(addr, name string, numVfs int32, groups ...sluicev1.VFGroup) sluicev1.InterfaceSpec {
	return sluicev1.InterfaceSpec{PCIAddress: sluicev1.PCIAddress(addr), Name: name, NumVfs: numVfs, VFGroups: groups}
}

func external(s sluicev1.InterfaceSpec) sluicev1.InterfaceSpec {
	s.ExternallyManaged = true
	return s
}

// TestDrainDecisions is the drain decision table: which changes need which
// pods gone, on a real discovery of a fake node.
func TestDrainDecisions(t *testing.T) {
	podA := PodRef{Namespace: "ns", Name: "a"}
	podB := PodRef{Namespace: "ns", Name: "b"}
	claimX := PodRef{Claim: "ml/x", ClaimUID: "6f1c9a52-0d3e-4c1b-8a44-2b7e0c9d1a01", DRAHold: true}
	four := iface(pfA, "ens1f0", 4, group("p1", "0-3", sluicev1.DeviceTypeNetdevice))
	type setup struct {
		vfs     int // VFs on pfA at the start
		vfioOn  []int
		inPod   []int // VF netdevs moved into pods
		midMove []int // VF netdevs sysfs lists but netlink does not (a CNI moving them)
		used    map[int][]PodRef
		applied *sluicev1.InterfaceSpec // recorded as applied to pfA
		pfBRec  bool                    // pfB recorded as configured by sluice
		pfBVFs  int
		usedB   map[int][]PodRef
	}
	cases := []struct {
		name      string
		setup     setup
		spec      []sluicev1.InterfaceSpec
		wantPods  []PodRef
		wantLine  []string // substrings of pfA's (or the only) change line
		notLine   []string // substrings it must not have
		wantReady []string
		wantErr   string
	}{
		{
			name:     "adding VFs to an unused PF needs no drain",
			spec:     []sluicev1.InterfaceSpec{four},
			wantLine: []string{"numVfs 0 -> 4", "then VFs 0-3 netdevice (policy p1)"},
		},
		{
			name:     "a VF count change destroys every VF: evict exactly the pod using one",
			setup:    setup{vfs: 4, used: map[int][]PodRef{1: {podA}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 6, group("p1", "0-5", sluicev1.DeviceTypeNetdevice))},
			wantPods: []PodRef{podA},
			wantLine: []string{"numVfs 4 -> 6", "drain: evicts ns/a"},
		},
		{
			name:     "lowering the count evicts the users of the VFs that stay too",
			setup:    setup{vfs: 4, used: map[int][]PodRef{0: {podA}, 3: {podB}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 2, group("p1", "0-1", sluicev1.DeviceTypeNetdevice))},
			wantPods: []PodRef{podA, podB},
		},
		{
			name:     "a numVfs 0 policy's PF (no VF groups) loses its VFs, evicting their users",
			setup:    setup{vfs: 4, used: map[int][]PodRef{2: {podA}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 0)},
			wantPods: []PodRef{podA},
			wantLine: []string{"numVfs 4 -> 0"},
		},
		{
			name:     "a VF count change on a PF whose VFs nobody uses needs no drain",
			setup:    setup{vfs: 4},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 6, group("p1", "0-5", sluicev1.DeviceTypeNetdevice))},
			wantLine: []string{"numVfs 4 -> 6"},
		},
		{
			name:     "rebinding an unused VF needs no drain, even with other VFs in use",
			setup:    setup{vfs: 4, used: map[int][]PodRef{0: {podA}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 4, group("p1", "0-1", sluicev1.DeviceTypeNetdevice), group("p2", "2-3", sluicev1.DeviceTypeVfioPci))},
			wantLine: []string{"vf 2 driver igbvf -> vfio-pci (policy p2)", "vf 3 driver igbvf -> vfio-pci"},
		},
		{
			name:     "rebinding a VF in use evicts its pod",
			setup:    setup{vfs: 4, used: map[int][]PodRef{2: {podB}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 4, group("p1", "0-1", sluicev1.DeviceTypeNetdevice), group("p2", "2-3", sluicev1.DeviceTypeVfioPci))},
			wantPods: []PodRef{podB},
		},
		{
			name:     "back from vfio-pci to the network driver",
			setup:    setup{vfs: 2, vfioOn: []int{0, 1}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 2, group("p1", "0-1", sluicev1.DeviceTypeNetdevice))},
			wantLine: []string{"vf 0 driver vfio-pci -> default driver"},
		},
		{
			name:  "a new group on unused VFs needs no drain",
			setup: setup{vfs: 4, used: map[int][]PodRef{0: {podA}}, applied: ptr.To(iface(pfA, "ens1f0", 4, group("p1", "0-1", sluicev1.DeviceTypeNetdevice)))},
			spec: []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 4, group("p1", "0-1", sluicev1.DeviceTypeNetdevice),
				sluicev1.VFGroup{Policy: "p2", ResourceName: "p2", VFRange: "2-3", DeviceType: sluicev1.DeviceTypeNetdevice, Trust: ptr.To(true)})},
			wantLine: []string{"vf 2 trust off -> on (policy p2)"},
		},
		{
			name:     "trust and spoofchk of a VF in use change live",
			setup:    setup{vfs: 2, used: map[int][]PodRef{0: {podA}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 2, sluicev1.VFGroup{Policy: "p1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice, Trust: ptr.To(true), SpoofChk: ptr.To(false)})},
			wantLine: []string{"vf 0 trust off -> on, spoofchk on -> off"},
		},
		{
			name:     "trust and spoofchk of a VF a DRA claim holds stay the claim's",
			setup:    setup{vfs: 2, used: map[int][]PodRef{0: {claimX}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 2, sluicev1.VFGroup{Policy: "p1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice, Trust: ptr.To(true), SpoofChk: ptr.To(false)})},
			wantLine: []string{"vf 1 trust off -> on, spoofchk on -> off"},
			notLine:  []string{"vf 0"},
		},
		{
			name:     "a VF count change waits for a DRA claim on one of the VFs, and evicts the claim's pod",
			setup:    setup{vfs: 4, used: map[int][]PodRef{1: {claimX, podA}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 6, group("p1", "0-5", sluicev1.DeviceTypeNetdevice))},
			wantPods: []PodRef{claimX, podA},
			wantLine: []string{"numVfs 4 -> 6", "drain: evicts ns/a; waits for the kubelet to unprepare DRA ResourceClaim ml/x"},
		},
		{
			name:     "rebinding a VF a DRA claim holds waits for the claim",
			setup:    setup{vfs: 4, used: map[int][]PodRef{2: {claimX}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 4, group("p1", "0-1", sluicev1.DeviceTypeNetdevice), group("p2", "2-3", sluicev1.DeviceTypeVfioPci))},
			wantPods: []PodRef{claimX},
			wantLine: []string{"vf 2 driver igbvf -> vfio-pci", "waits for the kubelet to unprepare DRA ResourceClaim ml/x"},
		},
		{
			name: "the MTU of a VF whose netdev is in a pod cannot change live",
			setup: setup{vfs: 2, inPod: []int{0}, used: map[int][]PodRef{0: {podA}},
				applied: ptr.To(iface(pfA, "ens1f0", 2, group("p1", "0-1", sluicev1.DeviceTypeNetdevice)))},
			spec: []sluicev1.InterfaceSpec{func() sluicev1.InterfaceSpec {
				in := iface(pfA, "ens1f0", 2, sluicev1.VFGroup{Policy: "p1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice, MTU: 1400})
				return in
			}()},
			wantPods: []PodRef{podA},
			wantLine: []string{"vf 0 mtu default -> 1400 (in a pod)", "vf 1 mtu 1500 -> 1400"},
		},
		{
			// The churn on the real-cluster node evicted pods this way
			// after the agent's record was made anew.
			name:     "the MTU of a VF in a pod with nothing applied recorded is unknown, not a reason to evict",
			setup:    setup{vfs: 2, inPod: []int{0}, used: map[int][]PodRef{0: {podA}}},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 2, sluicev1.VFGroup{Policy: "p1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice, MTU: 1400})},
			wantLine: []string{"vf 1 mtu 1500 -> 1400"},
		},
		{
			// So did a VF caught mid-move: its MTU read as 0.
			name: "a VF netdev in the middle of a move into a pod has no MTU to compare",
			setup: setup{vfs: 2, midMove: []int{0}, used: map[int][]PodRef{0: {podA}},
				applied: ptr.To(iface(pfA, "ens1f0", 2, sluicev1.VFGroup{Policy: "p1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice, MTU: 1400}))},
			spec:     []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 2, sluicev1.VFGroup{Policy: "p1", VFRange: "0-1", DeviceType: sluicev1.DeviceTypeNetdevice, MTU: 1400})},
			wantLine: []string{"vf 1 mtu 1500 -> 1400"},
		},
		{
			name:      "a PF as asked is ready",
			setup:     setup{vfs: 4},
			spec:      []sluicev1.InterfaceSpec{four},
			wantReady: []string{pfA},
		},
		{
			name:     "a PF sluice configured that left the spec goes back to zero VFs, evicting its users",
			setup:    setup{pfBRec: true, pfBVFs: 2, usedB: map[int][]PodRef{1: {podB}}},
			spec:     nil,
			wantPods: []PodRef{podB},
			wantLine: []string{"ens1f1 (0000:3b:00.1): left the spec: numVfs 2 -> 0"},
		},
		{
			name:  "a PF sluice never configured is left alone",
			setup: setup{pfBVFs: 2},
			spec:  nil,
		},
		{
			name:    "more VFs than the PF supports",
			spec:    []sluicev1.InterfaceSpec{iface(pfA, "ens1f0", 8, group("p1", "0-7", sluicev1.DeviceTypeNetdevice))},
			wantErr: "PF ens1f0 (0000:3b:00.0): spec asks for 8 VFs, the PF supports at most 7 (sriov_totalvfs)",
		},
		{
			name:      "externallyManaged: more VFs than numVfs exist, the count is left alone",
			setup:     setup{vfs: 4, used: map[int][]PodRef{3: {podA}}},
			spec:      []sluicev1.InterfaceSpec{external(iface(pfA, "ens1f0", 2, group("p1", "0-1", sluicev1.DeviceTypeNetdevice)))},
			wantReady: []string{pfA},
		},
		{
			name:    "externallyManaged: fewer VFs than numVfs exist, refused with the fix",
			setup:   setup{vfs: 2},
			spec:    []sluicev1.InterfaceSpec{external(iface(pfA, "ens1f0", 4, group("p1", "0-3", sluicev1.DeviceTypeNetdevice)))},
			wantErr: "PF ens1f0 (0000:3b:00.0): the policy is externallyManaged and asks for 4 VFs, but only 2 exist and sluice does not create them",
		},
		{
			name:  "externallyManaged: the PF leaving the spec keeps its VFs",
			setup: setup{vfs: 4, used: map[int][]PodRef{0: {podA}}, applied: ptr.To(external(iface(pfA, "ens1f0", 4, group("p1", "0-3", sluicev1.DeviceTypeNetdevice))))},
			spec:  nil,
		},
		{
			name:    "a PF that is not there",
			spec:    []sluicev1.InterfaceSpec{iface("0000:99:00.0", "ens9", 2)},
			wantErr: "PF ens9 (0000:99:00.0): not found on this node",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			node := hosttest.New(t)
			node.AddPF(hosttest.IGB(pfA, "ens1f0"))
			node.AddPF(hosttest.IGB(pfB, "ens1f1"))
			node.AddDriver("vfio-pci")
			if tc.setup.vfs > 0 {
				node.SetNumVFs(pfA, tc.setup.vfs)
			}
			if tc.setup.pfBVFs > 0 {
				node.SetNumVFs(pfB, tc.setup.pfBVFs)
			}
			for _, i := range tc.setup.vfioOn {
				forceVfio(t, node, pfA, i)
			}
			for _, i := range tc.setup.inPod {
				node.RemoveNetdev(node.Netdev(node.VFAddress(pfA, i)))
			}
			users := vfUsers{}
			for i, pods := range tc.setup.used {
				users[node.VFAddress(pfA, i)] = pods
			}
			for i, pods := range tc.setup.usedB {
				users[node.VFAddress(pfB, i)] = pods
			}
			rec := &nodeRecord{PFs: map[string]*pfRecord{}}
			if tc.setup.applied != nil {
				rec.PFs[pfA] = &pfRecord{Applied: tc.setup.applied}
			}
			if tc.setup.pfBRec {
				rec.PFs[pfB] = &pfRecord{}
			}
			snap, err := node.Host().Discover(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range tc.setup.midMove {
				for j := range snap.PFs {
					for k := range snap.PFs[j].VFs {
						if vf := &snap.PFs[j].VFs[k]; snap.PFs[j].PCIAddress == pfA && vf.Index == i {
							vf.Link = host.Link{}
						}
					}
				}
			}
			plan := planNode(tc.spec, "", snap, rec, users)

			if got := plan.drainPods(); !slices.Equal(got, tc.wantPods) {
				t.Errorf("pods to evict = %v, want %v (plan: %q)", got, tc.wantPods, plan.lines())
			}
			lines := strings.Join(plan.lines(), "\n")
			for _, w := range tc.wantLine {
				if !strings.Contains(lines, w) {
					t.Errorf("change lines %q lack %q", lines, w)
				}
			}
			for _, w := range tc.notLine {
				if strings.Contains(lines, w) {
					t.Errorf("change lines %q have %q", lines, w)
				}
			}
			if tc.wantLine == nil && tc.wantErr == "" && tc.wantPods == nil && len(plan.changing()) > 0 {
				t.Errorf("expected no change, plan says %q", lines)
			}
			if tc.wantReady != nil && !slices.Equal(plan.ready, tc.wantReady) {
				t.Errorf("ready = %v, want %v", plan.ready, tc.wantReady)
			}
			var errs []string
			for _, p := range plan.pfs {
				if p.err != nil {
					errs = append(errs, p.err.Error())
				}
			}
			if got := strings.Join(errs, "\n"); (tc.wantErr == "") != (got == "") || !strings.Contains(got, tc.wantErr) {
				t.Errorf("errors = %q, want one containing %q", got, tc.wantErr)
			}
		})
	}
}

// forceVfio binds a VF to vfio-pci through the fake kernel.
func forceVfio(t *testing.T, node *hosttest.Node, pf string, i int) {
	t.Helper()
	// igb has no IOMMU in the fake, so go through sysfs the way an
	// operator by hand would, without host's IOMMU check.
	addr := node.VFAddress(pf, i)
	root := node.Paths().Sys + "/bus/pci"
	for _, w := range [][2]string{
		{root + "/devices/" + addr + "/driver_override", "vfio-pci"},
		{root + "/devices/" + addr + "/driver/unbind", addr},
		{root + "/drivers_probe", addr},
	} {
		if err := node.WriteAttr(w[0], w[1]); err != nil {
			t.Fatalf("bind %s to vfio-pci: %v", addr, err)
		}
	}
	if d := node.Driver(addr); d != "vfio-pci" {
		t.Fatalf("%s bound to %q", addr, d)
	}
}

// TestPlanDrift: a PF whose applied spec is unchanged but whose host state
// differs is drift; one whose spec changed is not.
func TestPlanDrift(t *testing.T) {
	node := hosttest.New(t)
	node.AddPF(hosttest.IGB(pfA, "ens1f0"))
	spec := iface(pfA, "ens1f0", 4, group("p1", "0-3", sluicev1.DeviceTypeNetdevice))
	snap, err := node.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rec := &nodeRecord{PFs: map[string]*pfRecord{pfA: {Applied: spec.DeepCopy()}}}
	p := planNode([]sluicev1.InterfaceSpec{spec}, "", snap, rec, nil)
	if len(p.pfs) != 1 || !p.pfs[0].drifted {
		t.Fatalf("host at 0 VFs under an applied spec of 4: want drift, got %+v", p.pfs)
	}
	if got := p.pfs[0].policies(); !slices.Equal(got, []string{"p1"}) {
		t.Errorf("drift names policies %v, want [p1]", got)
	}
	changed := iface(pfA, "ens1f0", 5, group("p1", "0-4", sluicev1.DeviceTypeNetdevice))
	p = planNode([]sluicev1.InterfaceSpec{changed}, "", snap, rec, nil)
	if len(p.pfs) != 1 || p.pfs[0].drifted {
		t.Fatalf("a changed spec is not drift, got %+v", p.pfs)
	}
}
