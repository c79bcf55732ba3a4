package agent

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/host"
)

// FieldManager names the agent in managed fields and events.
const FieldManager = "sluice-agent"

// Run runs the node agent until ctx is cancelled, with the functions of
// Options.Alongside next to it.
func Run(ctx context.Context, o Options) error {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return err
	}
	cfg := o.RestConfig
	if cfg == nil {
		var err error
		if cfg, err = ctrl.GetConfig(); err != nil {
			return fmt.Errorf("load kubeconfig: %w", err)
		}
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, sluicev1.AddToScheme} {
		if err := add(scheme); err != nil {
			return fmt.Errorf("build scheme: %w", err)
		}
	}
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                 scheme,
		Logger:                 o.Logger,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress: o.HealthProbeBindAddress,
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
		// One agent per process; tests run several.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if o.HealthProbeBindAddress != "0" {
		if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
			return fmt.Errorf("add health check: %w", err)
		}
	}

	h := o.Host
	if h == nil {
		h = host.New(host.Paths{Sys: o.SysRoot, Dev: o.DevRoot})
	}
	var servePlugin func(ctx context.Context) error
	if o.DevicePlugin != nil {
		servePlugin = devicePluginAlongside(&o, h)
	}
	usage := o.Usage
	if usage == nil {
		usage = defaultUsage(o)
	}
	policy, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create eviction client: %w", err)
	}
	r := newReconciler(mgr.GetClient(), restEvictor{rc: policy.PolicyV1().RESTClient()}, h, usage, mgr.GetEventRecorder(FieldManager), o)
	r.pods.api = mgr.GetAPIReader()
	if o.WatchLinks {
		r.linkFilter = h.NewLinkFilter()
	}
	if o.Metrics != nil {
		if r.metrics, err = newAgentMetrics(o.Metrics, o.CNIStatsDir); err != nil {
			return fmt.Errorf("register agent metrics: %w", err)
		}
	}

	// triggers start a sync from outside the API server: at start (the
	// NodeNetworkState may not exist yet) and on host link events.
	triggers := make(chan event.GenericEvent, 1)
	err = ctrl.NewControllerManagedBy(mgr).
		Named("agent").
		// Own status writes do not bring the agent back; spec changes,
		// creation and deletion do.
		For(&sluicev1.NodeNetworkState{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(triggers, &handler.EnqueueRequestForObject{})).
		Complete(r)
	if err != nil {
		return fmt.Errorf("set up the agent controller: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := mgr.Start(gctx); err != nil {
			return fmt.Errorf("run the agent: %w", err)
		}
		return nil
	})
	kick := func() {
		select {
		case triggers <- event.GenericEvent{Object: &sluicev1.NodeNetworkState{ObjectMeta: objectMeta(o.NodeName)}}:
		default: // a sync is already queued
		}
	}
	kick()
	if o.WatchLinks {
		w := linkWatch{links: o.LinkEvents, keep: r.linkFilter.Concerns, quiet: 2 * time.Second, trigger: kick, log: o.Logger}
		if w.links == nil {
			w.links = netlinkEvents{}
		}
		g.Go(func() error { return w.run(gctx) })
	}
	if servePlugin != nil {
		g.Go(func() error { return servePlugin(gctx) })
	}
	for _, f := range o.Alongside {
		g.Go(func() error { return f(gctx) })
	}
	return g.Wait()
}

// devicePluginAlongside prepares the in-process device plugin: it works on
// the agent's host and files, and o.Rescan is chained to rescan it.
func devicePluginAlongside(o *Options, h *host.Host) func(ctx context.Context) error {
	dpo := *o.DevicePlugin
	dpo.Host = h
	dpo.ConfigFile = o.DevicePluginConfig
	dpo.ReadinessFile = o.GatePath
	dpo.AttachmentsDir = o.AttachmentsDir
	dpo.ResourcePrefix = o.ResourcePrefix
	dpo.Metrics = o.Metrics
	if dpo.Log.GetSink() == nil {
		dpo.Log = o.Logger.WithName("device-plugin")
	}
	rescan := make(chan struct{}, 1)
	dpo.Trigger = rescan
	next := o.Rescan
	o.Rescan = func() {
		select {
		case rescan <- struct{}{}:
		default: // a rescan is already pending
		}
		if next != nil {
			next()
		}
	}
	return func(ctx context.Context) error {
		if err := deviceplugin.Run(ctx, dpo); err != nil {
			return fmt.Errorf("device plugin: %w", err)
		}
		return nil
	}
}

// defaultUsage reads VF usage from the kubelet and the CNI's records.
func defaultUsage(o Options) UsageSource {
	var m multiUsage
	if o.PodResourcesSocket != "" {
		m = append(m, kubeletUsage{socket: o.PodResourcesSocket, timeout: 10 * time.Second})
	}
	if o.AttachmentsDir != "" {
		m = append(m, attachmentUsage{dir: nodefiles.NewAttachments(o.AttachmentsDir)})
	}
	return m
}
