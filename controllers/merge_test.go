package controllers

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testPolicy is a policy created `age` minutes after epoch.
func testPolicy(name string, priority int32, age int, mutate func(*sluicev1.NetworkNodePolicySpec)) *sluicev1.NetworkNodePolicy {
	p := &sluicev1.NetworkNodePolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			Generation:        3,
			CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Minute)),
		},
		Spec: sluicev1.NetworkNodePolicySpec{
			Priority:     priority,
			NicSelector:  sluicev1.NicSelector{PFNames: []sluicev1.PFName{"ens1f0"}},
			NumVfs:       8,
			DeviceType:   sluicev1.DeviceTypeNetdevice,
			ResourceName: "res-" + name,
		},
	}
	if mutate != nil {
		mutate(&p.Spec)
	}
	return p
}

func pfNames(names ...sluicev1.PFName) func(*sluicev1.NetworkNodePolicySpec) {
	return func(s *sluicev1.NetworkNodePolicySpec) { s.NicSelector.PFNames = names }
}

// testNode has three PFs of two vendors and both link types.
func testNode(labels map[string]string) NodeInput {
	return NodeInput{
		Name:   "node-1",
		Labels: labels,
		Interfaces: []sluicev1.InterfaceStatus{
			{Name: "ens2f0", PCIAddress: "0000:5e:00.0", Vendor: "8086", DeviceID: "158b", LinkType: sluicev1.LinkTypeEthernet, TotalVfs: 64},
			{Name: "ens1f0", PCIAddress: "0000:3b:00.0", Vendor: "15b3", DeviceID: "101b", LinkType: sluicev1.LinkTypeEthernet, TotalVfs: 16},
			{Name: "ens1f1", PCIAddress: "0000:3b:00.1", Vendor: "15b3", DeviceID: "101b", LinkType: sluicev1.LinkTypeInfiniband, TotalVfs: 16},
		},
	}
}

func merge(node NodeInput, policies ...*sluicev1.NetworkNodePolicy) MergeResult {
	return NewMerger(policies).Node(node)
}

// groups renders the VF groups as "pci:policy:range" for compact comparison.
func groups(ifaces []sluicev1.InterfaceSpec) []string {
	var out []string
	for _, in := range ifaces {
		for _, g := range in.VFGroups {
			out = append(out, string(in.PCIAddress)+":"+g.Policy+":"+string(g.VFRange))
		}
	}
	return out
}

func findingsOf(r MergeResult, kind FindingKind) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Kind == kind {
			out = append(out, f)
		}
	}
	return out
}

func assertContainsAll(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not mention %q", what, s, sub)
		}
	}
}

