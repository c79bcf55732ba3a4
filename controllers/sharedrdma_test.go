package controllers

import (
	"reflect"
	"testing"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

func sharedRDMA(maxPods int32, ifNames ...string) func(*sluicev1.NetworkNodePolicySpec) {
	return func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector, s.NumVfs = sluicev1.NicSelector{}, 0
		s.SharedRDMA = &sluicev1.SharedRDMASpec{MaxPods: maxPods, Vendors: []string{"15b3"}, LinkTypes: []string{"infiniband"}, IfNames: ifNames}
	}
}

func TestMergeSharedRDMAPool(t *testing.T) {
	vf := testPolicy("vf", 10, 0, nil)
	sh := testPolicy("sh", 10, 1, sharedRDMA(100, "ib0", "ib1"))
	r := merge(testNode(nil), vf, sh)
	if len(r.Findings) != 0 {
		t.Fatalf("findings: %+v", r.Findings)
	}
	// The shared policy claims no PF: the VF policy's groups are alone.
	if got := groups(r.Spec.Interfaces); !reflect.DeepEqual(got, []string{"0000:3b:00.0:vf:0-7"}) {
		t.Errorf("groups = %v", got)
	}
	want := []sluicev1.DevicePluginPool{
		{ResourceName: "res-sh", RDMAHcaMax: 100, RDMASharing: sluicev1.RDMASharingWholeSet, Selectors: sluicev1.PoolSelectors{
			Vendors: []string{"15b3"}, LinkTypes: []string{"infiniband"}, IfNames: []string{"ib0", "ib1"}, IsRdma: true}},
		{ResourceName: "res-vf", DeviceType: sluicev1.DeviceTypeNetdevice, Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f0#0-7"}}},
	}
	if !reflect.DeepEqual(r.Spec.Pools, want) {
		t.Errorf("pools = %+v\nwant %+v", r.Spec.Pools, want)
	}
	if !r.Selected["sh"] || !r.Selected["vf"] {
		t.Errorf("selected = %v, want both", r.Selected)
	}
	// Alone on a node, and only where its nodeSelector matches.
	alone := testPolicy("sh", 10, 1, sharedRDMA(5))
	alone.Spec.NodeSelector = map[string]string{"rdma": "yes"}
	if r := merge(testNode(nil), alone); len(r.Spec.Pools) != 0 || r.Selected["sh"] {
		t.Errorf("unlabelled node: pools %+v, selected %v", r.Spec.Pools, r.Selected)
	}
	r = merge(testNode(map[string]string{"rdma": "yes"}), alone)
	if len(r.Spec.Pools) != 1 || r.Spec.Pools[0].RDMAHcaMax != 5 || len(r.Spec.Interfaces) != 0 || !r.Selected["sh"] {
		t.Errorf("labelled node: %+v, selected %v", r.Spec, r.Selected)
	}
}

func TestMergeSharedRDMAResourceConflict(t *testing.T) {
	vf := testPolicy("vf", 10, 0, nil)
	sh := testPolicy("sh", 5, 1, sharedRDMA(10))
	sh.Spec.ResourceName = vf.Spec.ResourceName
	r := merge(testNode(nil), vf, sh)
	if len(r.Spec.Pools) != 1 || r.Spec.Pools[0].RDMAHcaMax != 0 {
		t.Errorf("pools = %+v, want the VF pool only", r.Spec.Pools)
	}
	if len(r.Findings) != 1 || r.Findings[0].Kind != FindingResourceConflict || r.Findings[0].Policy != "sh" || r.Findings[0].Winner != "vf" {
		t.Fatalf("findings = %+v, want sh losing res-vf to vf", r.Findings)
	}
	if !r.Findings[0].Concerns("sh", false) {
		t.Error("the finding is not reported on the shared policy")
	}
	// Two shared policies: the first in precedence keeps the name.
	a := testPolicy("a", 1, 0, sharedRDMA(10))
	b := testPolicy("b", 2, 0, sharedRDMA(20))
	b.Spec.ResourceName = a.Spec.ResourceName
	r = merge(testNode(nil), b, a)
	if len(r.Spec.Pools) != 1 || r.Spec.Pools[0].RDMAHcaMax != 10 || len(r.Findings) != 1 || r.Findings[0].Policy != "b" {
		t.Errorf("pools %+v findings %+v, want a's pool and b's finding", r.Spec.Pools, r.Findings)
	}
	if ev := NewMerger([]*sluicev1.NetworkNodePolicy{a, b}).Evaluate(testNode(nil)); len(ev.Findings) != 1 || ev.Spec.Pools != nil {
		t.Errorf("Evaluate: findings %+v, pools %+v", ev.Findings, ev.Spec.Pools)
	}
}
