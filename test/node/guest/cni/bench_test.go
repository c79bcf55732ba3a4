//go:build nodetest

package cni

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cniplugin "github.com/sluice-net/sluice/cni/plugin"
	"github.com/sluice-net/sluice/test/bench/cnitimings"
	nu "github.com/sluice-net/sluice/test/node/guest/nodeutil"
)

// BenchmarkAddDel is the per-pod cost of sluice-cni on a real VF, as the
// runtime pays it: one execution of the binary for ADD and one for DEL,
// alternating, on the same igb VF and pod namespace. NoIPAM is issue 13's
// configuration (deviceID, vlan 100, spoofchk off, trust on); HostLocal
// adds host-local IPAM, as the demo's networks have. Besides the medians
// it logs the median of each step inside the binary (SLUICE_CNI_TIMINGS)
// and "process", the rest of the wall time: exec, Go runtime start and
// exit. Run it with make bench or
//
//	SLUICE_NODE_SUITES=cni SLUICE_NODE_BENCH=BenchmarkAddDel go test -v ./test/node -run TestGuest/cni
func BenchmarkAddDel(b *testing.B) {
	nu.Require(b)
	pf := nu.PFs(b)[0]
	vf := nu.VFs(b, pf, 1)[0]
	// The binaries run from the guest's local disk, as from /opt/cni/bin
	// on a node: from the run directory (9p, uncached) every page of the
	// binary would come over 9p and weigh more than the plugin's work.
	binDir := localCopies(b, os.Getenv("SLUICE_CNI_PATH"), "sluice-cni", "host-local")
	for _, c := range []struct {
		name string
		ipam bool
	}{{"NoIPAM", false}, {"HostLocal", true}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			extra := map[string]any{"vlan": 100, "spoofchk": "off", "trust": "on"}
			cfg := conf(b, dir, vf.PCI, extra)
			if !c.ipam {
				var m map[string]any
				_ = json.Unmarshal(cfg, &m)
				delete(m, "ipam")
				cfg, _ = json.Marshal(m)
			}
			ns := "/var/run/netns/" + nu.Netns(b, "benchpod-"+strings.ToLower(c.name))
			timings := filepath.Join(dir, "timings.jsonl")
			var add, del []time.Duration
			i := 0
			for b.Loop() {
				cid := fmt.Sprintf("bench%d", i)
				i++
				for _, cmd := range []string{"ADD", "DEL"} {
					start := time.Now()
					if _, err := runPlugin(binDir, cmd, ns, cid, "net1", cfg, cniplugin.TimingsEnv+"="+timings); err != nil {
						b.Fatalf("%s %s: %v", cmd, cid, err)
					}
					if cmd == "ADD" {
						add = append(add, time.Since(start))
					} else {
						del = append(del, time.Since(start))
					}
				}
			}
			b.StopTimer()
			steps, err := cnitimings.Read(timings)
			if err != nil {
				b.Fatal(err)
			}
			ms := cnitimings.Millis
			addMed, delMed := cnitimings.Median(add), cnitimings.Median(del)
			b.ReportMetric(ms(addMed), "add-ms")
			b.ReportMetric(ms(delMed), "del-ms")
			b.ReportMetric(float64(addMed)/float64(delMed), "add/del")
			b.ReportMetric(0, "ns/op")
			b.Logf("%d ADD and %d DEL on VF %s (%s): ADD median %.1f ms (%.1f-%.1f), DEL median %.1f ms (%.1f-%.1f)\n%s",
				len(add), len(del), vf.PCI, c.name, ms(addMed), ms(slices.Min(add)), ms(slices.Max(add)),
				ms(delMed), ms(slices.Min(del)), ms(slices.Max(del)), stepTable(steps, addMed, delMed))
		})
	}
}

// localCopies copies the named binaries of dir into a directory of the
// guest's own (tmpfs) file system.
func localCopies(b *testing.B, dir string, names ...string) string {
	local := b.TempDir()
	for _, n := range names {
		raw, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(local, n), raw, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	return local
}

// stepTable is the median of each step, and "process" (the wall median
// less the in-process median: exec, runtime start, exit).
func stepTable(st *cnitimings.Steps, addWall, delWall time.Duration) string {
	var b strings.Builder
	for _, c := range []struct {
		cmd  string
		wall time.Duration
	}{{"ADD", addWall}, {"DEL", delWall}} {
		in := st.InProcess(c.cmd)
		fmt.Fprintf(&b, "%s steps (median ms):%s in_process=%.2f process=%.2f\n", c.cmd, st.Medians(c.cmd), cnitimings.Millis(in), cnitimings.Millis(c.wall-in))
	}
	return strings.TrimRight(b.String(), "\n")
}