func TestMergeDisjointRangesShareAPF(t *testing.T) {
	a := testPolicy("a", 10, 0, pfNames("ens1f0#0-3"))
	b := testPolicy("b", 10, 1, pfNames("ens1f0#4-7"))
	r := merge(testNode(nil), a, b)
	if len(r.Findings) != 0 {
		t.Fatalf("unexpected findings: %+v", r.Findings)
	}
	want := []string{"0000:3b:00.0:a:0-3", "0000:3b:00.0:b:4-7"}
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, want) {
		t.Fatalf("groups = %v, want %v", got, want)
	}
	if n := r.Spec.Interfaces[0].NumVfs; n != 8 {
		t.Errorf("PF numVfs = %d, want 8", n)
	}
	wantPools := []sluicev1.DevicePluginPool{
		{ResourceName: "res-a", DeviceType: sluicev1.DeviceTypeNetdevice, Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f0#0-3"}}},
		{ResourceName: "res-b", DeviceType: sluicev1.DeviceTypeNetdevice, Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f0#4-7"}}},
	}
	if !reflect.DeepEqual(r.Spec.Pools, wantPools) {
		t.Errorf("pools = %+v\nwant %+v", r.Spec.Pools, wantPools)
	}
	if !r.Selected["a"] || !r.Selected["b"] {
		t.Errorf("selected = %v, want a and b", r.Selected)
	}
}

func TestMergeOverlapLowerPriorityNumberWins(t *testing.T) {
	// "low" was created first but "high" has the lower priority number.
	low := testPolicy("low", 20, 0, nil) // VFs 0-7
	high := testPolicy("high", 5, 10, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#4-5"}
		s.NumVfs = 6
	})
	r := merge(testNode(nil), low, high)
	if got, want := groups(r.Spec.Interfaces), []string{"0000:3b:00.0:high:4-5"}; !slices.Equal(got, want) {
		t.Fatalf("groups = %v, want %v", got, want)
	}
	if n := r.Spec.Interfaces[0].NumVfs; n != 6 {
		t.Errorf("PF numVfs = %d, want 6 (the loser's numVfs must not count)", n)
	}
	c := findingsOf(r, FindingVFRangeConflict)
	if len(c) != 1 {
		t.Fatalf("conflict findings = %+v, want 1", r.Findings)
	}
	f := c[0]
	if f.Policy != "low" || f.Winner != "high" || f.EqualPriority {
		t.Errorf("finding = %+v, want low losing to high", f)
	}
	assertContainsAll(t, "message", f.Message, `"low"`, `"high"`, "node-1", "ens1f0", "0000:3b:00.0", "priority 5 beats 20")
	if !f.Concerns("low", false) || f.Concerns("high", false) {
		t.Errorf("the loser alone reports a conflict of distinct priorities")
	}
	if !r.Selected["low"] {
		t.Errorf("the loser still selects the PF and counts as matched")
	}
}

func TestMergeEqualPriorityOlderPolicyKeepsPF(t *testing.T) {
	older := testPolicy("zz-older", 10, 0, nil)
	newer := testPolicy("aa-newer", 10, 5, nil)
	for _, order := range [][]*sluicev1.NetworkNodePolicy{{older, newer}, {newer, older}} {
		r := merge(testNode(nil), order...)
		if got, want := groups(r.Spec.Interfaces), []string{"0000:3b:00.0:zz-older:0-7"}; !slices.Equal(got, want) {
			t.Fatalf("groups = %v, want %v: the newcomer must not take the PF", got, want)
		}
		c := findingsOf(r, FindingVFRangeConflict)
		if len(c) != 1 || c[0].Policy != "aa-newer" || c[0].Winner != "zz-older" || !c[0].EqualPriority {
			t.Fatalf("findings = %+v", r.Findings)
		}
		if !c[0].Concerns("aa-newer", false) || !c[0].Concerns("zz-older", false) {
			t.Errorf("both policies of equal priority must report the conflict")
		}
		assertContainsAll(t, "message", c[0].Message, "created first", `"aa-newer"`, `"zz-older"`)
	}

	// Created in the same second: the name decides, still deterministically.
	x := testPolicy("x", 10, 0, nil)
	y := testPolicy("y", 10, 0, nil)
	r := merge(testNode(nil), y, x)
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, []string{"0000:3b:00.0:x:0-7"}) {
		t.Errorf("groups = %v, want x to keep the PF", got)
	}
}

