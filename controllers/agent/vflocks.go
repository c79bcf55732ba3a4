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
		if pf := s.snap.PFByAddress(p.address); pf != nil {
			for _, vf := range pf.VFs {
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

// lockVFs takes the CNI's lock of each of p's VFs in vfs, so that no CNI
// command runs on them while they change; release gives them back. A VF
// kept locked past the timeout fails the PF for this pass.
func (s *syncRun) lockVFs(p *pfPlan, vfs []string) (release func(), err error) {
	var held []*nodefiles.VFLock
	release = func() {
		for _, l := range held {
			l.Unlock()
		}
	}
	for _, vf := range vfs {
		l, err := nodefiles.LockVF(s.r.lockDir, vf, s.r.lockTimeout)
		if err != nil {
			release()
			return nil, fmt.Errorf("PF %s: lock VF %s before changing it: %w", p.label, vf, err)
		}
		held = append(held, l)
	}
	return release, nil
}

// usersUnderLock reads the VFs' users again, with vfs locked: the plan's
// reading came before the gate closed, and a pod admitted in between may
// have run its ADD since. It returns the pods on vfs that the plan did not
// know of (a change the plan made knowing its pods, such as trust, goes
// on), and keeps the fresh reading for the next plan, which decides
// whether the change needs them gone.
func (s *syncRun) usersUnderLock(ctx context.Context, vfs []string) ([]PodRef, error) {
	if len(vfs) == 0 {
		return nil, nil
	}
	users, err := liveUsers(ctx, s.r.pods, s.r.usage, s.r.node, s.vfStillOut)
	if err != nil {
		return nil, err
	}
	planned := s.users
	s.users = users
	var pods []PodRef
	for _, vf := range vfs {
		for _, pod := range users[vf] {
			if !slices.Contains(planned[vf], pod) {
				pods = appendPod(pods, pod)
			}
		}
	}
	return pods, nil
}
