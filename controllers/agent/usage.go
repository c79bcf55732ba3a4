package agent

import (
	"context"
	"errors"
	"slices"
	"sort"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// PodRef names a pod using a VF.
type PodRef struct {
	Namespace, Name string
	// UID, when the source knows it, tells a pod from a newer one of the
	// same name.
	UID string
	// Record is set, without a name, for a VF held by an attachment
	// record that cannot be parsed: its pod, if any, is unknown, cannot be
	// evicted, and holds the VF until the record goes.
	Record string
	// TearingDown marks a pod gone from the API whose VF is still out of
	// the host namespace: the runtime has not run its sandbox's CNI DEL
	// yet. Nothing can be evicted; the VF is in use until the DEL.
	TearingDown bool
	// Claim ("namespace/name") and ClaimUID are set, without a pod name,
	// for a VF a DRA ResourceClaim holds (its hold file, package
	// nodefiles): prepared on this node, it holds the VF until the kubelet
	// unprepares it, once no pod on the node uses it. No eviction frees it
	// directly; evicting the claim's pods (listed beside it when the
	// driver moved the VF into them) leads there. Claim is "" and Record
	// the file's path for a hold that cannot be parsed.
	Claim, ClaimUID string
	// DRAHold marks a holder read from a DRA hold.
	DRAHold bool
}

// unknown is a holder the agent cannot name.
func (p PodRef) unknown() bool { return p.Name == "" && p.Record != "" }

// claim is a DRA claim holding the VF, named or not.
func (p PodRef) claim() bool { return p.DRAHold }

// noEviction is a holder no eviction can free: unknown, tearing down, or
// a DRA claim.
func (p PodRef) noEviction() bool { return p.unknown() || p.TearingDown || p.claim() }

// sameHolder tells whether p and q are the same pod, record or claim.
func (p PodRef) sameHolder(q PodRef) bool {
	return p.Namespace == q.Namespace && p.Name == q.Name && p.Record == q.Record && p.DRAHold == q.DRAHold && p.ClaimUID == q.ClaimUID
}

// String is "namespace/name".
func (p PodRef) String() string {
	switch {
	case p.claim() && p.Record != "":
		return "an unknown DRA claim (unreadable DRA hold " + p.Record + ")"
	case p.claim():
		return "DRA ResourceClaim " + p.Claim + " (prepared on this node)"
	}
	if p.unknown() {
		return "an unknown pod (unreadable attachment record " + p.Record + ")"
	}
	if p.TearingDown {
		return p.Namespace + "/" + p.Name + " (deleted; its sandbox's CNI DEL has not given the VF back yet)"
	}
	return p.Namespace + "/" + p.Name
}

// UsageSource says which pods use which VFs: VF PCI address to pods.
type UsageSource interface {
	VFUsers(ctx context.Context) (map[string][]PodRef, error)
}

// multiUsage merges several sources; a VF is used by the union of pods.
type multiUsage []UsageSource

func (m multiUsage) VFUsers(ctx context.Context) (map[string][]PodRef, error) {
	out := map[string][]PodRef{}
	var errs []error
	for _, s := range m {
		u, err := s.VFUsers(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for vf, pods := range u {
			for _, p := range pods {
				if !slices.ContainsFunc(out[vf], p.sameHolder) {
					out[vf] = append(out[vf], p)
				}
			}
		}
	}
	for vf := range out {
		sort.Slice(out[vf], func(i, j int) bool { return out[vf][i].String() < out[vf][j].String() })
	}
	return out, errors.Join(errs...)
}

// attachmentUsage reads the CNI's attachment registry: a record is a VF
// whose netdev the CNI moved into a pod.
type attachmentUsage struct{ dir nodefiles.Attachments }

func (a attachmentUsage) VFUsers(context.Context) (map[string][]PodRef, error) {
	recs, bad, err := a.dir.List()
	if err != nil {
		return nil, err
	}
	out := map[string][]PodRef{}
	for _, u := range bad {
		out[u.PCIAddress] = append(out[u.PCIAddress], PodRef{Record: u.Path})
	}
	for _, r := range recs {
		if r.PodName == "" {
			continue // no pod identity: the runtime is not Kubernetes'
		}
		out[r.PCIAddress] = append(out[r.PCIAddress], PodRef{Namespace: r.PodNamespace, Name: r.PodName, UID: r.PodUID})
	}
	return out, nil
}

// draUsage reads the DRA driver's holds: a VF with a hold is held by the
// claim it names (a PodRef with Claim set), and by the pods the driver
// moved it into (from the claim's checkpoint), which are what a drain can
// evict so that the kubelet unprepares the claim.
type draUsage struct{ claims nodefiles.DRAClaims }

func (d draUsage) VFUsers(context.Context) (map[string][]PodRef, error) {
	holds, bad, err := d.claims.Holds()
	if err != nil {
		return nil, err
	}
	out := map[string][]PodRef{}
	for _, u := range bad {
		out[u.PCIAddress] = append(out[u.PCIAddress], PodRef{Record: u.Path, DRAHold: true})
	}
	checkpoints := map[string]*nodefiles.DRAClaim{}
	for _, h := range holds {
		out[h.PCIAddress] = append(out[h.PCIAddress], PodRef{Claim: h.Claim(), ClaimUID: h.ClaimUID, DRAHold: true})
		cl, seen := checkpoints[h.ClaimUID]
		if !seen {
			// A checkpoint that is gone or unreadable names no pod: the
			// claim alone holds the VF.
			if c, ok, err := d.claims.Get(h.ClaimUID); err == nil && ok {
				cl = &c
			}
			checkpoints[h.ClaimUID] = cl
		}
		if cl == nil {
			continue
		}
		for _, cd := range cl.Devices {
			if a := cd.Attachment; cd.PCIAddress == h.PCIAddress && a != nil && a.PodName != "" {
				out[h.PCIAddress] = append(out[h.PCIAddress], PodRef{Namespace: a.PodNamespace, Name: a.PodName, UID: a.PodUID})
			}
		}
	}
	return out, nil
}
