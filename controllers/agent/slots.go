package agent

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-net/sluice/api/drainslot"
)

// drainSlots limits how many nodes drain at once, cluster-wide: a node
// drains only while it holds one of max-unavailable Leases in the agents'
// namespace (package drainslot). The operator creates them; the agent only
// reads and updates them. A holder renews its Lease on every sync while it
// drains; a Lease not renewed for its duration (the agent died) is free
// again.
type drainSlots struct {
	c        client.Client
	ns       string
	n        int
	holder   string
	duration time.Duration
	now      func() time.Time
}

func (s *drainSlots) name(i int) string { return drainslot.Name(i) }

// acquire returns the slot this node holds, renewed, taking a free one if
// it holds none. Without a free slot it returns nil and, per slot, why it
// is not free.
func (s *drainSlots) acquire(ctx context.Context) (*coordinationv1.Lease, []string, error) {
	leases := make([]*coordinationv1.Lease, s.n)
	var holders []string
	for i := range s.n {
		l := &coordinationv1.Lease{}
		err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: s.name(i)}, l)
		switch {
		case apierrors.IsNotFound(err):
			holders = append(holders, fmt.Sprintf("%s does not exist in %s (the operator creates the drain slots: is it running with the same --max-unavailable?)", s.name(i), s.ns))
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("get drain slot %s/%s: %w", s.ns, s.name(i), err)
		}
		if ptr.Deref(l.Spec.HolderIdentity, "") == s.holder {
			return l, nil, s.renew(ctx, l)
		}
		leases[i] = l
	}
	now := s.now()
	for i, l := range leases {
		if l == nil {
			continue
		}
		if !s.free(l, now) {
			holders = append(holders, s.name(i)+" held by "+ptr.Deref(l.Spec.HolderIdentity, ""))
			continue
		}
		s.take(l, now)
		err := s.c.Update(ctx, l)
		switch {
		case err == nil:
			return l, nil, nil
		case apierrors.IsConflict(err):
			holders = append(holders, s.name(i)+" taken just now by another node")
		default:
			return nil, nil, fmt.Errorf("take drain slot %s/%s: %w", s.ns, s.name(i), err)
		}
	}
	return nil, holders, nil
}

// held returns the slot this node holds, nil if none.
func (s *drainSlots) held(ctx context.Context) (*coordinationv1.Lease, error) {
	for i := range s.n {
		l := &coordinationv1.Lease{}
		err := s.c.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: s.name(i)}, l)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get drain slot %s/%s: %w", s.ns, s.name(i), err)
		}
		if ptr.Deref(l.Spec.HolderIdentity, "") == s.holder {
			return l, nil
		}
	}
	return nil, nil
}

// release frees a slot this node holds.
func (s *drainSlots) release(ctx context.Context, l *coordinationv1.Lease) error {
	l.Spec.HolderIdentity = nil
	l.Spec.AcquireTime = nil
	l.Spec.RenewTime = nil
	if err := s.c.Update(ctx, l); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("release drain slot %s/%s: %w", l.Namespace, l.Name, err)
	}
	return nil
}

func (s *drainSlots) renew(ctx context.Context, l *coordinationv1.Lease) error {
	l.Spec.RenewTime = &metav1.MicroTime{Time: s.now()}
	l.Spec.LeaseDurationSeconds = ptr.To(int32(s.duration / time.Second))
	if err := s.c.Update(ctx, l); err != nil {
		return fmt.Errorf("renew drain slot %s/%s: %w", l.Namespace, l.Name, err)
	}
	return nil
}

func (s *drainSlots) take(l *coordinationv1.Lease, now time.Time) {
	t := &metav1.MicroTime{Time: now}
	l.Spec.HolderIdentity = ptr.To(s.holder)
	l.Spec.AcquireTime, l.Spec.RenewTime = t, t
	l.Spec.LeaseDurationSeconds = ptr.To(int32(s.duration / time.Second))
	l.Spec.LeaseTransitions = ptr.To(ptr.Deref(l.Spec.LeaseTransitions, 0) + 1)
}

// free: nobody holds the Lease, or its holder stopped renewing it.
func (s *drainSlots) free(l *coordinationv1.Lease, now time.Time) bool {
	if ptr.Deref(l.Spec.HolderIdentity, "") == "" || l.Spec.RenewTime == nil {
		return true
	}
	d := time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second
	return now.After(l.Spec.RenewTime.Add(d))
}

// since is when this node took the slot.
func since(l *coordinationv1.Lease) time.Time {
	if l.Spec.AcquireTime != nil {
		return l.Spec.AcquireTime.Time
	}
	return time.Time{}
}
