package deviceplugin

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	n := twoNICNode(t, 4)
	reg := prometheus.NewRegistry()
	e := newEnv(t, n, native(pool("intel", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}})),
		func(o *Options) { o.Metrics = reg })
	e.kubelet.Wait("sluice.dev/intel", wait, "4 healthy VFs", allHealthy(4))

	vf0, vf1 := n.VFAddress(e810, 0), n.VFAddress(e810, 1)
	if _, err := e.kubelet.Allocate(context.Background(), "sluice.dev/intel", vf0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kubelet.Allocate(context.Background(), "sluice.dev/intel", "0000:ff:00.0"); err == nil {
		t.Fatal("allocated an unknown device")
	}
	// VF 1 moves into a pod (the CNI's record) and VF 2 loses its netdev.
	e.attach(vf1, n.Netdev(vf1))
	n.RemoveNetdev(n.Netdev(vf1))
	n.RemoveNetdev(n.Netdev(n.VFAddress(e810, 2)))
	e.links.fire("x")
	e.kubelet.Wait("sluice.dev/intel", wait, "VF 2 unhealthy", health(n.VFAddress(e810, 2), "Unhealthy"))

	want := `
# HELP sluice_deviceplugin_allocations_total Devices handed out by Allocate, by pool and result (ok, refused).
# TYPE sluice_deviceplugin_allocations_total counter
sluice_deviceplugin_allocations_total{resource="sluice.dev/intel",result="ok"} 1
sluice_deviceplugin_allocations_total{resource="sluice.dev/intel",result="refused"} 1
# HELP sluice_deviceplugin_devices Devices of each pool at the last scan, by state: advertised to the kubelet, healthy, unhealthy, and allocated (VFs the CNI attached to pods).
# TYPE sluice_deviceplugin_devices gauge
sluice_deviceplugin_devices{resource="sluice.dev/intel",state="advertised"} 4
sluice_deviceplugin_devices{resource="sluice.dev/intel",state="allocated"} 1
sluice_deviceplugin_devices{resource="sluice.dev/intel",state="healthy"} 3
sluice_deviceplugin_devices{resource="sluice.dev/intel",state="unhealthy"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sluice_deviceplugin_allocations_total", "sluice_deviceplugin_devices"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "sluice_deviceplugin_scan_duration_seconds"); err != nil || n != 1 {
		t.Errorf("scan histogram: %d series, %v", n, err)
	}
}
