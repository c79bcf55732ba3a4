package controllers

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// NodeInput is what the merge needs to know about one node.
type NodeInput struct {
	// Name is the node's (and its NodeNetworkState's) name.
	Name string
	// Labels are the node's labels, matched against policy nodeSelectors.
	Labels map[string]string
	// Interfaces are the PFs the node agent discovered (NNS status).
	Interfaces []sluicev1.InterfaceStatus
}

// FindingKind says what kept a policy from being applied to a PF or node.
type FindingKind string

const (
	// FindingVFRangeConflict: the policy's VF range on a PF overlaps the
	// range of a policy that takes precedence.
	FindingVFRangeConflict FindingKind = "VFRangeConflict"
	// FindingRDMAModeConflict: the policy asks for another node-wide RDMA
	// netns mode than a policy that takes precedence.
	FindingRDMAModeConflict FindingKind = "RDMAModeConflict"
	// FindingResourceConflict: the policy's resourceName is already a pool
	// of another deviceType or RDMA setting on the node.
	FindingResourceConflict FindingKind = "ResourceConflict"
	// FindingInsufficientVFs: the policy's numVfs exceeds a selected PF's
	// totalVfs.
	FindingInsufficientVFs FindingKind = "InsufficientVFs"
)

// Finding is one reason a policy is not (fully) applied on a node.
type Finding struct {
	Kind FindingKind
	// Policy is the policy that lost the claim or lacks VFs.
	Policy string
	// Winner is, for conflicts, the policy that kept the PF, mode or pool.
	Winner string
	// EqualPriority is set for conflicts between policies of the same
	// priority: both report it, the one created first keeps its claim.
	EqualPriority bool
	// DryRun is set for findings that only appear with the dry-run policies
	// merged in; they concern only the dry-run policies involved.
	DryRun bool
	// Node is the node's name.
	Node string
	// PF names the PF ("ens1f0 (0000:3b:00.0)"); empty for node-wide findings.
	PF string
	// Message explains the finding and how to fix it.
	Message string
}

// Concerns reports whether the finding is reported in the status of the
// named policy. Only the loser of a conflict of distinct priorities
// reports it; with equal priorities both do. A dryRun policy reports only
// dry-run findings (whichever side it is on), other policies only real ones.
func (f *Finding) Concerns(policy string, policyIsDryRun bool) bool {
	switch {
	case f.DryRun != policyIsDryRun:
		return false
	case f.DryRun:
		// A dry run reports what it would take from others too.
		return f.Policy == policy || f.Winner == policy
	default:
		return f.Policy == policy || (f.EqualPriority && f.Winner == policy)
	}
}

// MergeResult is the merge of all policies for one node.
type MergeResult struct {
	// Spec is the NodeNetworkState spec to write.
	Spec sluicev1.NodeNetworkStateSpec
	// Selected are the policies, dry-run ones included, whose selectors pick
	// at least one PF of the node, whether or not they won it.
	Selected map[string]bool
	// Findings say what could not be applied and why, sorted.
	Findings []Finding
}

// compiledPolicy is a policy with its pfNames parsed once per merge.
type compiledPolicy struct {
	policy  *sluicev1.NetworkNodePolicy
	pfNames []pfNameSelector
}

func (p *compiledPolicy) name() string    { return p.policy.Name }
func (p *compiledPolicy) priority() int32 { return p.policy.Spec.Priority }
func (p *compiledPolicy) rdma() bool      { return p.rdmaKind() == string(sluicev1.RDMAProviderHardware) }
func (p *compiledPolicy) softRoCE() bool {
	return p.rdmaKind() == string(sluicev1.RDMAProviderSoftRoCE)
}
func (p *compiledPolicy) dryRun() bool { return p.policy.Spec.DryRun }

// noVFs: numVfs 0 asks for the selected PFs to have no VFs of this policy.
func (p *compiledPolicy) noVFs() bool      { return p.policy.Spec.NumVfs == 0 }
func (p *compiledPolicy) resource() string { return p.policy.Spec.ResourceName }

