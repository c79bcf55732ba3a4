package deviceplugin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the device plugin's Prometheus instruments. A nil *metrics
// records nothing (no registry was given).
type metrics struct {
	devices     *prometheus.Desc
	scanSeconds prometheus.Histogram
	allocations *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		devices: prometheus.NewDesc("sluice_deviceplugin_devices",
			"Devices of each pool at the last scan, by state: advertised to the kubelet, healthy, unhealthy, and allocated (VFs the CNI attached to pods).",
			[]string{"resource", "state"}, nil),
		scanSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_deviceplugin_scan_duration_seconds",
			Help:    "Time of one scan: node discovery, device tree build and server updates.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_deviceplugin_allocations_total",
			Help: "Devices handed out by Allocate, by pool and result (ok, refused).",
		}, []string{"resource", "result"}),
	}
}

func (mt *metrics) scanned(d time.Duration) {
	if mt != nil {
		mt.scanSeconds.Observe(d.Seconds())
	}
}

func (mt *metrics) allocated(resource string, devices int, err error) {
	if mt == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "refused"
	}
	mt.allocations.WithLabelValues(resource, result).Add(float64(devices))
}

// collector exports the pool counts, read at scrape time, with the
// instruments.
type collector struct {
	m  *Manager
	mt *metrics
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.mt.devices
	c.mt.scanSeconds.Describe(ch)
	c.mt.allocations.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, pc := range c.m.Counts() {
		for state, n := range map[string]int{
			"advertised": pc.Advertised,
			"healthy":    pc.Healthy,
			"unhealthy":  pc.Advertised - pc.Healthy,
			"allocated":  pc.Allocated,
		} {
			ch <- prometheus.MustNewConstMetric(c.mt.devices, prometheus.GaugeValue, float64(n), pc.Resource, state)
		}
	}
	c.mt.scanSeconds.Collect(ch)
	c.mt.allocations.Collect(ch)
}
