package plugin_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/sluice-net/sluice/cni/plugin"
)

// TestTimingsNameEachStep runs ADD and DEL through Funcs with Timings set,
// as sluice-cni does with SLUICE_CNI_TIMINGS: one line per command, with
// the steps the emulated-node benchmark reports, in order, and a total
// that covers them.
func TestTimingsNameEachStep(t *testing.T) {
	e := newEnv(t, 1)
	pod := newNS(t)
	args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), map[string]any{"vlan": 10}))
	var timings bytes.Buffer
	run := func(cmd func(*skel.CmdArgs) error) {
		t.Helper()
		if err := e.in(func() error { return cmd(args) }); err != nil {
			t.Fatal(err)
		}
	}
	p := e.plugin(&bytes.Buffer{})
	p.Timings = &timings
	run(p.Funcs().Add)
	run(p.Funcs().Del)

	var got []plugin.Timing
	sc := bufio.NewScanner(&timings)
	for sc.Scan() {
		var tm plugin.Timing
		if err := json.Unmarshal(sc.Bytes(), &tm); err != nil {
			t.Fatalf("timings line %q: %v", sc.Text(), err)
		}
		got = append(got, tm)
	}
	if len(got) != 2 || got[0].Command != "ADD" || got[1].Command != "DEL" {
		t.Fatalf("want an ADD line and a DEL line, got %+v", got)
	}
	want := map[string][]string{
		"ADD": {"config", "namespaces", "VF lock", "VF lookup", "records check", "RDMA mode", "save state", "configure VF", "move netdev", "IPAM", "release", "result", "stats file"},
		"DEL": {"config", "cache entry", "VF lock", "record", "namespaces", "soft-RoCE", "move netdev", "restore netdev", "restore VF", "IPAM", "remove state", "stats file"},
	}
	for _, tm := range got {
		var names []string
		var sum int64
		for _, s := range tm.Steps {
			names = append(names, s.Name)
			sum += s.Micros
		}
		if fmt.Sprint(names) != fmt.Sprint(want[tm.Command]) {
			t.Errorf("%s steps:\n got %v\nwant %v", tm.Command, names, want[tm.Command])
		}
		if tm.Result != "success" || tm.TotalMicros < sum {
			t.Errorf("%s: result %q, total %d µs below the steps' sum %d µs", tm.Command, tm.Result, tm.TotalMicros, sum)
		}
	}
}