// rdmaKind is "off", or the RDMA provider of the policy's VFs.
func (p *compiledPolicy) rdmaKind() string {
	r := p.policy.Spec.RDMA
	switch {
	case !p.policy.Spec.RDMAEnabled():
		return "off"
	case r == nil || r.Provider == "": // isRdma alone: the hardware provider
		return string(sluicev1.RDMAProviderHardware)
	}
	return string(r.Provider)
}

func (p *compiledPolicy) rdmaMode() sluicev1.RDMAMode {
	if p.policy.Spec.RDMA == nil || p.policy.Spec.RDMA.Mode == "" {
		return sluicev1.RDMAModeShared
	}
	return p.policy.Spec.RDMA.Mode
}

func (p *compiledPolicy) deviceType() sluicev1.DeviceType {
	if p.policy.Spec.DeviceType == "" {
		return sluicev1.DeviceTypeNetdevice
	}
	return p.policy.Spec.DeviceType
}

// Merger merges a fixed set of policies into node specs. It is built once
// (NewMerger) and then used for any number of nodes; it never modifies the
// policies it was given and is safe for concurrent use.
type Merger struct {
	// policies in precedence order: lower priority number first, then
	// older, then by name.
	policies []*compiledPolicy
	// Invalid are the policies left out because their spec cannot be
	// interpreted, with the reason.
	Invalid map[string]error
}

// NewMerger orders the policies by precedence. Policies being deleted are
// left out: their VFs go back to the other policies.
func NewMerger(policies []*sluicev1.NetworkNodePolicy) *Merger {
	m := &Merger{Invalid: map[string]error{}}
	for _, p := range policies {
		if p.DeletionTimestamp != nil {
			continue
		}
		cp := &compiledPolicy{policy: p}
		var err error
		for _, s := range p.Spec.NicSelector.PFNames {
			sel, perr := parsePFName(s)
			if perr != nil {
				err = perr
				break
			}
			cp.pfNames = append(cp.pfNames, sel)
		}
		if err == nil && p.Spec.NumVfs < 0 {
			err = fmt.Errorf("spec.numVfs is %d: set it to 0 (no VFs) or more", p.Spec.NumVfs)
		}
		if err != nil {
			m.Invalid[p.Name] = err
			continue
		}
		m.policies = append(m.policies, cp)
	}
	slices.SortFunc(m.policies, precedence)
	return m
}

// precedence orders policies: the lower priority number first; with equal
// priorities the one created first (an existing configuration is not taken
// over by a newcomer), then by name.
func precedence(a, b *compiledPolicy) int {
	if c := cmp.Compare(a.priority(), b.priority()); c != 0 {
		return c
	}
	if c := a.policy.CreationTimestamp.Compare(b.policy.CreationTimestamp.Time); c != 0 {
		return c
	}
	return strings.Compare(a.name(), b.name())
}

// Node computes the NodeNetworkState spec of one node.
func (m *Merger) Node(node NodeInput) MergeResult { return m.node(node, true) }

// Evaluate is Node without rendering the spec: only Selected and Findings
// are filled in.
func (m *Merger) Evaluate(node NodeInput) MergeResult { return m.node(node, false) }

