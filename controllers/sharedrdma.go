package controllers

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// isSharedRDMA reports whether the policy is a shared RDMA pool: it claims
// no PF and creates no VF, so the VF merge never sees it.
func (p *compiledPolicy) isSharedRDMA() bool { return p.policy.Spec.SharedRDMA != nil }

// renderSharedRDMA adds the shared RDMA pools of the policies matching a
// node (in precedence order) to the node's pools. A shared pool is
// k8s-rdma-shared-dev-plugin's sharing (rdmaSharing WholeSet) with its
// selectors. A resourceName already taken, by a VF policy selected on the
// node (vfPolicies, whatever their precedence) or by a shared policy
// before it, leaves the policy out of the node with a finding.
func renderSharedRDMA(node string, policies, vfPolicies []*compiledPolicy, pools []sluicev1.DevicePluginPool, selected map[string]bool) ([]sluicev1.DevicePluginPool, []Finding) {
	var findings []Finding
	owner := map[string]*compiledPolicy{}
	for _, p := range vfPolicies {
		if _, ok := owner[p.resource()]; !ok && selected[p.name()] {
			owner[p.resource()] = p
		}
	}
	for _, p := range policies {
		selected[p.name()] = true
		res := p.resource()
		if who, taken := owner[res]; taken {
			what := "the VF pool of policy " + who.name()
			if who.isSharedRDMA() {
				what = "the shared RDMA pool of policy " + who.name()
			}
			findings = append(findings, Finding{
				Kind: FindingResourceConflict, Policy: p.name(), Winner: who.name(), Node: node,
				EqualPriority: who.priority() == p.priority(),
				Message:       fmt.Sprintf("resourceName %s is already %s on this node: give this shared RDMA pool another resourceName", res, what),
			})
			continue
		}
		owner[res] = p
		pools = append(pools, sharedRDMAPool(p.policy.Spec.ResourceName, p.policy.Spec.SharedRDMA))
	}
	slices.SortFunc(pools, func(a, b sluicev1.DevicePluginPool) int { return strings.Compare(a.ResourceName, b.ResourceName) })
	return pools, findings
}

// sharedRDMAPool is the device-plugin pool of one shared RDMA policy.
func sharedRDMAPool(name string, s *sluicev1.SharedRDMASpec) sluicev1.DevicePluginPool {
	return sluicev1.DevicePluginPool{
		ResourceName: name,
		RDMAHcaMax:   s.MaxPods,
		RDMASharing:  sluicev1.RDMASharingWholeSet,
		Selectors: sluicev1.PoolSelectors{
			Vendors:   slices.Clone(s.Vendors),
			Devices:   slices.Clone(s.DeviceIDs),
			Drivers:   slices.Clone(s.Drivers),
			IfNames:   slices.Clone(s.IfNames),
			LinkTypes: slices.Clone(s.LinkTypes),
			IsRdma:    true,
		},
	}
}

// carriesSharedRDMA reports whether a node's spec has the shared RDMA pool
// of the policy's current spec (no generation is recorded in a pool, so the
// pool itself is compared).
func carriesSharedRDMA(nns *sluicev1.NodeNetworkState, p *sluicev1.NetworkNodePolicy) bool {
	want := sharedRDMAPool(p.Spec.ResourceName, p.Spec.SharedRDMA)
	for i := range nns.Spec.Pools {
		if reflect.DeepEqual(nns.Spec.Pools[i], want) {
			return true
		}
	}
	return false
}