func TestMergeRDMAModeConflict(t *testing.T) {
	excl := testPolicy("excl", 1, 5, func(s *sluicev1.NetworkNodePolicySpec) {
		s.RDMA = &sluicev1.RDMASpec{Enabled: true, Mode: sluicev1.RDMAModeExclusive}
	})
	shared := testPolicy("shared", 2, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens2f0"} // another PF: no VF overlap
		s.RDMA = &sluicev1.RDMASpec{Enabled: true, Mode: sluicev1.RDMAModeShared}
	})
	plain := testPolicy("plain", 3, 0, pfNames("ens1f1")) // no RDMA: unaffected
	r := merge(testNode(nil), shared, excl, plain)
	if r.Spec.RDMAMode != sluicev1.RDMAModeExclusive {
		t.Errorf("rdmaMode = %q, want exclusive", r.Spec.RDMAMode)
	}
	want := []string{"0000:3b:00.0:excl:0-7", "0000:3b:00.1:plain:0-7"}
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, want) {
		t.Errorf("groups = %v, want %v", got, want)
	}
	c := findingsOf(r, FindingRDMAModeConflict)
	if len(c) != 1 || c[0].Policy != "shared" || c[0].Winner != "excl" {
		t.Fatalf("findings = %+v", r.Findings)
	}
	assertContainsAll(t, "message", c[0].Message, "node-1", "exclusive", "shared", `"excl"`)
	if len(r.Spec.Pools) != 2 || r.Spec.Pools[0].ResourceName != "res-excl" || !r.Spec.Pools[0].Selectors.IsRdma {
		t.Errorf("pools = %+v, want an RDMA pool res-excl and res-plain", r.Spec.Pools)
	}

	// Without the winner the other mode applies.
	r = merge(testNode(nil), shared)
	if r.Spec.RDMAMode != sluicev1.RDMAModeShared || len(r.Findings) != 0 {
		t.Errorf("alone: rdmaMode=%q findings=%+v", r.Spec.RDMAMode, r.Findings)
	}
	// No RDMA policy: the mode is left as found.
	if r := merge(testNode(nil), plain); r.Spec.RDMAMode != "" {
		t.Errorf("rdmaMode = %q without RDMA policies, want empty", r.Spec.RDMAMode)
	}
}

func TestMergeResourceKindConflict(t *testing.T) {
	a := testPolicy("a", 1, 0, func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = "pool" })
	b := testPolicy("b", 2, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.ResourceName = "pool"
		s.NicSelector.PFNames = []sluicev1.PFName{"ens2f0"}
		s.DeviceType = sluicev1.DeviceTypeVfioPci
	})
	r := merge(testNode(nil), a, b)
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, []string{"0000:3b:00.0:a:0-7"}) {
		t.Errorf("groups = %v", got)
	}
	if c := findingsOf(r, FindingResourceConflict); len(c) != 1 || c[0].Policy != "b" || !strings.Contains(c[0].Message, "vfio-pci") {
		t.Errorf("findings = %+v", r.Findings)
	}
}

func TestMergeNicSelectorFields(t *testing.T) {
	cases := []struct {
		name string
		sel  sluicev1.NicSelector
		link sluicev1.PolicyLinkType
		want []string // PCI addresses selected
	}{
		{"vendor, case-insensitive", sluicev1.NicSelector{Vendor: "15B3"}, "", []string{"0000:3b:00.0", "0000:3b:00.1"}},
		{"vendor without match", sluicev1.NicSelector{Vendor: "14e4"}, "", nil},
		{"deviceID, case-insensitive", sluicev1.NicSelector{DeviceID: "158B"}, "", []string{"0000:5e:00.0"}},
		{"rootDevices", sluicev1.NicSelector{RootDevices: []sluicev1.PCIAddress{"0000:3B:00.1", "0000:99:00.0"}}, "", []string{"0000:3b:00.1"}},
		{"pfNames", sluicev1.NicSelector{PFNames: []sluicev1.PFName{"ens2f0", "ens9"}}, "", []string{"0000:5e:00.0"}},
		{"linkType ib", sluicev1.NicSelector{Vendor: "15b3"}, "ib", []string{"0000:3b:00.1"}},
		{"linkType eth", sluicev1.NicSelector{Vendor: "15b3"}, "eth", []string{"0000:3b:00.0"}},
		{"linkType IB, as sriov-network-operator spells it", sluicev1.NicSelector{Vendor: "15b3"}, "IB", []string{"0000:3b:00.1"}},
		{"linkType ETH", sluicev1.NicSelector{Vendor: "15b3"}, "ETH", []string{"0000:3b:00.0"}},
		{"fields are ANDed", sluicev1.NicSelector{Vendor: "15b3", PFNames: []sluicev1.PFName{"ens2f0"}}, "", nil},
		{"vendor and deviceID", sluicev1.NicSelector{Vendor: "15b3", DeviceID: "101b", RootDevices: []sluicev1.PCIAddress{"0000:3b:00.0"}}, "", []string{"0000:3b:00.0"}},
		{"netFilter selects nothing (no network metadata)", sluicev1.NicSelector{Vendor: "8086", NetFilter: "openstack/NetworkID:abc"}, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy("p", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
				s.NicSelector = tc.sel
				s.LinkType = tc.link
				s.NumVfs = 4
			})
			r := merge(testNode(nil), p)
			var got []string
			for _, in := range r.Spec.Interfaces {
				got = append(got, string(in.PCIAddress))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("selected %v, want %v", got, tc.want)
			}
			if r.Selected["p"] != (len(tc.want) > 0) {
				t.Errorf("Selected[p] = %v", r.Selected["p"])
			}
			if tc.link != "" && len(got) > 0 && r.Spec.Interfaces[0].LinkType != tc.link.Normalized() {
				t.Errorf("interface linkType = %q, want %q", r.Spec.Interfaces[0].LinkType, tc.link)
			}
		})
	}
}

