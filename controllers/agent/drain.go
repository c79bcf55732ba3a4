package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// liveUsers reads the usage source and keeps the pods that still exist and
// run on this node: a record left behind by a pod that is gone holds no VF,
// and a pod of the same name elsewhere (a StatefulSet's pod created again
// on another node) or with another UID is not the one the record names.
// Except while its VF is still out of the host namespace (stillOut): the
// pod object goes before the runtime tears the sandbox down (grace period
// 0, force deletion), and changing a VF, or resetting its PF, while its
// DEL is on its way races the driver (igbvf deadlocked under rtnl when its
// PF's MTU changed during a DEL). Such a pod is kept, TearingDown.
func liveUsers(ctx context.Context, pods podReader, src UsageSource, node string, stillOut func(vf string) bool) (vfUsers, error) {
	raw, err := src.VFUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("read which pods use VFs: %w", err)
	}
	alive := map[types.NamespacedName]bool{}
	out := vfUsers{}
	for vf, refs := range raw {
		for _, p := range refs {
			if p.unknown() || p.claim() {
				out[vf] = appendPod(out[vf], p) // nothing to ask the API
				continue
			}
			key := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
			live, seen := alive[key]
			if !seen {
				pod, err := pods.get(ctx, p, node)
				if err != nil {
					return nil, fmt.Errorf("pod using VF %s: %w", vf, err)
				}
				live = pod != nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
				alive[key] = live
			}
			switch {
			case live:
				out[vf] = appendPod(out[vf], p)
			case stillOut != nil && stillOut(vf):
				p.TearingDown = true
				out[vf] = appendPod(out[vf], p)
			}
		}
	}
	for vf := range out {
		sortPods(out[vf])
	}
	return out, nil
}

// evictResult is what one round of evictions achieved.
type evictResult struct {
	// pending are pods still there (terminating, or eviction refused).
	pending []PodRef
	// blocked says why an eviction was refused (a PodDisruptionBudget).
	blocked []string
}

// samePod reports whether the API's pod is the one ref names on this node:
// bound to node (a pod not yet bound holds no VF here) and, when ref knows
// its UID, with that UID.
func samePod(pod *corev1.Pod, ref PodRef, node string) bool {
	return pod.Spec.NodeName == node && (ref.UID == "" || string(pod.UID) == ref.UID)
}

// evictor posts one Eviction, with a precondition on the pod's UID: the
// API server refuses it (409) if the name now belongs to another pod.
type evictor interface {
	Evict(ctx context.Context, namespace, name string, uid types.UID) error
}

// restEvictor posts Evictions without client-go's transparent retries: a
// 429 from a PodDisruptionBudget carries Retry-After, which client-go
// would otherwise honour up to ten times inside one call, blocking the
// sync for minutes instead of reporting the refusal.
type restEvictor struct{ rc rest.Interface }

func (e restEvictor) Evict(ctx context.Context, namespace, name string, uid types.UID) error {
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}}
	return e.rc.Post().AbsPath("/api/v1").Namespace(namespace).Resource("pods").Name(name).
		SubResource("eviction").Body(ev).MaxRetries(0).Do(ctx).Error()
}

// evict asks the Eviction API to evict each pod still there on node, so
// that PodDisruptionBudgets are respected: an eviction they refuse (429) is
// reported and retried on the next sync. A pod of the name on another node,
// or of another UID, is not touched.
func evict(ctx context.Context, reader podReader, ev evictor, pods []PodRef, node string) (evictResult, error) {
	var res evictResult
	var errs []error
	for _, p := range pods {
		if p.noEviction() {
			res.pending = append(res.pending, p) // no eviction reaches it
			continue
		}
		pod, err := reader.get(ctx, p, node)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if pod == nil {
			continue // the VF's pod is gone (the name may be another pod's now)
		}
		res.pending = append(res.pending, p)
		if pod.DeletionTimestamp != nil {
			continue // on its way out
		}
		err = ev.Evict(ctx, p.Namespace, p.Name, pod.UID)
		switch {
		case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
		case apierrors.IsTooManyRequests(err):
			res.blocked = append(res.blocked, fmt.Sprintf("%s: eviction refused (%s)", p, strings.TrimSpace(apiMessage(err))))
		default:
			errs = append(errs, fmt.Errorf("evict pod %s: %w", p, err))
		}
	}
	return res, errors.Join(errs...)
}

func apiMessage(err error) string {
	var s apierrors.APIStatus
	if errors.As(err, &s) {
		return s.Status().Message
	}
	return err.Error()
}

