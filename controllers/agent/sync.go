package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
)

// maxPasses bounds the discover-plan-apply passes of one sync: a VF count
// change takes one pass and the VF settings on the new VFs another.
const maxPasses = 4

// syncRun is one sync of the node: it reads the host, applies what it may
// and leaves the outcome in nns.Status.
type syncRun struct {
	r   *Reconciler
	nns *sluicev1.NodeNetworkState
	// base is the status as last written.
	base *sluicev1.NodeNetworkState
	// spec and gen are the spec this sync applies: a status write returns
	// the object as stored, whose spec may already be newer.
	spec *sluicev1.NodeNetworkStateSpec
	gen  int64
	errs []error

	snap  *host.Snapshot
	rec   *nodeRecord
	dirty bool // rec changed
	users vfUsers
	plan  *nodePlan
	// failed are PFs whose apply failed in this sync.
	failed map[string]error
	// applied: some host change was made in this sync.
	applied bool
}

// run syncs and returns when to sync again.
func (s *syncRun) run(ctx context.Context) time.Duration {
	r := s.r
	s.failed = map[string]error{}
	if err := s.discover(ctx); err != nil {
		return s.fail(err)
	}
	rec, err := r.state.load()
	if err != nil {
		return s.fail(err)
	}
	s.rec = rec
	s.sweepRecords()
	if s.users, err = liveUsers(ctx, r.pods, r.usage, r.node, s.vfStillOut); err != nil {
		return s.fail(err)
	}
	s.replan()
	drifted := map[string]*pfPlan{}
	for _, p := range s.plan.pfs {
		if p.drifted {
			drifted[p.address] = p
		}
	}

	var rdmaErr error
	if m := s.plan.rdmaMode; m != nil {
		s.inProgress(ctx)
		if err := r.host.SetRDMANetnsMode(m.to); err != nil {
			rdmaErr = fmt.Errorf("set RDMA netns mode %s -> %s (asked by the policies' spec.rdma.mode): %w", orNone(m.from), m.to, err)
		} else if err := s.discover(ctx); err != nil {
			return s.fail(err)
		}
		s.replan()
	}

	// Apply what disturbs no pod; then drain for the rest, and when the
	// pods are gone already, apply that too.
	var held []*pfPlan
	for round := 0; round < 2; round++ {
		if err := s.converge(ctx); err != nil {
			return s.fail(err)
		}
		held = s.heldBack()
		if len(held) == 0 {
			break
		}
		gone, err := s.drain(ctx, held)
		if err != nil {
			s.errs = append(s.errs, err)
		}
		if !gone {
			break
		}
		if s.users, err = liveUsers(ctx, r.pods, r.usage, r.node, s.vfStillOut); err != nil {
			return s.fail(err)
		}
		s.replan()
		held = nil
	}
	if len(held) == 0 {
		if err := s.drainDone(ctx); err != nil {
			s.errs = append(s.errs, err)
		}
	}

	for _, p := range s.plan.pfs {
		switch {
		case p.err != nil:
			s.errs = append(s.errs, p.err)
		case s.failed[p.address] != nil:
			s.errs = append(s.errs, s.failed[p.address])
		case p.changes() && len(p.disrupts) == 0:
			s.errs = append(s.errs, fmt.Errorf("PF %s: still differs from the spec after %d passes: %s", p.label, maxPasses, p.line()))
		}
	}
	if rdmaErr != nil {
		s.errs = append(s.errs, rdmaErr)
	}

	s.remember(ctx)
	if err := s.publish(); err != nil {
		s.errs = append(s.errs, err)
	}
	s.dryRun()
	s.report(ctx, held, drifted)
	if len(s.errs) > 0 || len(held) > 0 {
		return r.retry
	}
	return r.resync
}

// discover reads the host and puts it in status.interfaces.
func (s *syncRun) discover(ctx context.Context) error {
	snap, err := s.r.host.Discover(ctx)
	if err != nil {
		return fmt.Errorf("discover the node's NICs: %w", err)
	}
	s.snap = snap
	if s.r.linkFilter != nil {
		s.r.linkFilter.Update(snap)
	}
	st := &s.nns.Status
	if ifs := interfacesStatus(snap); !equality.Semantic.DeepEqual(ifs, st.Interfaces) {
		st.Interfaces = ifs
	}
	st.RDMAMode = rdmaMode(snap.RDMANetnsMode)
	return nil
}