func TestMergeNodeSelector(t *testing.T) {
	p := testPolicy("p", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NodeSelector = map[string]string{"sriov": "true", "zone": "a"}
	})
	cases := []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"sriov": "true", "zone": "a", "other": "x"}, true},
		{map[string]string{"sriov": "true", "zone": "b"}, false},
		{map[string]string{"sriov": "true"}, false},
		{nil, false},
	}
	for _, tc := range cases {
		r := merge(testNode(tc.labels), p)
		if got := len(r.Spec.Interfaces) > 0; got != tc.want || r.Selected["p"] != tc.want {
			t.Errorf("labels %v: applied=%v selected=%v, want %v", tc.labels, got, r.Selected["p"], tc.want)
		}
	}
	all := testPolicy("all", 10, 0, nil)
	if r := merge(testNode(nil), all); len(r.Spec.Interfaces) != 1 {
		t.Errorf("an empty nodeSelector must select every node")
	}
}

func TestMergeNumVfsAboveTotalVfsIsReported(t *testing.T) {
	big := testPolicy("big", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector = sluicev1.NicSelector{Vendor: "15b3"}
		s.NumVfs = 32 // the 15b3 PFs support 16
	})
	r := merge(testNode(nil), big)
	if len(r.Spec.Interfaces) != 0 {
		t.Errorf("interfaces = %+v, want none", r.Spec.Interfaces)
	}
	c := findingsOf(r, FindingInsufficientVFs)
	if len(c) != 2 {
		t.Fatalf("findings = %+v, want one per PF", r.Findings)
	}
	assertContainsAll(t, "message", c[0].Message, `"big"`, "32", "16", "ens1f0", "node-1", "numVfs")
	if !r.Selected["big"] || !c[0].Concerns("big", false) {
		t.Errorf("a policy that selects PFs it cannot fit is matched and reports it")
	}
}

func TestMergeMTUIsTheLargestRequest(t *testing.T) {
	a := testPolicy("a", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#0-1"}
		s.MTU = 1500
	})
	b := testPolicy("b", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#2-3"}
		s.MTU = 9000
	})
	c := testPolicy("c", 10, 0, pfNames("ens1f0#4-5"))
	r := merge(testNode(nil), a, b, c)
	in := r.Spec.Interfaces[0]
	if in.MTU != 9000 {
		t.Errorf("PF MTU = %d, want 9000", in.MTU)
	}
	for _, g := range in.VFGroups {
		want := map[string]int32{"a": 1500, "b": 9000, "c": 0}[g.Policy]
		if g.MTU != want || g.MTU > in.MTU {
			t.Errorf("group %s MTU = %d, want %d (never above the PF's)", g.Policy, g.MTU, want)
		}
	}
	if r := merge(testNode(nil), c); r.Spec.Interfaces[0].MTU != 0 {
		t.Errorf("no MTU asked: PF MTU = %d, want 0 (left as found)", r.Spec.Interfaces[0].MTU)
	}
}