// drain works towards applying the held PF changes: it takes a drain slot
// (or reports Waiting) and evicts the pods using the VFs they disrupt
// (reporting Draining, and why an eviction is refused). gone reports that
// every such pod is gone already, so the changes can be applied now.
func (s *syncRun) drain(ctx context.Context, held []*pfPlan) (gone bool, err error) {
	r := s.r
	st := &s.nns.Status
	var pods []PodRef
	var whys []string
	for _, p := range held {
		for _, pod := range p.pods() {
			pods = appendPod(pods, pod)
		}
		for _, d := range p.disrupts {
			if !slices.Contains(whys, d.why) {
				whys = append(whys, d.why)
			}
		}
	}
	sortPods(pods)
	why := "VFs in use must be freed: " + strings.Join(whys, "; ")
	names := podNames(pods)
	// Stop the device plugin offering the held PFs' VFs, so that no new pod
	// takes one while the others are evicted.
	var addrs []string
	for _, p := range held {
		addrs = append(addrs, p.address)
	}
	if changed, err := r.files.closeGate(addrs); err != nil {
		return false, err
	} else if changed {
		s.rescan()
	}
	s.inProgress(ctx)
	if !slices.ContainsFunc(pods, func(p PodRef) bool { return !p.noEviction() }) {
		// No eviction can free these VFs: do not take a drain slot
		// another node could use.
		var hints []string
		if slices.ContainsFunc(pods, func(p PodRef) bool { return p.TearingDown }) {
			hints = append(hints, "their runtime has still to run the CNI DEL")
		}
		if slices.ContainsFunc(pods, func(p PodRef) bool { return p.claim() && !p.unknown() }) {
			hints = append(hints, "a DRA claim holds its VFs until the kubelet unprepares it, once no pod on the node uses it: delete the claim's pods")
		}
		if slices.ContainsFunc(pods, PodRef.unknown) {
			hints = append(hints, "if nothing uses those VFs, delete the files")
		}
		hint := strings.Join(hints, "; ")
		st.Drain = &sluicev1.DrainStatus{State: sluicev1.DrainWaiting, Pods: names, Reason: fmt.Sprintf(
			"%s; held by %s: %s", why, podList(pods), hint)}
		return false, nil
	}

	lease, holders, err := r.slots.acquire(ctx)
	if err != nil {
		return false, err
	}
	if lease == nil {
		slices.Sort(holders)
		st.Drain = &sluicev1.DrainStatus{State: sluicev1.DrainWaiting, Pods: names, Reason: fmt.Sprintf(
			"%s; waiting for a drain slot: none of the %d is free (%s; --max-unavailable=%d)", why, r.slots.n, strings.Join(holders, ", "), r.slots.n)}
		return false, nil
	}
	if st.Drain == nil || st.Drain.State != sluicev1.DrainDraining {
		s.event(corev1.EventTypeNormal, "Draining", "Evict", fmt.Sprintf("evicting %s: %s", podList(pods), why))
	}
	res, evictErr := evict(ctx, r.pods, r.evictor, pods, r.node)
	reason := fmt.Sprintf("%s; evicting %s", why, podList(pods))
	if len(res.blocked) > 0 {
		reason += fmt.Sprintf("; %s; retrying every %s", strings.Join(res.blocked, "; "), r.retry)
	}
	st.Drain = &sluicev1.DrainStatus{State: sluicev1.DrainDraining, Reason: reason, Pods: names}
	if evictErr != nil {
		return false, evictErr
	}
	if len(res.pending) == 0 {
		return true, nil
	}
	if took := r.now().Sub(since(lease)); !since(lease).IsZero() && took > r.drainTimeout {
		return false, fmt.Errorf("drain: pods %s still on the node after %s (limit %s): %s",
			podList(res.pending), took.Round(time.Second), r.drainTimeout, strings.Join(append(res.blocked, whys...), "; "))
	}
	return false, nil
}

// drainDone releases the drain slot once nothing waits for a drain, and
// reports Done (pods were evicted) or None (the change needed no drain).
func (s *syncRun) drainDone(ctx context.Context) error {
	st := &s.nns.Status
	wasDraining := st.Drain != nil && (st.Drain.State == sluicev1.DrainWaiting || st.Drain.State == sluicev1.DrainDraining)
	if wasDraining {
		lease, err := s.r.slots.held(ctx)
		if err != nil {
			return err
		}
		if lease != nil {
			if err := s.r.slots.release(ctx, lease); err != nil {
				return err
			}
		}
		if st.Drain.State == sluicev1.DrainDraining {
			st.Drain = &sluicev1.DrainStatus{State: sluicev1.DrainDone, Pods: st.Drain.Pods,
				Reason: fmt.Sprintf("evicted %d pod(s) and applied the change; drain slot released", len(st.Drain.Pods))}
		} else {
			st.Drain = &sluicev1.DrainStatus{State: sluicev1.DrainNone, Reason: "the pods using the affected VFs went away before a drain slot was free"}
		}
		return nil
	}
	if s.applied {
		st.Drain = &sluicev1.DrainStatus{State: sluicev1.DrainNone, Reason: "no drain needed: the change touched no VF in use"}
	}
	return nil
}