func (s *syncRun) replan() {
	spec := s.spec
	s.plan = planNode(spec.Interfaces, spec.RDMAMode, s.snap, s.rec, s.users)
}

// heldBack are the PFs whose changes wait for pods to leave their VFs.
func (s *syncRun) heldBack() []*pfPlan {
	var out []*pfPlan
	for _, p := range s.plan.changing() {
		if len(p.disrupts) > 0 && s.failed[p.address] == nil {
			out = append(out, p)
		}
	}
	return out
}

// converge applies, pass after pass, the PF changes that disturb no pod,
// rediscovering the host after each pass, until nothing is left to do, a
// PF fails or maxPasses is reached.
func (s *syncRun) converge(ctx context.Context) error {
	for range maxPasses {
		var work []*pfPlan
		var addrs []string
		for _, p := range s.plan.changing() {
			if len(p.disrupts) == 0 && s.failed[p.address] == nil {
				work = append(work, p)
				addrs = append(addrs, p.address)
			}
		}
		if len(work) == 0 {
			return nil
		}
		// The device plugin stops offering a PF's VFs before they change.
		if changed, err := s.r.files.closeGate(addrs); err != nil {
			return err
		} else if changed {
			s.rescan()
		}
		s.inProgress(ctx)
		if err := s.recordBefore(work); err != nil {
			return err
		}
		for _, p := range work {
			vfs := s.touchedVFs(p)
			release, err := s.lockVFs(p, vfs)
			if err != nil {
				s.failed[p.address] = err
				continue
			}
			if pods, err := s.usersUnderLock(ctx, vfs); err != nil || len(pods) > 0 {
				release()
				if err != nil {
					return err
				}
				// A pod got one of the VFs between the plan and the gate's
				// closing: the next plan holds the PF for a drain.
				ctrl.LoggerFrom(ctx).Info("a pod or a DRA claim took a VF this change touches; holding the change for a drain", "pf", p.label, "pods", pods)
				continue
			}
			ctrl.LoggerFrom(ctx).Info("applying", "pf", p.label, "change", p.line())
			s.applied = true
			if err := applyPF(ctx, s.r.host, p); err != nil {
				s.failed[p.address] = err
			}
			release()
		}
		if err := s.discover(ctx); err != nil {
			return err
		}
		s.replan()
	}
	return nil
}

