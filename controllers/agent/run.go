package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/sluice-net/sluice/api/dradevice"
	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/deviceplugin/dra"
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
	h := o.Host
	if h == nil {
		h = host.New(host.Paths{Sys: o.SysRoot, Dev: o.DevRoot})
	}
	var servePlugin func(ctx context.Context) error
	if o.DevicePlugin != nil {
		servePlugin = devicePluginAlongside(&o, h, cfg)
	}
	usage := o.Usage
	if usage == nil {
		usage = defaultUsage(o)
	}
	var metrics *agentMetrics
	if o.Metrics != nil {
		var err error
		if metrics, err = newAgentMetrics(o.Metrics, o.CNIStatsDir); err != nil {
			return fmt.Errorf("register agent metrics: %w", err)
		}
	}
	// triggers start a sync from outside the API server: at start (the
	// NodeNetworkState may not exist yet) and on host link events.
	triggers := make(chan event.GenericEvent, 1)
	kick := func() {
		select {
		case triggers <- event.GenericEvent{Object: &sluicev1.NodeNetworkState{ObjectMeta: objectMeta(o.NodeName)}}:
		default: // a sync is already queued
		}
	}
	a := &agentLoop{o: o, cfg: cfg, scheme: scheme, host: h, usage: usage, metrics: metrics, triggers: triggers, kick: kick}
	if o.WatchLinks {
		// One filter for the watcher and every run of the controller: each
		// discovery teaches it the PFs and VFs whose events matter.
		a.linkFilter = h.NewLinkFilter()
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.run(gctx) })
	if o.MetricsBindAddress != "0" {
		ms, err := newMetricsServer(o, cfg)
		if err != nil {
			return err
		}
		g.Go(func() error { return ms.Start(gctx) })
	}
	if o.HealthProbeBindAddress != "0" {
		hs, err := startHealth(o.HealthProbeBindAddress)
		if err != nil {
			return err
		}
		g.Go(func() error { return hs.serve(gctx) })
	}
	if o.WatchLinks {
		w := linkWatch{links: o.LinkEvents, keep: a.linkFilter.Concerns, quiet: 2 * time.Second, trigger: kick, log: o.Logger}
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
func devicePluginAlongside(o *Options, h *host.Host, cfg *rest.Config) func(ctx context.Context) error {
	dpo := *o.DevicePlugin
	dpo.Host = h
	dpo.ConfigFile = o.DevicePluginConfig
	dpo.ReadinessFile = o.GatePath
	dpo.AttachmentsDir = o.AttachmentsDir
	// The claims' holds, read even without the DRA driver (as defaultUsage
	// does): a VF a claim holds is in use.
	dpo.DRAClaimsDir = draClaimsDir(*o)
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
	var draOpts *dra.Options
	if o.DRA != nil {
		d := *o.DRA
		if d.DriverName == "" {
			d.DriverName = dradevice.DriverName(o.ResourcePrefix)
		}
		if d.NodeName == "" {
			d.NodeName = o.NodeName
		}
		if d.Log.GetSink() == nil {
			d.Log = o.Logger.WithName("dra")
		}
		// Claims are prepared on the agent's host, with the device
		// plugin's CDI directory and the node files the CNI shares.
		if d.Node == nil {
			d.Node = h
		}
		if d.CDIDir == "" {
			d.CDIDir = dpo.CDIDir
		}
		if d.AttachmentsDir == "" {
			d.AttachmentsDir = o.AttachmentsDir
		}
		if d.LockDir == "" {
			d.LockDir = o.LockDir
		}
		if d.ClaimsDir == "" {
			d.ClaimsDir = draClaimsDir(*o)
		}
		if d.PlatformNamespace == "" {
			// The agents run in the operator's namespace (its DaemonSet).
			d.PlatformNamespace = o.Namespace
		}
		draOpts = &d
	}
	return func(ctx context.Context) error {
		if draOpts != nil {
			if draOpts.KubeClient == nil {
				cs, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					return fmt.Errorf("DRA driver: API client: %w", err)
				}
				draOpts.KubeClient = cs
			}
			if draOpts.VFNetworks == nil {
				vfn, err := dra.NewVFNetworkClient(cfg)
				if err != nil {
					return fmt.Errorf("DRA driver: %w", err)
				}
				draOpts.VFNetworks = vfn
			}
			drv, err := dra.Start(ctx, *draOpts)
			if err != nil {
				return err
			}
			defer drv.Stop()
			// The runtime's sandbox events move the prepared VFs into
			// their pods.
			if !draOpts.NoNRI {
				if err := drv.StartNRI(ctx); err != nil {
					return err
				}
				defer drv.StopNRI()
			}
			dpo.OnScan = func(t *deviceplugin.Tree) {
				if err := drv.Publish(ctx, t); err != nil {
					draOpts.Log.Error(err, "cannot publish the DRA devices; retrying at the next scan")
				}
			}
		}
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
	// Read even without the DRA driver: claims it prepared before it was
	// turned off hold their VFs until they are unprepared.
	m = append(m, draUsage{claims: nodefiles.NewDRAClaims(draClaimsDir(o))})
	return m
}

// draClaimsDir is the DRA driver's checkpoints' directory: kernel-lifetime
// state, as the agent's own.
func draClaimsDir(o Options) string {
	if o.DRA != nil && o.DRA.ClaimsDir != "" {
		return o.DRA.ClaimsDir
	}
	return filepath.Join(o.StateDir, "dra", "claims")
}
