package agent

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host/hosttest"
)

func TestAgentMetrics(t *testing.T) {
	h := newHarness(t)
	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	reg := prometheus.NewRegistry()
	h.opts.Metrics = reg
	h.opts.CNIStatsDir = filepath.Join(h.dir, "cni-stats")
	// What three sluice-cni processes would have counted.
	cni := nodefiles.NewStats(h.opts.CNIStatsDir)
	for _, k := range []nodefiles.StatsKey{{Command: "ADD", Result: "success"}, {Command: "ADD", Result: "success"}, {Command: "DEL", Result: "error-11"}} {
		if err := cni.Add(k); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	h.waitFor("NodeNetworkState created", func(*sluicev1.NodeNetworkState) error { return nil })
	h.synced(sluicev1.SyncSucceeded, h.setSpec(nVFs(pfA, "ens1f0", 4)))

	want := `
# HELP sluice_agent_vfs_configured VFs configured as the NodeNetworkState asks (their PF verified and in the readiness gate), by resource.
# TYPE sluice_agent_vfs_configured gauge
sluice_agent_vfs_configured{resource="net1"} 4
# HELP sluice_cni_operations_total CNI commands run by sluice-cni on this node, by command (ADD, DEL, CHECK, GC, STATUS) and result (success, or error-<CNI error code>).
# TYPE sluice_cni_operations_total counter
sluice_cni_operations_total{command="ADD",result="success"} 2
sluice_cni_operations_total{command="DEL",result="error-11"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sluice_agent_vfs_configured", "sluice_cni_operations_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var succeeded uint64
	for _, mf := range mfs {
		if mf.GetName() != "sluice_agent_sync_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "succeeded" {
				succeeded = m.GetHistogram().GetSampleCount()
			}
		}
	}
	if succeeded == 0 {
		t.Error("no succeeded sync in sluice_agent_sync_duration_seconds")
	}
}
