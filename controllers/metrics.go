package controllers

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// policyNodeGauge is sluice_networknodepolicy_nodes{policy,state}: the
// matched and ready node counts of each policy, as in its status.
type policyNodeGauge struct {
	vec *prometheus.GaugeVec
}

// newPolicyNodeGauge registers the gauge, or reuses the one registered by
// an earlier manager of this process (tests run several).
func newPolicyNodeGauge(reg prometheus.Registerer) (*policyNodeGauge, error) {
	vec := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "sluice",
		Name:      "networknodepolicy_nodes",
		Help:      "Nodes where a NetworkNodePolicy selects at least one PF (state=matched) and where its current generation is applied (state=ready).",
	}, []string{"policy", "state"})
	if err := reg.Register(vec); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("register policy node gauge: %w", err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.GaugeVec)
		if !ok {
			return nil, fmt.Errorf("register policy node gauge: another collector has its name: %w", err)
		}
		vec = existing
	}
	return &policyNodeGauge{vec: vec}, nil
}

func (g *policyNodeGauge) set(policy string, matched, ready int32) {
	g.vec.WithLabelValues(policy, "matched").Set(float64(matched))
	g.vec.WithLabelValues(policy, "ready").Set(float64(ready))
}

func (g *policyNodeGauge) forget(policy string) {
	g.vec.DeletePartialMatch(prometheus.Labels{"policy": policy})
}