func TestMergeVFGroupFields(t *testing.T) {
	p := testPolicy("p", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#2-3", "ens1f0#0-2"} // overlapping entries of one policy merge
		s.VFConfig = &sluicev1.VFConfigDefaults{Trust: ptr.To(true), SpoofChk: ptr.To(false)}
		s.RDMA = &sluicev1.RDMASpec{Enabled: true}
		s.ResourceName = "rdma"
	})
	r := merge(testNode(nil), p)
	if len(r.Findings) != 0 {
		t.Fatalf("findings = %+v", r.Findings)
	}
	want := sluicev1.VFGroup{
		Policy: "p", PolicyGeneration: 3, ResourceName: "rdma", VFRange: "0-3",
		DeviceType: sluicev1.DeviceTypeNetdevice, RDMA: true, Trust: ptr.To(true), SpoofChk: ptr.To(false),
	}
	if got := r.Spec.Interfaces[0].VFGroups; len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("groups = %+v\nwant [%+v]", got, want)
	}
	if r.Spec.RDMAMode != sluicev1.RDMAModeShared {
		t.Errorf("rdmaMode = %q, want the default shared", r.Spec.RDMAMode)
	}
}

func TestMergeDryRun(t *testing.T) {
	real := testPolicy("real", 10, 0, pfNames("ens1f0#0-3"))
	dry := testPolicy("dry", 10, 1, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#4-7"}
		s.DryRun = true
	})
	r := merge(testNode(nil), real, dry)
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, []string{"0000:3b:00.0:real:0-3"}) {
		t.Errorf("interfaces = %v: a dry-run policy must not be applied", got)
	}
	if len(r.Spec.Pools) != 1 || r.Spec.Pools[0].ResourceName != "res-real" {
		t.Errorf("pools = %+v: a dry-run policy must not be advertised", r.Spec.Pools)
	}
	if r.Spec.DryRun == nil {
		t.Fatal("spec.dryRun is nil")
	}
	if !slices.Equal(r.Spec.DryRun.Policies, []string{"dry"}) {
		t.Errorf("dryRun.policies = %v", r.Spec.DryRun.Policies)
	}
	if got, want := groups(r.Spec.DryRun.Interfaces), []string{"0000:3b:00.0:real:0-3", "0000:3b:00.0:dry:4-7"}; !slices.Equal(got, want) {
		t.Errorf("dryRun.interfaces = %v, want %v", got, want)
	}
	if !r.Selected["dry"] {
		t.Errorf("a dry-run policy selecting PFs is matched")
	}

	// No dry-run policy: no dryRun.
	if r := merge(testNode(nil), real); r.Spec.DryRun != nil {
		t.Errorf("dryRun = %+v without dry-run policies", r.Spec.DryRun)
	}
	// A dry-run policy that selects nothing on the node: no dryRun either.
	nowhere := testPolicy("nowhere", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens9"}
		s.DryRun = true
	})
	if r := merge(testNode(nil), real, nowhere); r.Spec.DryRun != nil {
		t.Errorf("dryRun = %+v for a dry-run policy selecting no PF", r.Spec.DryRun)
	}

	// A dry run that would take VFs from a real policy reports it; the real
	// policy does not, as nothing happens to it.
	taker := testPolicy("taker", 1, 0, func(s *sluicev1.NetworkNodePolicySpec) { s.DryRun = true })
	r = merge(testNode(nil), real, taker)
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, []string{"0000:3b:00.0:real:0-3"}) {
		t.Errorf("interfaces = %v", got)
	}
	if got := groups(r.Spec.DryRun.Interfaces); !slices.Equal(got, []string{"0000:3b:00.0:taker:0-7"}) {
		t.Errorf("dryRun.interfaces = %v", got)
	}
	c := findingsOf(r, FindingVFRangeConflict)
	if len(c) != 1 || !c[0].DryRun || c[0].Concerns("real", false) || !c[0].Concerns("taker", true) {
		t.Errorf("findings = %+v", r.Findings)
	}
}