// recordBefore notes in the state file, before the first change, that
// sluice configures these PFs (and their MTU before it touched them).
func (s *syncRun) recordBefore(work []*pfPlan) error {
	changed := false
	for _, p := range work {
		r := s.rec.PFs[p.address]
		if r == nil {
			r = &pfRecord{}
			s.rec.PFs[p.address] = r
			changed = true
		}
		if p.pfMTU != nil && !p.remove && r.OriginalMTU == 0 {
			r.OriginalMTU = p.pfMTU.from
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.r.state.save(s.rec)
}

// remember records the verified PFs' spec and forgets PFs back at zero VFs.
func (s *syncRun) remember(ctx context.Context) {
	changed := false
	specs := map[string]*sluicev1.InterfaceSpec{}
	for i := range s.spec.Interfaces {
		specs[string(s.spec.Interfaces[i].PCIAddress)] = &s.spec.Interfaces[i]
	}
	for _, addr := range s.plan.ready {
		r := s.rec.PFs[addr]
		if r == nil {
			r = &pfRecord{}
			s.rec.PFs[addr] = r
			changed = true
		}
		if r.Applied == nil || !equality.Semantic.DeepEqual(*r.Applied, *specs[addr]) {
			r.Applied = specs[addr].DeepCopy()
			changed = true
		}
	}
	for _, addr := range s.plan.forget {
		ctrl.LoggerFrom(ctx).Info("PF left the spec and has nothing left to undo: no longer sluice's", "pf", addr)
		delete(s.rec.PFs, addr)
		changed = true
	}
	if changed {
		if err := s.r.state.save(s.rec); err != nil {
			s.errs = append(s.errs, err)
		}
	}
}

// publish opens the gate for the verified PFs and writes the pools. A PF
// with RDMA groups stays closed while the RDMA netns mode is not as asked.
func (s *syncRun) publish() error {
	ready := slices.Clone(s.plan.ready)
	if s.plan.rdmaMode != nil {
		ready = slices.DeleteFunc(ready, func(addr string) bool { return s.hasRDMAGroup(addr) })
	}
	gateChanged, err := s.r.files.writeGate(s.gen, ready)
	if err != nil {
		return err
	}
	s.r.metrics.configured(s.spec, ready)
	poolsChanged, err := s.r.files.writePools(s.spec.Pools, s.spec.DRAPools)
	if err != nil {
		return err
	}
	if gateChanged || poolsChanged {
		s.rescan()
	}
	return nil
}

func (s *syncRun) hasRDMAGroup(addr string) bool {
	for _, in := range s.spec.Interfaces {
		if string(in.PCIAddress) == addr {
			return slices.ContainsFunc(in.VFGroups, func(g sluicev1.VFGroup) bool { return g.RDMA })
		}
	}
	return false
}

func (s *syncRun) rescan() {
	if s.r.rescan != nil {
		s.r.rescan()
	}
}

// dryRun reports what applying spec.dryRun would do, from the host as it
// is now; nothing is applied and nobody evicted.
func (s *syncRun) dryRun() {
	st := &s.nns.Status
	d := s.spec.DryRun
	if d == nil {
		st.DryRun = nil
		return
	}
	p := planNode(d.Interfaces, s.spec.RDMAMode, s.snap, s.rec, s.users)
	pods := p.drainPods()
	res := &sluicev1.DryRunResult{
		Policies:      append([]string{}, d.Policies...),
		DrainRequired: len(pods) > 0,
		PodsToEvict:   podNames(pods),
		Changes:       p.lines(),
	}
	if !equality.Semantic.DeepEqual(res, st.DryRun) {
		st.DryRun = res
	}
}

// inProgress marks the status InProgress and writes it at once, before the
// host is touched, so that watchers see the sync start.
func (s *syncRun) inProgress(ctx context.Context) {
	st := &s.nns.Status
	if st.SyncStatus == sluicev1.SyncInProgress && st.ObservedGeneration == s.gen {
		return
	}
	st.SyncStatus = sluicev1.SyncInProgress
	st.ObservedGeneration = s.gen
	s.setReady(metav1ConditionFalse, ReasonApplying, "applying the spec to the host")
	if err := s.flush(ctx); apierrors.IsConflict(err) {
		// Started from an outdated copy: the sync goes on, and its final
		// write, refused too, brings a sync from the current copy.
		ctrl.LoggerFrom(ctx).V(1).Info("InProgress not reported: the cached copy is outdated", "error", err.Error())
	} else if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "report InProgress")
	}
}

// fail ends a sync that could not even read its inputs.
func (s *syncRun) fail(err error) time.Duration {
	s.errs = append(s.errs, err)
	s.report(context.Background(), nil, nil)
	return s.r.retry
}

// flush writes the status when it changed since the last write. The merge
// patch carries only what differs from s.base, which may come from a cache
// that lags the server (the previous sync's last write not in it yet); the
// resourceVersion makes such a patch fail (Conflict, the sync is requeued)
// instead of merging this sync's observedGeneration into another sync's
// syncStatus.
func (s *syncRun) flush(ctx context.Context) error {
	if equality.Semantic.DeepEqual(s.base.Status, s.nns.Status) {
		return nil
	}
	patch := client.MergeFromWithOptions(s.base, client.MergeFromWithOptimisticLock{})
	if err := s.r.client.Status().Patch(ctx, s.nns, patch); err != nil {
		return fmt.Errorf("update NodeNetworkState %s status: %w", s.nns.Name, err)
	}
	s.base = s.nns.DeepCopy()
	return nil
}

