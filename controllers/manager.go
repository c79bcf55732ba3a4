package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	appsv1 "k8s.io/api/apps/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sluice-net/sluice/api/drainslot"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// Defaults of Options.
const (
	DefaultNamespace        = "sluice-system"
	DefaultLeaderElectionID = "sluice-operator.sluice.dev"
	DefaultServiceAccount   = "sluice-node"
	// DefaultResourcePrefix is the device plugin's resource prefix when
	// none is set: pools are advertised as sluice.dev/<resourceName>.
	DefaultResourcePrefix = "sluice.dev"
)

// Options configure the operator.
type Options struct {
	// RestConfig reaches the API server; nil loads it as kubectl does
	// (--kubeconfig, KUBECONFIG, in-cluster, ~/.kube/config).
	RestConfig *rest.Config
	// Namespace the operator runs in: the node DaemonSet, the drain slot
	// Leases and the leader election Lease live there, and its VFNetworks
	// are the platform's (they may render into any namespace and set every
	// VF option).
	Namespace string
	// ResourcePrefix is the prefix of every pool's resource name
	// (<prefix>/<resourceName>): the node agent's device plugin advertises
	// pools under it and VFNetworks' NetworkAttachmentDefinitions ask for
	// it. Empty means DefaultResourcePrefix.
	ResourcePrefix string
	// MetricsBindAddress serves /metrics; "0" turns it off.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; "0" or empty turns it off.
	HealthProbeBindAddress string
	// LeaderElection makes only one replica reconcile at a time.
	LeaderElection   bool
	LeaderElectionID string
	// NodeDaemonSet shapes the node agent DaemonSet; its Namespace is
	// Options.Namespace.
	NodeDaemonSet NodeDaemonSetOptions
	// NodeDRA decides NodeDaemonSet.DRA: DRAAuto (the zero value) runs the
	// agents' DRA kubelet plugin when the cluster serves resource.k8s.io/v1.
	NodeDRA DRAMode
	// NodeStateWorkers and PolicyStatusWorkers are the concurrent
	// reconciles of the two policy controllers; 0 picks a default.
	NodeStateWorkers, PolicyStatusWorkers int
	// Logger of the manager; the zero value discards.
	Logger logr.Logger
	// SkipControllerNameValidation allows several managers in one process
	// (tests).
	SkipControllerNameValidation bool
}

func (o *Options) validate() error {
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("namespace is empty: set --namespace (or POD_NAMESPACE) to the operator's namespace"))
	}
	if err := validResourcePrefix(o.ResourcePrefix); err != nil {
		errs = append(errs, err)
	}
	if o.NodeDaemonSet.Image == "" {
		errs = append(errs, errors.New("node image is empty: set --node-image to the image holding /usr/local/bin/sluice and /usr/local/bin/sluice-cni"))
	}
	if err := drainslot.Validate(o.NodeDaemonSet.MaxUnavailable); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validResourcePrefix checks that prefix/<pool> is an extended resource
// name the kubelet accepts.
func validResourcePrefix(prefix string) error {
	if errs := validation.IsDNS1123Subdomain(prefix); len(errs) > 0 {
		return fmt.Errorf("resource prefix %q is not a DNS subdomain (%s): set --resource-prefix to a domain you own, e.g. %q", prefix, strings.Join(errs, "; "), DefaultResourcePrefix)
	}
	if prefix == "kubernetes.io" || strings.HasSuffix(prefix, ".kubernetes.io") {
		return fmt.Errorf("resource prefix %q: the kubernetes.io domain is reserved: set --resource-prefix to a domain you own, e.g. %q", prefix, DefaultResourcePrefix)
	}
	return nil
}

// Scheme returns the types the operator reads and writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, sluicev1.AddToScheme, nadv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("build scheme: %w", err)
		}
	}
	return s, nil
}

// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update,namespace=sluice-system
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch,namespace=sluice-system

