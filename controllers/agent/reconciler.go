package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
)

// nodeHost is the host layer as the agent uses it: discovery and the
// configuration steps. *host.Host is one.
type nodeHost interface {
	configurer
	Discover(ctx context.Context) (*host.Snapshot, error)
}

// eventRecorder records events on the NodeNetworkState.
type eventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Reconciler keeps one node as its NodeNetworkState asks. Its only key is
// the node's name; it runs on spec changes, every resync period and when
// the host reports link changes.
type Reconciler struct {
	client   client.Client
	pods     podReader
	evictor  evictor
	host     nodeHost
	usage    UsageSource
	state    stateFile
	files    deviceFiles
	slots    *drainSlots
	recorder eventRecorder
	node     string
	// lockDir and lockTimeout: the CNI's per-VF locks (vflocks.go).
	lockDir     string
	lockTimeout time.Duration
	// attachments is the CNI's registry (records.go); its root is empty
	// without Options.AttachmentsDir.
	attachments nodefiles.Attachments
	// retry is the requeue while a sync failed or waits for a drain,
	// resync the one otherwise.
	retry, resync, drainTimeout time.Duration
	rescan                      func()
	now                         func() time.Time
	// metrics is nil without Options.Metrics.
	metrics *agentMetrics
	// linkFilter, when links are watched, learns each discovery's PFs and
	// VFs: the links whose events bring a sync.
	linkFilter *host.LinkFilter
}

func newReconciler(c client.Client, ev evictor, h nodeHost, usage UsageSource, rec eventRecorder, o Options) *Reconciler {
	return &Reconciler{
		client: c, pods: podReader{cache: c, api: c}, evictor: ev, host: h, usage: usage, recorder: rec, node: o.NodeName,
		state: newStateFile(o.StateDir),
		files: deviceFiles{gatePath: o.GatePath, configPath: o.DevicePluginConfig, prefix: o.ResourcePrefix},
		slots: &drainSlots{c: c, ns: o.Namespace, n: o.MaxUnavailable, holder: o.NodeName, duration: o.LeaseDuration, now: time.Now},
		retry: o.RetryPeriod, resync: o.ResyncPeriod, drainTimeout: o.DrainTimeout,
		rescan: o.Rescan, now: time.Now, lockDir: o.LockDir, lockTimeout: o.LockTimeout,
		attachments: nodefiles.NewAttachments(o.AttachmentsDir),
	}
}

// Reconcile syncs the node once and reports the outcome in the status.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if req.Name != r.node {
		return reconcile.Result{}, nil
	}
	nns, err := r.nodeState(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	s := &syncRun{r: r, nns: nns, base: nns.DeepCopy(), spec: nns.Spec.DeepCopy(), gen: nns.Generation}
	start := r.now()
	requeue := s.run(ctx)
	r.metrics.synced(r.now().Sub(start), s.result())
	if err := s.flush(ctx); err != nil {
		if ctx.Err() != nil {
			return reconcile.Result{}, nil // stopping: the next start syncs again
		}
		if apierrors.IsConflict(err) {
			// The object changed since the cached copy this sync started
			// from: the cache's update brings the next sync, which
			// reports from the current copy (the retry covers a lost one).
			ctrl.LoggerFrom(ctx).V(1).Info("status written from an outdated copy refused; syncing again", "error", err.Error())
			return reconcile.Result{RequeueAfter: r.retry}, nil
		}
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// nodeState returns the node's NodeNetworkState, creating it (owned by the
// Node, so that it goes with it) when missing.
func (r *Reconciler) nodeState(ctx context.Context) (*sluicev1.NodeNetworkState, error) {
	nns := &sluicev1.NodeNetworkState{}
	err := r.client.Get(ctx, client.ObjectKey{Name: r.node}, nns)
	if err == nil || !apierrors.IsNotFound(err) {
		if err != nil {
			return nil, fmt.Errorf("get NodeNetworkState %s: %w", r.node, err)
		}
		return nns, nil
	}
	node := &corev1.Node{}
	if err := r.client.Get(ctx, client.ObjectKey{Name: r.node}, node); err != nil {
		return nil, fmt.Errorf("get node %s to own its NodeNetworkState (the node name must be the Kubernetes node's, spec.nodeName): %w", r.node, err)
	}
	nns = &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{
		Name:            r.node,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
	}}
	if err := r.client.Create(ctx, nns); err != nil {
		// AlreadyExists: the operator made it meanwhile; the cache brings it.
		return nil, fmt.Errorf("create NodeNetworkState %s: %w", r.node, err)
	}
	ctrl.LoggerFrom(ctx).Info("created NodeNetworkState", "name", r.node)
	return nns, nil
}