// report sets syncStatus, lastSyncError and the conditions.
func (s *syncRun) report(ctx context.Context, held []*pfPlan, drifted map[string]*pfPlan) {
	st := &s.nns.Status
	prevErr := st.LastSyncError
	st.ObservedGeneration = s.gen
	switch {
	case len(s.errs) > 0:
		st.SyncStatus = sluicev1.SyncFailed
		st.LastSyncError = joinErrors(s.errs)
		s.setReady(metav1ConditionFalse, ReasonSyncFailed, st.LastSyncError)
		if st.LastSyncError != prevErr {
			s.event(corev1.EventTypeWarning, ReasonSyncFailed, "Sync", st.LastSyncError)
		}
	case len(held) > 0:
		st.SyncStatus = sluicev1.SyncInProgress
		st.LastSyncError = ""
		reason := ReasonDraining
		if st.Drain != nil && st.Drain.State == sluicev1.DrainWaiting {
			reason = ReasonWaitingForDrainSlot
		}
		msg := "draining"
		if st.Drain != nil {
			msg = st.Drain.Reason
		}
		s.setReady(metav1ConditionFalse, reason, msg)
	default:
		st.SyncStatus = sluicev1.SyncSucceeded
		st.LastSyncError = ""
		s.setReady(metav1ConditionTrue, ReasonApplied, fmt.Sprintf("%d PF(s) configured as the spec asks", len(s.plan.ready)))
	}
	s.reportDrift(drifted)
}

// reportDrift sets Degraded: a PF that was applied drifted on the host and
// this sync could not put it back.
func (s *syncRun) reportDrift(drifted map[string]*pfPlan) {
	var broken, repaired []string
	for addr, was := range drifted {
		if s.plan == nil || slices.Contains(s.plan.ready, addr) {
			repaired = append(repaired, was.label)
			continue
		}
		why := "not repaired yet"
		if err := s.failed[addr]; err != nil {
			why = err.Error()
		} else if s.plan != nil {
			for _, p := range s.plan.pfs {
				if p.address == addr && p.err != nil {
					why = p.err.Error()
				}
			}
		}
		broken = append(broken, fmt.Sprintf("PF %s drifted from the spec of policy %s (%s) and could not be repaired: %s",
			was.label, strings.Join(was.policies(), ", "), was.line(), why))
	}
	slices.Sort(broken)
	slices.Sort(repaired)
	if len(repaired) > 0 && len(broken) == 0 {
		s.event(corev1.EventTypeNormal, "DriftRepaired", "Repair", "repaired drift on PF "+strings.Join(repaired, ", "))
	}
	if len(broken) > 0 {
		s.setCondition(sluicev1.ConditionDegraded, metav1ConditionTrue, ReasonDriftNotRepaired, strings.Join(broken, "; "))
		return
	}
	// A failure elsewhere keeps an unrepaired drift reported.
	if c := findCondition(s.nns.Status.Conditions, sluicev1.ConditionDegraded); c != nil && c.Status == metav1ConditionTrue && len(s.errs) > 0 && len(repaired) == 0 {
		return
	}
	s.setCondition(sluicev1.ConditionDegraded, metav1ConditionFalse, ReasonAsSpecified, "the host matches the spec or is being brought to it")
}

func (s *syncRun) event(typ, reason, action, note string) {
	if s.r.recorder != nil {
		s.r.recorder.Eventf(s.nns, nil, typ, reason, action, "%s", note)
	}
}

func joinErrors(errs []error) string {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return strings.Join(msgs, "; ")
}

// result names the sync's outcome for the metrics.
func (s *syncRun) result() string {
	switch s.nns.Status.SyncStatus {
	case sluicev1.SyncSucceeded:
		return "succeeded"
	case sluicev1.SyncFailed:
		return "failed"
	}
	return "waiting"
}

// vfStillOut reports whether the last discovery saw VF vf bound to a
// network driver with no netdev in the host namespace: moved into a pod's
// namespace, and not given back yet.
func (s *syncRun) vfStillOut(vf string) bool {
	if s.snap == nil {
		return false
	}
	_, v := s.snap.VFByAddress(vf)
	return v != nil && v.Driver != "" && v.Driver != host.VfioPci && v.Netdev == ""
}