// NewManager builds the operator's manager with every controller
// registered; Start runs it.
func NewManager(o Options) (manager.Manager, error) {
	if o.ResourcePrefix == "" {
		o.ResourcePrefix = DefaultResourcePrefix
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	cfg := o.RestConfig
	if cfg == nil {
		var err error
		if cfg, err = ctrl.GetConfig(); err != nil {
			return nil, fmt.Errorf("load kubeconfig: %w", err)
		}
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	if o.LeaderElectionID == "" {
		o.LeaderElectionID = DefaultLeaderElectionID
	}
	probe := o.HealthProbeBindAddress
	if probe == "" {
		probe = "0"
	}
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                        scheme,
		Logger:                        o.Logger,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:        probe,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.Namespace,
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only the node DaemonSet, which the Role allows to read.
			&appsv1.DaemonSet{}: {Namespaces: map[string]cache.Config{o.Namespace: {}}},
			// Only the DeviceClasses sluice renders.
			&resourcev1.DeviceClass{}: {Label: labels.SelectorFromSet(labels.Set{managedByLabel: managedByValue})},
		}},
		Controller: config.Controller{SkipNameValidation: &o.SkipControllerNameValidation},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	// Without Multus's CRD the VFNetwork controller's cache never syncs and
	// the manager fails after minutes with a timeout; say what is missing.
	nadGVK := nadv1.SchemeGroupVersion.WithKind("NetworkAttachmentDefinition")
	if _, err := mgr.GetRESTMapper().RESTMapping(nadGVK.GroupKind(), nadGVK.Version); err != nil {
		return nil, fmt.Errorf("the NetworkAttachmentDefinition CRD (%s) is not installed: install Multus, or another meta-plugin that installs it, before sluice: %w", nadGVK.GroupVersion(), err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add ready check: %w", err)
	}
	gauges, err := newPolicyNodeGauge(metrics.Registry)
	if err != nil {
		return nil, err
	}

	dsOpts := o.NodeDaemonSet
	dsOpts.DRA = o.NodeDRA.enabled(draServed(mgr), o.Logger)
	dsOpts.Namespace = o.Namespace
	dsOpts.ResourcePrefix = o.ResourcePrefix
	if dsOpts.ServiceAccount == "" {
		dsOpts.ServiceAccount = DefaultServiceAccount
	}
	c := mgr.GetClient()
	steps := []struct {
		name  string
		setup func() error
	}{
		{"nodenetworkstate", func() error {
			return (&NodeStateReconciler{Client: c}).SetupWithManager(mgr, orDefault(o.NodeStateWorkers, 4))
		}},
		{"networknodepolicy-status", func() error {
			r := &PolicyStatusReconciler{Client: c, Recorder: mgr.GetEventRecorder(FieldManager), Gauges: gauges}
			return r.SetupWithManager(mgr, orDefault(o.PolicyStatusWorkers, 2))
		}},
		{"vfnetwork", func() error {
			r := &VFNetworkReconciler{Client: c, Scheme: scheme, PlatformNamespace: o.Namespace, ResourcePrefix: o.ResourcePrefix}
			return r.SetupWithManager(mgr)
		}},
		{"node-daemonset", func() error { return (&NodeDaemonSetReconciler{Client: c, Options: dsOpts}).SetupWithManager(mgr) }},
		{"drain-slots", func() error {
			return (&DrainSlotsReconciler{Client: c, Namespace: o.Namespace, Slots: dsOpts.MaxUnavailable}).SetupWithManager(mgr)
		}},
		{"deviceclass", func() error {
			// Without resource.k8s.io/v1 (DRA is GA and on by default since
			// Kubernetes 1.34) there is nothing to render into: DRA pools
			// then have no DeviceClass, and the log says why.
			if err := draServed(mgr); err != nil {
				o.Logger.Error(err, "resource.k8s.io/v1 is not served: DRA pools get no DeviceClass; enable the resource.k8s.io/v1 API (Kubernetes 1.34 or later)")
				return nil
			}
			return (&DeviceClassReconciler{Client: c, ResourcePrefix: o.ResourcePrefix}).SetupWithManager(mgr)
		}},
	}
	for _, s := range steps {
		if err := s.setup(); err != nil {
			return nil, fmt.Errorf("set up controller %s: %w", s.name, err)
		}
	}
	return mgr, nil
}

// Run runs the operator until ctx is cancelled.
func Run(ctx context.Context, o Options) error {
	mgr, err := NewManager(o)
	if err != nil {
		return err
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}
