package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// touchedVFs are the VFs a pass of p changes: all of the PF's when their
// number changes (they are destroyed), else those with a step.
func (s *syncRun) touchedVFs(p *pfPlan) []string {
	var out []string
	if p.numVFs != nil {
		for i := range s.snap.PFs {
			if s.snap.PFs[i].PCIAddress != p.address {
				continue
			}
			for _, vf := range s.snap.PFs[i].VFs {
				out = append(out, vf.PCIAddress)
			}
		}
		return out
	}
	for _, st := range p.vfs {
		out = append(out, st.address)
	}
	return out
}

// lockTouched takes the CNI's lock of every VF the pass changes, so that
// no CNI command runs on them while they change; release gives them back.
// A VF kept locked past the timeout fails the PF for this pass.
func (s *syncRun) lockTouched(p *pfPlan) (release func(), err error) {
	var held []*nodefiles.VFLock
	release = func() {
		for _, l := range held {
			l.Unlock()
		}
	}
	for _, vf := range s.touchedVFs(p) {
		l, err := nodefiles.LockVF(s.r.lockDir, vf, s.r.lockTimeout)
		if err != nil {
			release()
			return nil, fmt.Errorf("PF %s: lock VF %s before changing it: %w", p.label, vf, err)
		}
		held = append(held, l)
	}
	return release, nil
}

// usersUnderLock reads the VFs' users again, with the VFs locked: the
// plan's reading came before the gate closed, and a pod admitted in
// between may have run its ADD since. It returns the pods on VFs the pass
// changes that the plan did not know of (a change the plan made knowing
// its pods, such as trust, goes on), and keeps the fresh reading for the
// next plan, which decides whether the change needs them gone.
func (s *syncRun) usersUnderLock(ctx context.Context, p *pfPlan) ([]PodRef, error) {
	touched := s.touchedVFs(p)
	if len(touched) == 0 {
		return nil, nil
	}
	users, err := liveUsers(ctx, s.r.client, s.r.usage, s.r.node)
	if err != nil {
		return nil, err
	}
	planned := s.users
	s.users = users
	var pods []PodRef
	for _, vf := range touched {
		for _, pod := range users[vf] {
			if !slices.ContainsFunc(planned[vf], func(q PodRef) bool { return q.String() == pod.String() && q.UID == pod.UID }) {
				pods = appendPod(pods, pod)
			}
		}
	}
	return pods, nil
}