func TestMergeIsDeterministic(t *testing.T) {
	node := testNode(nil)
	policies := []*sluicev1.NetworkNodePolicy{
		testPolicy("a", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#0-3", "ens2f0#0-3"}
			s.ResourceName = "shared"
		}),
		testPolicy("b", 10, 1, func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#4-7", "ens1f1#0-7"}
			s.ResourceName = "shared"
		}),
		testPolicy("c", 10, 2, pfNames("ens2f0#4-7")),
		testPolicy("d", 10, 3, pfNames("ens1f0#2-5")), // conflicts with a and b
	}
	first := merge(node, policies...)
	wantPools := []sluicev1.DevicePluginPool{
		{ResourceName: "res-c", DeviceType: sluicev1.DeviceTypeNetdevice, Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens2f0#4-7"}}},
		{ResourceName: "shared", DeviceType: sluicev1.DeviceTypeNetdevice, Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f0#0-3", "ens1f0#4-7", "ens1f1#0-7", "ens2f0#0-3"}}},
	}
	if !reflect.DeepEqual(first.Spec.Pools, wantPools) {
		t.Fatalf("pools = %+v\nwant %+v", first.Spec.Pools, wantPools)
	}
	if c := findingsOf(first, FindingVFRangeConflict); len(c) != 2 {
		t.Fatalf("want d to conflict with a and b: %+v", first.Findings)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		n := node
		n.Interfaces = slices.Clone(node.Interfaces)
		rng.Shuffle(len(n.Interfaces), func(i, j int) { n.Interfaces[i], n.Interfaces[j] = n.Interfaces[j], n.Interfaces[i] })
		ps := slices.Clone(policies)
		rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		again := merge(n, ps...)
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("permutation %d renders differently:\n%+v\n%+v", i, first, again)
		}
	}
}

func TestMergeSkipsDeletedAndInvalidPolicies(t *testing.T) {
	gone := testPolicy("gone", 1, 0, nil)
	gone.DeletionTimestamp = ptr.To(metav1.NewTime(epoch))
	bad := testPolicy("bad", 1, 0, pfNames("ens1f0#5-2"))
	ok := testPolicy("ok", 50, 0, nil)
	m := NewMerger([]*sluicev1.NetworkNodePolicy{gone, bad, ok})
	if err := m.Invalid["bad"]; err == nil || !strings.Contains(err.Error(), "ens1f0#5-2") {
		t.Errorf("Invalid[bad] = %v", err)
	}
	r := m.Node(testNode(nil))
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, []string{"0000:3b:00.0:ok:0-7"}) || len(r.Findings) != 0 {
		t.Errorf("groups = %v findings = %+v", got, r.Findings)
	}
}

