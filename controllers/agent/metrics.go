package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
)

// agentMetrics are the agent's Prometheus instruments; a nil *agentMetrics
// records nothing.
type agentMetrics struct {
	syncSeconds   *prometheus.HistogramVec
	vfsConfigured *prometheus.GaugeVec
	unreadableRec prometheus.Gauge
}

func newAgentMetrics(reg prometheus.Registerer, cniStats string) (*agentMetrics, error) {
	m := &agentMetrics{
		syncSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_agent_sync_duration_seconds",
			Help:    "Time of one sync of the node (discover, plan, drain, apply, report), by result: succeeded, failed, or waiting (for a drain slot or evicted pods).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}, []string{"result"}),
		vfsConfigured: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_agent_vfs_configured",
			Help: "VFs configured as the NodeNetworkState asks (their PF verified and in the readiness gate), by resource.",
		}, []string{"resource"}),
		unreadableRec: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_agent_unreadable_attachment_records",
			Help: "CNI attachment records that cannot be parsed and still hold their VF (its netdev is not in the host namespace); each is reported in an UnreadableAttachmentRecord event naming the file.",
		}),
	}
	for _, c := range []prometheus.Collector{m.syncSeconds, m.vfsConfigured, m.unreadableRec, newCNICollector(cniStats)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *agentMetrics) synced(d time.Duration, result string) {
	if m != nil {
		m.syncSeconds.WithLabelValues(result).Observe(d.Seconds())
	}
}

// unreadable sets how many unreadable attachment records hold a VF.
func (m *agentMetrics) unreadable(n int) {
	if m != nil {
		m.unreadableRec.Set(float64(n))
	}
}

// configured sets the VFs configured per resource: the VF groups of the PFs
// that are ready.
func (m *agentMetrics) configured(spec *sluicev1.NodeNetworkStateSpec, ready []string) {
	if m == nil {
		return
	}
	isReady := map[string]bool{}
	for _, a := range ready {
		isReady[a] = true
	}
	per := map[string]int{}
	for _, in := range spec.Interfaces {
		for _, g := range in.VFGroups {
			per[g.ResourceName] += 0 // a pool with nothing ready yet shows 0
			if !isReady[string(in.PCIAddress)] {
				continue
			}
			if _, first, last, err := host.ParsePFName("pf#" + string(g.VFRange)); err == nil {
				per[g.ResourceName] += last - first + 1
			}
		}
	}
	m.vfsConfigured.Reset()
	for res, n := range per {
		m.vfsConfigured.WithLabelValues(res).Set(float64(n))
	}
}

func newCNICollector(path string) cniCollector {
	return cniCollector{dir: nodefiles.NewStats(path), desc: prometheus.NewDesc("sluice_cni_operations_total",
		"CNI commands run by sluice-cni on this node, by command (ADD, DEL, CHECK, GC, STATUS) and result (success, or error-<CNI error code>).",
		[]string{"command", "result"}, nil)}
}

// cniCollector exports the CNI plugin's outcome counts, which its
// processes keep in tally files (nodefiles.Stats), read at scrape time.
type cniCollector struct {
	dir  nodefiles.Stats
	desc *prometheus.Desc
}

func (c cniCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c cniCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.dir.Read()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, k := range nodefiles.StatsKeys(counts) {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(counts[k]), k.Command, k.Result)
	}
}
