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
}

// unknown is a holder the agent cannot name.
func (p PodRef) unknown() bool { return p.Name == "" && p.Record != "" }

// noEviction is a holder no eviction can free: unknown, or tearing down.
func (p PodRef) noEviction() bool { return p.unknown() || p.TearingDown }

// String is "namespace/name".
func (p PodRef) String() string {
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
				if !slices.ContainsFunc(out[vf], func(q PodRef) bool { return q.Namespace == p.Namespace && q.Name == p.Name && q.Record == p.Record }) {
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
