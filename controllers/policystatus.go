package controllers

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// Condition reasons of a NetworkNodePolicy.
const (
	ReasonApplied         = "Applied"
	ReasonProgressing     = "Progressing"
	ReasonSyncFailed      = "SyncFailed"
	ReasonNoMatchingNodes = "NoMatchingNodes"
	ReasonInvalidSpec     = "InvalidSpec"
	ReasonInsufficientVFs = string(FindingInsufficientVFs)
	ReasonConflict        = "Conflict"
	ReasonNoConflict      = "NoConflict"
	ReasonDryRunReported  = "DryRunReported"
	ReasonDryRunPending   = "DryRunPending"
)

// listLimit is how many nodes or findings a condition message spells out.
const listLimit = 5

// nodeView is one node as a policy's status sees it.
type nodeView struct {
	name   string
	labels map[string]string
	// state is the node's NodeNetworkState, nil before there is one.
	state *sluicev1.NodeNetworkState
}

// policyOutcome is how far one policy is applied across the nodes.
type policyOutcome struct {
	matched, ready int32
	// pending are the matched nodes that have not applied the policy's
	// current generation yet; failed those whose last apply failed.
	pending, failed []string
	// findings concerning the policy, by node.
	findings []Finding
	dryRun   []sluicev1.DryRunNode
	invalid  error
}

// evaluator merges one node; Merger.Evaluate or a cache in front of it.
type evaluator func(NodeInput) MergeResult

// evaluatePolicy merges every node the policy's nodeSelector picks and
// counts where the policy selects PFs (matched) and where the node agent
// has applied its current generation (ready). nodes must be sorted by name.
func evaluatePolicy(p *sluicev1.NetworkNodePolicy, m *Merger, eval evaluator, nodes []nodeView) policyOutcome {
	var out policyOutcome
	if err, ok := m.Invalid[p.Name]; ok {
		out.invalid = err
		return out
	}
	for _, n := range nodes {
		if n.state == nil || !matchesNode(p.Spec.NodeSelector, n.labels) {
			continue
		}
		res := eval(NodeInput{Name: n.name, Labels: n.labels, Interfaces: n.state.Status.Interfaces})
		if !res.Selected[p.Name] {
			continue
		}
		out.matched++
		for _, f := range res.Findings {
			if f.Concerns(p.Name, p.Spec.DryRun) {
				out.findings = append(out.findings, f)
			}
		}
		st := &n.state.Status
		current := st.ObservedGeneration == n.state.Generation
		switch {
		case current && st.SyncStatus == sluicev1.SyncSucceeded && carriesPolicy(n.state, p) && (!p.Spec.DryRun || reportedDryRun(st.DryRun, p.Name)):
			out.ready++
		case current && st.SyncStatus == sluicev1.SyncFailed:
			out.failed = append(out.failed, fmt.Sprintf("%s (%s)", n.name, st.LastSyncError))
		default:
			out.pending = append(out.pending, n.name)
		}
		if p.Spec.DryRun && current && reportedDryRun(st.DryRun, p.Name) && carriesPolicy(n.state, p) {
			out.dryRun = append(out.dryRun, sluicev1.DryRunNode{
				Node:          n.name,
				DrainRequired: st.DryRun.DrainRequired,
				PodsToEvict:   slices.Clone(st.DryRun.PodsToEvict),
				Changes:       slices.Clone(st.DryRun.Changes),
			})
		}
	}
	return out
}

// carriesPolicy reports whether a node's spec has the policy's current
// generation: at least one VF group of it, all rendered from that
// generation (in spec.dryRun for a dry-run policy); for a numVfs 0 policy,
// which renders no group, no group of it; for a shared RDMA policy, its
// pool as the current generation renders it.
func carriesPolicy(nns *sluicev1.NodeNetworkState, p *sluicev1.NetworkNodePolicy) bool {
	if p.Spec.SharedRDMA != nil {
		return carriesSharedRDMA(nns, p)
	}
	ifaces := nns.Spec.Interfaces
	if p.Spec.DryRun {
		if nns.Spec.DryRun == nil || !slices.Contains(nns.Spec.DryRun.Policies, p.Name) {
			return false
		}
		ifaces = nns.Spec.DryRun.Interfaces
	}
	// A numVfs 0 policy has no VF group: it is carried once no group of an
	// earlier generation of it (which had VFs) is left.
	found := p.Spec.NumVfs == 0
	for i := range ifaces {
		for _, g := range ifaces[i].VFGroups {
			if g.Policy != p.Name {
				continue
			}
			if g.PolicyGeneration != p.Generation {
				return false
			}
			found = true
		}
	}
	return found
}

