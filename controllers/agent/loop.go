package agent

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
)

// Restarts of the agent's controller after it stopped on an error: 1 s,
// doubling, at most a minute apart.
const (
	firstRestart = time.Second
	maxRestart   = time.Minute
)

// agentLoop runs the agent's controller against the API server, and runs
// it again when it stops on an error (the API server unreachable at boot,
// an RBAC error, caches that never sync): the device plugin beside it
// keeps serving what the node has meanwhile, so the node does not lose
// its allocatable VFs with the control plane.
type agentLoop struct {
	o        Options
	cfg      *rest.Config
	scheme   *runtime.Scheme
	host     nodeHost
	usage    UsageSource
	metrics  *agentMetrics
	triggers chan event.GenericEvent
	kick     func()
	// linkFilter is nil unless links are watched.
	linkFilter *host.LinkFilter
}

// run returns when ctx ends. Building the manager asks the API server too
// (its REST mapping), so a failure there is retried as well.
func (a *agentLoop) run(ctx context.Context) error {
	wait := firstRestart
	for {
		started := time.Now()
		mgr, err := a.newManager()
		if err == nil {
			a.kick()
			err = mgr.Start(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > 2*maxRestart {
			wait = firstRestart // it ran well for a while: start over
		}
		a.o.Logger.Error(err, "the agent stopped; the device plugin keeps serving the node's VFs; restarting", "in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRestart)
	}
}

// newManager builds one run of the agent's controller.
func (a *agentLoop) newManager() (manager.Manager, error) {
	o := a.o
	mgr, err := ctrl.NewManager(a.cfg, manager.Options{
		Scheme: a.scheme,
		Logger: o.Logger,
		// Metrics and health are served by Run, not here: the process and
		// its device plugin live on while this manager restarts.
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// This node's NodeNetworkState only: never a list of them all.
			&sluicev1.NodeNetworkState{}: {Field: fields.OneTermEqualSelector("metadata.name", o.NodeName)},
			// This node's pods only: a sync reads the pods using VFs from
			// the cache, not from the API server (see podReader).
			&corev1.Pod{}: {
				Field:     fields.OneTermEqualSelector("spec.nodeName", o.NodeName),
				Transform: cache.TransformStripManagedFields(),
			},
		}},
		// The Node and Leases are read when needed, never cached: they are
		// read rarely (creating the NodeNetworkState, draining).
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{
			&corev1.Node{}, &coordinationv1.Lease{},
		}}},
		// One agent per process, restarted; tests run several.
		Controller: config.Controller{SkipNameValidation: ptr.To(true), CacheSyncTimeout: o.CacheSyncTimeout},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	policy, err := kubernetes.NewForConfig(a.cfg)
	if err != nil {
		return nil, fmt.Errorf("create eviction client: %w", err)
	}
	r := newReconciler(mgr.GetClient(), restEvictor{rc: policy.PolicyV1().RESTClient()}, a.host, a.usage, mgr.GetEventRecorder(FieldManager), o)
	r.metrics = a.metrics
	r.pods.api = mgr.GetAPIReader()
	r.linkFilter = a.linkFilter
	err = ctrl.NewControllerManagedBy(mgr).
		Named("agent").
		// Own status writes do not bring the agent back; spec changes,
		// creation and deletion do.
		For(&sluicev1.NodeNetworkState{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(a.triggers, &handler.EnqueueRequestForObject{})).
		Complete(r)
	if err != nil {
		return nil, fmt.Errorf("set up the agent controller: %w", err)
	}
	return mgr, nil
}
