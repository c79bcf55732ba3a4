package controllers

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// vfRange is an inclusive range of VF indices on one PF.
type vfRange struct{ first, last int32 }

func (r vfRange) overlaps(o vfRange) bool { return r.first <= o.last && o.first <= r.last }

func (r vfRange) String() string { return fmt.Sprintf("%d-%d", r.first, r.last) }

// pfNameSelector is one parsed nicSelector.pfNames entry: "ens1f0" or
// "ens1f0#0-3".
type pfNameSelector struct {
	name     string
	vfs      vfRange
	hasRange bool
}

// parsePFName splits "ens1f0#0-3" into the PF name and its VF range. The API
// schema already rejects malformed entries; this guards against objects
// written before the schema did.
func parsePFName(s sluicev1.PFName) (pfNameSelector, error) {
	name, rng, found := strings.Cut(string(s), "#")
	if name == "" {
		return pfNameSelector{}, fmt.Errorf("nicSelector.pfNames entry %q has no PF name before '#'", s)
	}
	if !found {
		return pfNameSelector{name: name}, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	first, errA := strconv.ParseInt(a, 10, 32)
	last, errB := strconv.ParseInt(b, 10, 32)
	if !ok || errA != nil || errB != nil || first < 0 || first > last {
		return pfNameSelector{}, fmt.Errorf("nicSelector.pfNames entry %q: the VF range must be first-last with first <= last, e.g. %s#0-3", s, name)
	}
	return pfNameSelector{name: name, vfs: vfRange{int32(first), int32(last)}, hasRange: true}, nil
}

// normalizeHex makes "0x15B3" and "15b3" compare equal.
func normalizeHex(s string) string {
	return strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "0x")
}

// selectPF reports whether the policy's nicSelector and linkType pick the PF
// and, if so, the VF ranges the policy claims on it (sorted, overlapping
// entries merged).
//
// Every set field must match. A PF whose link type the agent did not report
// is not picked by a policy that names a linkType. The agent reports no
// network metadata for PFs (netFilter's OpenStack networks), so a policy
// with a netFilter picks nothing rather than every PF its other fields
// match: its Ready condition says why (netFilterUnsupported).
func (p *compiledPolicy) selectPF(pf *sluicev1.InterfaceStatus) ([]vfRange, bool) {
	sel := &p.policy.Spec.NicSelector
	if sel.NetFilter != "" {
		return nil, false
	}
	if sel.Vendor != "" && normalizeHex(string(sel.Vendor)) != normalizeHex(pf.Vendor) {
		return nil, false
	}
	if sel.DeviceID != "" && normalizeHex(string(sel.DeviceID)) != normalizeHex(pf.DeviceID) {
		return nil, false
	}
	if len(sel.RootDevices) > 0 && !slices.ContainsFunc(sel.RootDevices, func(a sluicev1.PCIAddress) bool {
		return strings.EqualFold(string(a), pf.PCIAddress)
	}) {
		return nil, false
	}
	if lt := p.policy.Spec.LinkType; lt != "" && lt.Normalized() != pf.LinkType {
		return nil, false
	}
	full := vfRange{0, p.policy.Spec.NumVfs - 1}
	if len(p.pfNames) == 0 {
		return []vfRange{full}, true
	}
	var ranges []vfRange
	for _, s := range p.pfNames {
		if s.name != pf.Name {
			continue
		}
		if !s.hasRange {
			return []vfRange{full}, true
		}
		ranges = append(ranges, s.vfs)
	}
	if len(ranges) == 0 {
		return nil, false
	}
	return mergeRanges(ranges), true
}

// mergeRanges sorts ranges and joins the overlapping ones, so that one
// policy never conflicts with itself.
func mergeRanges(rs []vfRange) []vfRange {
	slices.SortFunc(rs, func(a, b vfRange) int { return int(a.first) - int(b.first) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.first <= last.last {
			last.last = max(last.last, r.last)
			continue
		}
		out = append(out, r)
	}
	return out
}

// matchesNode reports whether a nodeSelector (all pairs must match; empty
// selects every node) picks a node with these labels.
func matchesNode(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// sameSelectionInputs reports whether two discovered interface lists agree
// on everything the merge looks at (the PF identity, IDs, link type and
// VF capacity), so that VF-level status changes do not cause a re-merge.
func sameSelectionInputs(a, b []sluicev1.InterfaceStatus) bool {
	return slices.EqualFunc(a, b, func(x, y sluicev1.InterfaceStatus) bool {
		return x.Name == y.Name && x.PCIAddress == y.PCIAddress && x.Vendor == y.Vendor &&
			x.DeviceID == y.DeviceID && x.LinkType == y.LinkType && x.TotalVfs == y.TotalVfs
	})
}

// netFilterUnsupported is the Ready message of a policy with a netFilter.
func netFilterUnsupported(filter string) string {
	return fmt.Sprintf("spec.nicSelector.netFilter %q selects no PF: sluice's node agent reports no network metadata (OpenStack networks) for PFs, "+
		"and a filter it cannot evaluate must not widen the selection; remove netFilter and select the PFs with vendor, deviceID, pfNames or rootDevices", filter)
}
