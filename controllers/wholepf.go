package controllers

import (
	"fmt"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// A numVfs 0 policy leaves its PFs without VFs and, as
// sriov-network-operator renders such a policy for its device plugin
// (createDevicePluginResource: the PF's own device ID instead of its VFs'),
// advertises those PFs whole: a pool selecting by the policy's vendor,
// deviceID, linkType (not for vfio-pci, whose link type cannot be read) and
// RDMA, with its excludeTopology and needVhostNet. The device plugin serves
// a PF whole once it has no VFs and does not carry the node's default route.
//
// sriov-network-operator also puts the policy's pfNames and rootDevices in
// that pool, where they select only VFs, so its pool never holds a PF
// whole: a policy with either gets no pool here, rather than one that
// could take VFs another policy created. Nor does a DRA policy (the DRA
// driver publishes VFs only).

// servesPFsWhole reports whether a numVfs 0 policy gets a whole-PF pool.
func (p *compiledPolicy) servesPFsWhole() bool {
	s := &p.policy.Spec
	return p.noVFs() && s.SharedRDMA == nil && !s.DRA() && len(s.NicSelector.PFNames) == 0 && len(s.NicSelector.RootDevices) == 0
}

// wholePFPool is the device-plugin pool of a numVfs 0 policy.
func wholePFPool(p *compiledPolicy) sluicev1.DevicePluginPool {
	s := &p.policy.Spec
	pool := sluicev1.DevicePluginPool{
		ResourceName:    s.ResourceName,
		ExcludeTopology: s.ExcludeTopology,
		NeedVhostNet:    s.NeedVhostNet,
		Selectors:       sluicev1.PoolSelectors{IsRdma: p.rdma()},
	}
	if s.NicSelector.Vendor != "" {
		pool.Selectors.Vendors = []string{normalizeHex(string(s.NicSelector.Vendor))}
	}
	if s.NicSelector.DeviceID != "" {
		pool.Selectors.Devices = []string{normalizeHex(string(s.NicSelector.DeviceID))}
	}
	if s.LinkType != "" && p.deviceType() != sluicev1.DeviceTypeVfioPci {
		lt := "ether"
		if s.LinkType.Normalized() == sluicev1.LinkTypeInfiniband {
			lt = "infiniband"
		}
		pool.Selectors.LinkTypes = []string{lt}
	}
	return pool
}

// renderWholePFs adds the pools of the numVfs 0 policies that won a PF of
// the node (in precedence order) to the node's VF pools. A resourceName
// already a pool on the node (a VF pool, whatever the precedence, or the
// whole-PF pool of a policy before it) leaves the policy's pool out with a
// finding: a pool has one selector, which cannot hold both.
func renderWholePFs(node string, policies []*compiledPolicy, pools []sluicev1.DevicePluginPool) ([]sluicev1.DevicePluginPool, []Finding) {
	var findings []Finding
	taken := map[string]string{}
	for i := range pools {
		taken[pools[i].ResourceName] = "a VF pool"
	}
	owner := map[string]*compiledPolicy{}
	for _, p := range policies {
		res := p.resource()
		if what, ok := taken[res]; ok {
			f := Finding{
				Kind: FindingResourceConflict, Policy: p.name(), Node: node,
				Message: fmt.Sprintf("resourceName %s is already %s on this node, so the PFs that numVfs 0 leaves without VFs are not advertised whole under it: give this policy another resourceName", res, what),
			}
			if w := owner[res]; w != nil {
				f.Winner, f.EqualPriority = w.name(), w.priority() == p.priority()
			}
			findings = append(findings, f)
			continue
		}
		taken[res] = "the whole-PF pool of policy " + p.name()
		owner[res] = p
		pools = append(pools, wholePFPool(p))
	}
	return pools, findings
}