func TestParsePFName(t *testing.T) {
	cases := []struct {
		in      sluicev1.PFName
		want    pfNameSelector
		wantErr bool
	}{
		{"ens1f0", pfNameSelector{name: "ens1f0"}, false},
		{"ens1f0#0-3", pfNameSelector{name: "ens1f0", vfs: vfRange{0, 3}, hasRange: true}, false},
		{"ens1f0#7-7", pfNameSelector{name: "ens1f0", vfs: vfRange{7, 7}, hasRange: true}, false},
		{"ens1f0#3-1", pfNameSelector{}, true},
		{"ens1f0#3", pfNameSelector{}, true},
		{"#0-1", pfNameSelector{}, true},
	}
	for _, tc := range cases {
		got, err := parsePFName(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parsePFName(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

// TestMergeNumVfsZero: numVfs 0 (sriov-network-operator's "no VFs") lists
// the selected PF with 0 VFs and no VF group or pool; another policy's VFs
// on the same PF win over it without a conflict.
func TestMergeNumVfsZero(t *testing.T) {
	zero := testPolicy("zero", 1, 0, func(s *sluicev1.NetworkNodePolicySpec) { s.NumVfs = 0 })
	m := NewMerger([]*sluicev1.NetworkNodePolicy{zero})
	if err := m.Invalid["zero"]; err != nil {
		t.Fatalf("numVfs 0 is invalid: %v", err)
	}
	r := m.Node(testNode(nil))
	if len(r.Spec.Interfaces) != 1 || r.Spec.Interfaces[0].PCIAddress != "0000:3b:00.0" || r.Spec.Interfaces[0].NumVfs != 0 ||
		len(r.Spec.Interfaces[0].VFGroups) != 0 || len(r.Spec.Pools) != 0 || len(r.Findings) != 0 || !r.Selected["zero"] {
		t.Errorf("spec = %+v findings = %+v selected = %v", r.Spec, r.Findings, r.Selected)
	}
	other := testPolicy("other", 50, 0, nil)
	r = merge(testNode(nil), zero, other)
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, []string{"0000:3b:00.0:other:0-7"}) || r.Spec.Interfaces[0].NumVfs != 8 || len(r.Findings) != 0 {
		t.Errorf("groups = %v spec = %+v findings = %+v", got, r.Spec.Interfaces, r.Findings)
	}
}

// TestMergeIsRdmaAlias: isRdma (sriov-network-operator's spelling) renders
// as rdma.enabled does: hardware RDMA, shared mode, an RDMA pool.
func TestMergeIsRdmaAlias(t *testing.T) {
	for name, mutate := range map[string]func(*sluicev1.NetworkNodePolicySpec){
		"isRdma":       func(s *sluicev1.NetworkNodePolicySpec) { s.IsRdma = true },
		"rdma.enabled": func(s *sluicev1.NetworkNodePolicySpec) { s.RDMA = &sluicev1.RDMASpec{Enabled: true} },
	} {
		r := merge(testNode(nil), testPolicy("p", 10, 0, mutate))
		if len(r.Spec.Interfaces) != 1 || len(r.Spec.Interfaces[0].VFGroups) != 1 || !r.Spec.Interfaces[0].VFGroups[0].RDMA ||
			r.Spec.RDMAMode != sluicev1.RDMAModeShared || len(r.Spec.Pools) != 1 || !r.Spec.Pools[0].Selectors.IsRdma {
			t.Errorf("%s: spec = %+v", name, r.Spec)
		}
	}
}

// TestMergeExcludeTopologyAndVhostNet: the policy's excludeTopology and
// needVhostNet reach its VF groups and device-plugin pool; a policy that
// feeds the same resourceName with other values is kept out of the pool.
func TestMergeExcludeTopologyAndVhostNet(t *testing.T) {
	both := func(s *sluicev1.NetworkNodePolicySpec) {
		s.ExcludeTopology, s.NeedVhostNet = true, true
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#0-3"}
		s.ResourceName = "dpdk"
	}
	a := testPolicy("a", 10, 0, both)
	r := merge(testNode(nil), a)
	if len(r.Spec.Pools) != 1 || !r.Spec.Pools[0].ExcludeTopology || !r.Spec.Pools[0].NeedVhostNet ||
		!r.Spec.Interfaces[0].VFGroups[0].ExcludeTopology || !r.Spec.Interfaces[0].VFGroups[0].NeedVhostNet {
		t.Errorf("spec = %+v", r.Spec)
	}
	b := testPolicy("b", 20, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		both(s)
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#4-7"}
		s.ExcludeTopology = false
	})
	r = merge(testNode(nil), a, b)
	f := findingsOf(r, FindingResourceConflict)
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, []string{"0000:3b:00.0:a:0-3"}) || len(f) != 1 || f[0].Policy != "b" {
		t.Fatalf("groups = %v findings = %+v", got, r.Findings)
	}
	assertContainsAll(t, "message", f[0].Message, "excludeTopology false", "excludeTopology true", `"dpdk"`)
}

// TestMergeExternallyManaged: an externallyManaged policy marks its PFs so
// that the agent leaves their VF count alone.
func TestMergeExternallyManaged(t *testing.T) {
	r := merge(testNode(nil), testPolicy("p", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) { s.ExternallyManaged = true }))
	if len(r.Spec.Interfaces) != 1 || !r.Spec.Interfaces[0].ExternallyManaged || r.Spec.Interfaces[0].NumVfs != 8 {
		t.Errorf("interfaces = %+v", r.Spec.Interfaces)
	}
}

