package agent

import (
	"fmt"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// newMetricsServer serves the agent's, its device plugin's and the CNI's
// metrics (controller-runtime's registry) apart from the agent's manager,
// so they go on while it restarts. The agent runs on the host network, so
// with MetricsSecure the endpoint is HTTPS and a scraper must present a
// token the API server authenticates (TokenReview) and authorizes for GET
// /metrics (SubjectAccessReview): the ClusterRole sluice-metrics-reader.
func newMetricsServer(o Options, cfg *rest.Config) (metricsserver.Server, error) {
	mo := metricsserver.Options{BindAddress: o.MetricsBindAddress}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if o.MetricsSecure {
		mo.SecureServing = true
		mo.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	s, err := metricsserver.NewServer(mo, cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("metrics on %s: %w", o.MetricsBindAddress, err)
	}
	return s, nil
}