func (m *Merger) node(node NodeInput, render bool) MergeResult {
	var real, all, shared []*compiledPolicy
	hasDryRun := false
	for _, p := range m.policies {
		if !matchesNode(p.policy.Spec.NodeSelector, node.Labels) {
			continue
		}
		if p.isSharedRDMA() {
			shared = append(shared, p)
			continue
		}
		all = append(all, p)
		if p.dryRun() {
			hasDryRun = true
		} else {
			real = append(real, p)
		}
	}
	res := MergeResult{Selected: map[string]bool{}}
	if len(all) == 0 {
		if len(shared) > 0 {
			res.Spec.Pools, res.Findings = renderSharedRDMA(node.Name, shared, nil, nil, res.Selected)
			if !render {
				res.Spec.Pools = nil
			}
		}
		return res
	}
	pfs := make([]*sluicev1.InterfaceStatus, len(node.Interfaces))
	for i := range node.Interfaces {
		pfs[i] = &node.Interfaces[i]
	}
	slices.SortFunc(pfs, func(a, b *sluicev1.InterfaceStatus) int { return strings.Compare(a.PCIAddress, b.PCIAddress) })

	applied := mergePass(node.Name, pfs, real, res.Selected, render)
	res.Spec.Interfaces = applied.interfaces
	res.Spec.RDMAMode = applied.rdmaMode
	res.Findings = applied.findings
	vfPools, draPools := renderPools(applied.interfaces)
	vfPools, wholeFindings := renderWholePFs(node.Name, applied.wholePFs, vfPools)
	res.Findings = append(res.Findings, wholeFindings...)
	pools, sharedFindings := renderSharedRDMA(node.Name, shared, real, vfPools, res.Selected)
	if render {
		res.Spec.Pools, res.Spec.DRAPools = pools, draPools
		if len(pools) == 0 {
			res.Spec.Pools = nil
		}
	}
	res.Findings = append(res.Findings, sharedFindings...)

	if hasDryRun {
		dry := mergePass(node.Name, pfs, all, res.Selected, render)
		var names []string
		for _, p := range all {
			if p.dryRun() && res.Selected[p.name()] {
				names = append(names, p.name())
			}
		}
		if len(names) > 0 {
			slices.Sort(names)
			res.Spec.DryRun = &sluicev1.DryRunSpec{Policies: names, Interfaces: dry.interfaces}
			isDry := func(name string) bool { return slices.Contains(names, name) }
			for _, f := range dry.findings {
				if isDry(f.Policy) || isDry(f.Winner) {
					f.DryRun = true
					res.Findings = append(res.Findings, f)
				}
			}
		}
	}
	slices.SortStableFunc(res.Findings, func(a, b Finding) int {
		return cmp.Or(strings.Compare(a.Policy, b.Policy), strings.Compare(a.PF, b.PF), strings.Compare(a.Winner, b.Winner))
	})
	return res
}

// claim is a VF range of one PF that one policy holds.
type claim struct {
	policy *compiledPolicy
	vfs    vfRange
}

type passResult struct {
	interfaces []sluicev1.InterfaceSpec
	rdmaMode   sluicev1.RDMAMode
	findings   []Finding
	// wholePFs are the numVfs 0 policies that won a PF and advertise
	// their PFs whole (servesPFsWhole), in precedence order.
	wholePFs []*compiledPolicy
}

// pool is what a resourceName stands for on a node; every policy feeding
// one pool must agree on it.
type pool struct {
	deviceType sluicev1.DeviceType
	rdma       string // rdmaKind
	// excludeTopology and needVhostNet are pool-wide in the device plugin.
	excludeTopology, needVhostNet bool
	// dra: the pool is served by the DRA driver, not the device plugin;
	// one pool is served by exactly one of them.
	dra   bool
	owner *compiledPolicy
}

func (p *compiledPolicy) pool() pool {
	s := &p.policy.Spec
	return pool{deviceType: p.deviceType(), rdma: p.rdmaKind(), excludeTopology: s.ExcludeTopology, needVhostNet: s.NeedVhostNet, dra: s.DRA(), owner: p}
}

// sameKind reports whether two policies' pools can be one pool.
func (a pool) sameKind(b pool) bool {
	return a.deviceType == b.deviceType && a.rdma == b.rdma && a.excludeTopology == b.excludeTopology && a.needVhostNet == b.needVhostNet && a.dra == b.dra
}

func (a pool) String() string {
	alloc := sluicev1.AllocationDevicePlugin
	if a.dra {
		alloc = sluicev1.AllocationDRA
	}
	return fmt.Sprintf("deviceType %s with RDMA %s, excludeTopology %t, needVhostNet %t, allocation %s", a.deviceType, a.rdma, a.excludeTopology, a.needVhostNet, alloc)
}