// TestMergeLinkTypeRenderedLowerCase: the node spec carries the link type as
// PFs report it, whatever case the policy used.
func TestMergeLinkTypeRenderedLowerCase(t *testing.T) {
	r := merge(testNode(nil), testPolicy("p", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) { s.LinkType = "ETH" }))
	if len(r.Spec.Interfaces) != 1 || r.Spec.Interfaces[0].LinkType != sluicev1.LinkTypeEthernet {
		t.Errorf("interfaces = %+v", r.Spec.Interfaces)
	}
}

// TestMergeDRAPoolsRenderedApart: a DRA policy's pool goes to draPools, not
// to the device-plugin pools, and its VF group says so.
func TestMergeDRAPoolsRenderedApart(t *testing.T) {
	dp := testPolicy("dp", 10, 0, pfNames("ens1f0#0-3"))
	dra := testPolicy("dra", 10, 1, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#4-7", "ens1f1"}
		s.Allocation = sluicev1.AllocationDRA
		s.ResourceName = "rail"
	})
	r := merge(testNode(nil), dp, dra)
	if len(r.Findings) != 0 {
		t.Fatalf("findings = %+v", r.Findings)
	}
	if len(r.Spec.Pools) != 1 || r.Spec.Pools[0].ResourceName != "res-dp" {
		t.Errorf("device-plugin pools = %+v, want only res-dp", r.Spec.Pools)
	}
	if len(r.Spec.DRAPools) != 1 || r.Spec.DRAPools[0].ResourceName != "rail" ||
		!slices.Equal(r.Spec.DRAPools[0].Selectors.PFNames, []string{"ens1f0#4-7", "ens1f1#0-7"}) {
		t.Errorf("DRA pools = %+v, want rail over ens1f0#4-7 and ens1f1#0-7", r.Spec.DRAPools)
	}
	for _, in := range r.Spec.Interfaces {
		for _, g := range in.VFGroups {
			if g.DRA != (g.Policy == "dra") {
				t.Errorf("%s group of %s: DRA = %t", in.Name, g.Policy, g.DRA)
			}
		}
	}
}

// TestMergeAllocationConflict: one pool is served by the device plugin or
// by the DRA driver, so two policies feeding one resourceName with
// different allocations conflict and the later one gets nothing.
func TestMergeAllocationConflict(t *testing.T) {
	a := testPolicy("a", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#0-3"}
		s.ResourceName = "shared"
	})
	b := testPolicy("b", 20, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.PFNames = []sluicev1.PFName{"ens1f0#4-7"}
		s.ResourceName = "shared"
		s.Allocation = sluicev1.AllocationDRA
	})
	r := merge(testNode(nil), a, b)
	f := findingsOf(r, FindingResourceConflict)
	if got := groups(r.Spec.Interfaces); !slices.Equal(got, []string{"0000:3b:00.0:a:0-3"}) || len(f) != 1 || f[0].Policy != "b" {
		t.Fatalf("groups = %v findings = %+v", got, r.Findings)
	}
	assertContainsAll(t, "message", f[0].Message, "allocation DRA", "allocation DevicePlugin")
	if len(r.Spec.DRAPools) != 0 || len(r.Spec.Pools) != 1 {
		t.Errorf("pools = %+v, DRA pools = %+v", r.Spec.Pools, r.Spec.DRAPools)
	}
}