func reportedDryRun(r *sluicev1.DryRunResult, policy string) bool {
	return r != nil && slices.Contains(r.Policies, policy)
}

// policyStatus renders the status of a policy from its outcome, keeping
// the transition times of conditions that did not change.
func policyStatus(p *sluicev1.NetworkNodePolicy, out policyOutcome) sluicev1.NetworkNodePolicyStatus {
	st := sluicev1.NetworkNodePolicyStatus{
		ObservedGeneration: p.Generation,
		MatchedNodes:       out.matched,
		ReadyNodes:         out.ready,
		DryRun:             out.dryRun,
		Conditions:         slices.Clone(p.Status.Conditions),
	}
	meta.SetStatusCondition(&st.Conditions, conflictCondition(p, out))
	meta.SetStatusCondition(&st.Conditions, readyCondition(p, out))
	return st
}

func readyCondition(p *sluicev1.NetworkNodePolicy, out policyOutcome) metav1.Condition {
	c := metav1.Condition{Type: sluicev1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: p.Generation}
	var lacking, lost []Finding
	for _, f := range out.findings {
		switch {
		case f.Kind == FindingInsufficientVFs:
			lacking = append(lacking, f)
		case f.Policy == p.Name:
			lost = append(lost, f)
		}
	}
	switch {
	case out.invalid != nil:
		c.Reason, c.Message = ReasonInvalidSpec, out.invalid.Error()
	case out.matched == 0 && p.Spec.NicSelector.NetFilter != "":
		c.Reason, c.Message = ReasonNoMatchingNodes, netFilterUnsupported(p.Spec.NicSelector.NetFilter)
	case out.matched == 0:
		c.Reason = ReasonNoMatchingNodes
		c.Message = "no node matching spec.nodeSelector reports a PF that spec.nicSelector and spec.linkType select"
	case len(lacking) > 0:
		c.Reason, c.Message = ReasonInsufficientVFs, summarize(lacking)
	case len(lost) > 0:
		c.Reason = ReasonConflict
		c.Message = "not applied everywhere it matches because of a conflict with another policy; see the Conflict condition"
	case len(out.failed) > 0:
		c.Reason = ReasonSyncFailed
		c.Message = fmt.Sprintf("the node agent failed to apply the node state on %d of %d matched nodes: %s", len(out.failed), out.matched, listSome(out.failed))
	case p.Spec.DryRun && out.ready < out.matched:
		c.Reason = ReasonDryRunPending
		c.Message = fmt.Sprintf("%d of %d matched nodes reported the dry run of generation %d; waiting for %s", out.ready, out.matched, p.Generation, listSome(out.pending))
	case p.Spec.DryRun:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonDryRunReported
		c.Message = fmt.Sprintf("all %d matched nodes reported what applying generation %d would do; see status.dryRun", out.matched, p.Generation)
	case out.ready < out.matched:
		c.Reason = ReasonProgressing
		c.Message = fmt.Sprintf("%d of %d matched nodes applied generation %d; waiting for %s", out.ready, out.matched, p.Generation, listSome(out.pending))
	default:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonApplied
		c.Message = fmt.Sprintf("generation %d is applied on all %d matched nodes", p.Generation, out.matched)
	}
	return c
}

func conflictCondition(p *sluicev1.NetworkNodePolicy, out policyOutcome) metav1.Condition {
	c := metav1.Condition{Type: sluicev1.ConditionConflict, ObservedGeneration: p.Generation}
	conflicts := conflictsOf(out.findings)
	if len(conflicts) == 0 {
		c.Status, c.Reason = metav1.ConditionFalse, ReasonNoConflict
		c.Message = "no policy of higher precedence claims the VFs, RDMA mode or pool this policy asks for"
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, ReasonConflict
	c.Message = summarize(conflicts)
	return c
}

func conflictsOf(findings []Finding) []Finding {
	var out []Finding
	for _, f := range findings {
		if f.Kind != FindingInsufficientVFs {
			out = append(out, f)
		}
	}
	return out
}

// summarize counts the findings and spells out the first few.
func summarize(fs []Finding) string {
	nodes := map[string]bool{}
	for _, f := range fs {
		nodes[f.Node] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d on %d node(s): ", len(fs), len(nodes))
	for i, f := range fs {
		if i == listLimit {
			fmt.Fprintf(&b, " (and %d more)", len(fs)-listLimit)
			break
		}
		if i > 0 {
			b.WriteString(" | ")
		}
		if f.DryRun {
			b.WriteString("dry run: ")
		}
		b.WriteString(f.Message)
	}
	return b.String()
}

func listSome(names []string) string {
	if len(names) <= listLimit {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s (and %d more)", strings.Join(names[:listLimit], ", "), len(names)-listLimit)
}