// mergePass gives each policy, in precedence order, the VF ranges it asks
// for on the PFs it selects, unless a policy before it holds an overlapping
// range. A policy whose node-wide settings (RDMA mode, pool kind) clash
// with a policy before it gets nothing on the node. Without render, only
// the findings and selected policies are worked out.
func mergePass(node string, pfs []*sluicev1.InterfaceStatus, policies []*compiledPolicy, selected map[string]bool, render bool) passResult {
	var out passResult
	claims := make([][]claim, len(pfs))
	pools := map[string]pool{}
	var modeOwner *compiledPolicy

	type pending struct {
		pf  int
		vfs vfRange
	}
	for _, p := range policies {
		var want []pending
		for i, pf := range pfs {
			ranges, ok := p.selectPF(pf)
			if !ok {
				continue
			}
			selected[p.name()] = true
			if p.policy.Spec.NumVfs > pf.TotalVfs {
				out.findings = append(out.findings, Finding{
					Kind: FindingInsufficientVFs, Policy: p.name(), Node: node, PF: pfLabel(pf),
					Message: fmt.Sprintf("policy %q asks for %d VFs but PF %s on node %s supports at most %d (totalVfs): lower spec.numVfs or leave this PF out with spec.nicSelector",
						p.name(), p.policy.Spec.NumVfs, pfLabel(pf), node, pf.TotalVfs),
				})
				continue
			}
			for _, r := range ranges {
				lost := false
				for _, c := range claims[i] {
					if c.vfs.overlaps(r) {
						lost = true
						out.findings = append(out.findings, rangeConflict(node, pf, p, r, c))
					}
				}
				if !lost {
					want = append(want, pending{i, r})
				}
			}
		}
		if len(want) == 0 {
			continue
		}
		if p.noVFs() {
			// numVfs 0 claims the PFs with no VFs: no VF pool, no RDMA
			// mode; the PFs themselves may be a pool (renderWholePFs).
			for _, w := range want {
				claims[w.pf] = append(claims[w.pf], claim{policy: p, vfs: w.vfs})
			}
			if p.servesPFsWhole() {
				out.wholePFs = append(out.wholePFs, p)
			}
			continue
		}
		if pl, ok := pools[p.resource()]; ok && !pl.sameKind(p.pool()) {
			out.findings = append(out.findings, Finding{
				Kind: FindingResourceConflict, Policy: p.name(), Winner: pl.owner.name(), Node: node,
				EqualPriority: pl.owner.priority() == p.priority(),
				Message: fmt.Sprintf("policy %q advertises resourceName %q as %s on node %s, but policy %q (%s) already advertises it as %s; one pool cannot mix them, so %q is not applied on this node: use another resourceName or the same settings",
					p.name(), p.resource(), p.pool(), node, pl.owner.name(), winReason(pl.owner, p), pl, p.name()),
			})
			continue
		}
		if p.rdmaKind() != "off" {
			if modeOwner != nil && modeOwner.rdmaMode() != p.rdmaMode() {
				out.findings = append(out.findings, Finding{
					Kind: FindingRDMAModeConflict, Policy: p.name(), Winner: modeOwner.name(), Node: node,
					EqualPriority: modeOwner.priority() == p.priority(),
					Message: fmt.Sprintf("policy %q asks for RDMA mode %s on node %s but policy %q (%s) asks for %s; the mode is node-wide, so %q is not applied on this node: use the same spec.rdma.mode or select other nodes",
						p.name(), p.rdmaMode(), node, modeOwner.name(), winReason(modeOwner, p), modeOwner.rdmaMode(), p.name()),
				})
				continue
			}
			if modeOwner == nil {
				modeOwner = p
				out.rdmaMode = p.rdmaMode()
			}
		}
		if _, ok := pools[p.resource()]; !ok {
			pools[p.resource()] = p.pool()
		}
		for _, w := range want {
			claims[w.pf] = append(claims[w.pf], claim{policy: p, vfs: w.vfs})
		}
	}

	for i, pf := range pfs {
		if render && len(claims[i]) > 0 {
			out.interfaces = append(out.interfaces, interfaceSpec(pf, claims[i]))
		}
	}
	return out
}

// interfaceSpec renders one PF: as many VFs and as large an MTU as the
// most demanding policy on it asks for (a VF's MTU cannot exceed its PF's),
// and one VF group per claim, by VF index.
func interfaceSpec(pf *sluicev1.InterfaceStatus, claims []claim) sluicev1.InterfaceSpec {
	slices.SortFunc(claims, func(a, b claim) int { return cmp.Compare(a.vfs.first, b.vfs.first) })
	spec := sluicev1.InterfaceSpec{PCIAddress: sluicev1.PCIAddress(pf.PCIAddress), Name: pf.Name}
	for _, c := range claims {
		ps := &c.policy.policy.Spec
		spec.NumVfs = max(spec.NumVfs, ps.NumVfs)
		spec.MTU = max(spec.MTU, ps.MTU)
		if ps.LinkType != "" {
			spec.LinkType = ps.LinkType.Normalized()
		}
		// One externally managed claim keeps sluice off the PF's VF count.
		spec.ExternallyManaged = spec.ExternallyManaged || ps.ExternallyManaged
		if c.policy.noVFs() {
			continue // the PF is listed (with 0 VFs unless others ask more); no group
		}
		g := sluicev1.VFGroup{
			Policy:           c.policy.name(),
			PolicyGeneration: c.policy.policy.Generation,
			ResourceName:     ps.ResourceName,
			VFRange:          sluicev1.VFRange(c.vfs.String()),
			DeviceType:       c.policy.deviceType(),
			MTU:              ps.MTU,
			RDMA:             c.policy.rdma(),
			SoftRoCE:         c.policy.softRoCE(),
			ExcludeTopology:  ps.ExcludeTopology,
			NeedVhostNet:     ps.NeedVhostNet,
			DRA:              ps.DRA(),
		}
		if ps.VFConfig != nil {
			g.Trust = copyBool(ps.VFConfig.Trust)
			g.SpoofChk = copyBool(ps.VFConfig.SpoofChk)
		}
		spec.VFGroups = append(spec.VFGroups, g)
	}
	return spec
}

func copyBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}

func rangeConflict(node string, pf *sluicev1.InterfaceStatus, loser *compiledPolicy, r vfRange, won claim) Finding {
	w := won.policy
	return Finding{
		Kind: FindingVFRangeConflict, Policy: loser.name(), Winner: w.name(), Node: node, PF: pfLabel(pf),
		EqualPriority: w.priority() == loser.priority(),
		Message: fmt.Sprintf("policies %q (VFs %s) and %q (VFs %s) overlap on PF %s of node %s; %q keeps the PF (%s) and %q gets no VFs %s there: give the policies disjoint ranges in spec.nicSelector.pfNames (e.g. %s#0-3 and %s#4-7) or select different PFs",
			w.name(), won.vfs, loser.name(), r, pfLabel(pf), node, w.name(), winReason(w, loser), loser.name(), r, pf.Name, pf.Name),
	}
}

// winReason says why winner takes precedence over loser.
func winReason(winner, loser *compiledPolicy) string {
	if winner.priority() != loser.priority() {
		return fmt.Sprintf("priority %d beats %d", winner.priority(), loser.priority())
	}
	if !winner.policy.CreationTimestamp.Equal(&loser.policy.CreationTimestamp) {
		return fmt.Sprintf("both have priority %d and it was created first", winner.priority())
	}
	return fmt.Sprintf("both have priority %d and were created together; its name sorts first", winner.priority())
}

func pfLabel(pf *sluicev1.InterfaceStatus) string {
	if pf.Name == "" {
		return pf.PCIAddress
	}
	return pf.Name + " (" + pf.PCIAddress + ")"
}
