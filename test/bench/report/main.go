// Command report is `make bench`: it runs the benchmarks of every part of
// sluice on this machine and writes a markdown report with the machine,
// each figure's median and spread, and ratios measured in the same run.
//
//	go run ./test/bench/report [-out _out/bench-report.md] [-count 5] [-demo-runs 3]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// suite is one `go test -bench` invocation.
type suite struct {
	part, pkg, pattern, benchtime string
	count                         int
	// root marks benchmarks that need root (network namespaces).
	root bool
}

func main() {
	out := flag.String("out", "_out/bench-report.md", "report file")
	count := flag.Int("count", 5, "runs of each Go benchmark (the spread is over them)")
	demoRuns := flag.Int("demo-runs", 3, "runs of make demo on the real-cluster node (policy to pod, per-pod cost, kubelet restart)")
	cniRuns := flag.Int("cni-runs", 20, "ADD+DEL cycles of sluice-cni on a real VF of the emulated node (0: skip)")
	flag.Parse()
	ctx := context.Background()

	suites := []suite{
		{"host: discovery of 8 PFs x 128 VFs (1,024 VFs with RDMA) on a fake sysfs", "./host", "BenchmarkDiscover8x128", "20x", *count, false},
		{"device plugin: rescan, Allocate and GetPreferredAllocation, pools of 1,024 VFs", "./deviceplugin", "Benchmark(Rescan|BuildTree|Allocate|AllocateHandler|GetPreferredAllocation)$", "", *count, false},
		{"CNI: ADD+DEL per VF (veth stand-ins, host-local IPAM), process start", "./cni/plugin", "Benchmark(AddDelExec|AddDelInProcess|VersionExec)$", "20x", *count, true},
		{"agent and device plugin: a storm of 1,000 unrelated veth pairs (created, up, deleted over 10 s) in their network namespace (envtest)", "./controllers/agent", "BenchmarkLinkStorm$", "1x", *count, true},
		{"operator: convergence at 1,000 nodes x 20 policies (envtest)", "./test/bench/operator", "BenchmarkConvergence", "1x", max(2, *count/2), false},
	}
	r := &report{started: time.Now(), machine: machine()}
	for _, s := range suites {
		if s.root && os.Geteuid() != 0 {
			r.skipped = append(r.skipped, fmt.Sprintf("%s: needs root (network namespaces)", s.part))
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s\n", s.part)
		res, err := runSuite(ctx, s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		r.parts = append(r.parts, part{name: s.part, pkg: s.pkg, results: res})
	}
	if *cniRuns > 0 {
		if os.Geteuid() != 0 {
			r.skipped = append(r.skipped, "CNI on the emulated node: needs root (QEMU and its dependencies)")
		} else {
			fmt.Fprintf(os.Stderr, "bench: sluice-cni ADD+DEL on the emulated node's igb VF x %d\n", *cniRuns)
			p, err := runNodeCNI(ctx, *cniRuns)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			r.parts = append(r.parts, p)
		}
	}
	if *demoRuns > 0 {
		fmt.Fprintf(os.Stderr, "bench: real-cluster node (make demo) x %d\n", *demoRuns)
		node, err := runDemo(ctx, *demoRuns)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		r.node = node
	}
	r.finished = time.Now()
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, []byte(r.markdown()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bench: report in %s\n", *out)
}

// samples are one benchmark's values per unit over the runs.
type samples map[string][]float64

func runSuite(ctx context.Context, s suite) (map[string]samples, error) {
	args := []string{"test", "-run", "^$", "-bench", s.pattern, "-benchmem", "-count", strconv.Itoa(s.count)}
	if s.benchtime != "" {
		args = append(args, "-benchtime", s.benchtime)
	}
	args = append(args, s.pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return parseBench(out.String()), nil
}

// parseBench reads `go test -bench` lines: name-N iterations value unit ...
func parseBench(out string) map[string]samples {
	res := map[string]samples{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		name = strings.TrimPrefix(name, "Benchmark")
		if res[name] == nil {
			res[name] = samples{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res[name][f[i+1]] = append(res[name][f[i+1]], v)
		}
	}
	return res
}

// runNodeCNI runs the emulated node's BenchmarkAddDel (test/node/guest/cni):
// the real sluice-cni binary on a real igb VF under TCG, n ADD+DEL cycles
// per configuration, with the median of each step.
func runNodeCNI(ctx context.Context, n int) (part, error) {
	args := []string{"test", "-count=1", "-v", "-run", "TestGuest/cni/BenchmarkAddDel", "./test/node"}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "SLUICE_NODE_SUITES=cni",
		"SLUICE_NODE_BENCH=BenchmarkAddDel", fmt.Sprintf("SLUICE_NODE_BENCHTIME=%dx", n))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return part{}, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	p := part{name: "CNI on the emulated node: sluice-cni ADD and DEL on a real igb VF (QEMU TCG, 7.x guest kernel), one process each",
		pkg: "./test/node/guest/cni (BenchmarkAddDel)", results: parseBench(out.String())}
	if len(p.results) == 0 {
		return part{}, fmt.Errorf("no benchmark result in the emulated node's output:\n%s", out.String())
	}
	for _, l := range strings.Split(out.String(), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "BenchmarkAddDel/") && !strings.Contains(l, "\t") {
			p.notes = append(p.notes, "**"+l+"**")
		}
		if strings.Contains(l, " steps (median ms): ") || strings.Contains(l, " ADD and ") && strings.Contains(l, " DEL on VF ") {
			if _, after, ok := strings.Cut(l, ": "); ok && strings.HasPrefix(l, "bench_test.go") {
				l = after
			}
			p.notes = append(p.notes, l)
		}
	}
	return p, nil
}

// runDemo runs make demo's program n times and collects its figures.
func runDemo(ctx context.Context, n int) (map[string][]float64, error) {
	figs := map[string][]float64{}
	dir, err := os.MkdirTemp("", "bench-demo")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for i := 0; i < n; i++ {
		path := filepath.Join(dir, fmt.Sprintf("run%d.json", i))
		cmd := exec.CommandContext(ctx, "go", "run", "./test/demo")
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "SLUICE_DEMO_FIGURES="+path)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("demo run %d: %w\n%s", i+1, err, out.String())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		for k, v := range m {
			if f, ok := v.(float64); ok {
				figs[k] = append(figs[k], f)
			}
		}
	}
	return figs, nil
}

type part struct {
	name, pkg string
	results   map[string]samples
	// notes are lines printed under the table (per-step medians).
	notes []string
}

type report struct {
	started, finished time.Time
	machine           []string
	parts             []part
	node              map[string][]float64
	skipped           []string
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# sluice benchmark report\n\n")
	fmt.Fprintf(&b, "Generated by `make bench` on %s in %s. Each figure is the median of its runs, with the range (min-max) and the relative spread ((max-min)/median). Ratios compare figures measured in this same run.\n\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), r.finished.Sub(r.started).Round(time.Second))
	fmt.Fprintf(&b, "## Machine\n\n")
	for _, m := range r.machine {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	for _, p := range r.parts {
		fmt.Fprintf(&b, "\n## %s\n\n`go test -bench` in `%s`\n\n", p.name, p.pkg)
		fmt.Fprintf(&b, "| benchmark | unit | median | range | spread | runs |\n|---|---|---|---|---|---|\n")
		names := sortedKeys(p.results)
		for _, n := range names {
			units := sortedKeys(p.results[n])
			for _, u := range units {
				v := p.results[n][u]
				fmt.Fprintf(&b, "| %s | %s | %s | %s - %s | %s | %d |\n", n, u, num(median(v)), num(minOf(v)), num(maxOf(v)), spread(v), len(v))
			}
		}
		if len(p.notes) > 0 {
			fmt.Fprintf(&b, "\n")
			for _, n := range p.notes {
				fmt.Fprintf(&b, "- %s\n", n)
			}
		}
		if rs := ratios(p); len(rs) > 0 {
			fmt.Fprintf(&b, "\n")
			for _, r := range rs {
				fmt.Fprintf(&b, "- %s\n", r)
			}
		}
	}
	if r.node != nil {
		fmt.Fprintf(&b, "\n## Real-cluster node: the pod path (QEMU igb, kubelet, containerd, Multus; `make demo`)\n\n")
		fmt.Fprintf(&b, "Measured on the real-cluster node (control plane on the host, kubelet and containerd in the emulated node under TCG, no KVM): the policy's creation to 4 VFs allocatable at the real kubelet and to the first pod Running with its VF; pod create to Running with a VF (device plugin and Multus), with a DRA-claimed VF, and on the cluster network alone (each alone on the idle node); a kubelet restart to the pool allocatable again in a node status posted after the restart; the average of ib_write_bw (200 RDMA writes of 4 KiB) between two pods of the soft-RoCE pool, from inside them (emulated NIC: a functional figure, not a NIC's).\n\n")
		fmt.Fprintf(&b, "| figure | median | range | spread | runs |\n|---|---|---|---|---|\n")
		for _, k := range sortedKeys(r.node) {
			v := r.node[k]
			fmt.Fprintf(&b, "| %s | %s | %s - %s | %s | %d |\n", k, num(median(v)), num(minOf(v)), num(maxOf(v)), spread(v), len(v))
		}
		// Within each run: a pod with a VF against one without, and a
		// DRA-claimed VF against the device plugin's.
		for _, c := range [][2]string{{"podRunningWithVFSeconds", "podRunningWithoutVFSeconds"}, {"podRunningWithDRAVFSeconds", "podRunningWithVFSeconds"}} {
			with, without := r.node[c[0]], r.node[c[1]]
			if len(with) == 0 || len(with) != len(without) {
				continue
			}
			var rs []float64
			for i := range with {
				if without[i] > 0 {
					rs = append(rs, with[i]/without[i])
				}
			}
			if len(rs) > 0 {
				fmt.Fprintf(&b, "\n- %s / %s, within each run: median %.2fx (%.2f - %.2f)\n", c[0], c[1], median(rs), minOf(rs), maxOf(rs))
			}
		}
	}
	for _, s := range r.skipped {
		fmt.Fprintf(&b, "\nSkipped: %s\n", s)
	}
	return b.String()
}

// ratios are the comparisons that explain a part's figures.
func ratios(p part) []string {
	var out []string
	ratio := func(a, b, what string) {
		va, vb := p.results[a]["ns/op"], p.results[b]["ns/op"]
		if len(va) == 0 || len(vb) == 0 {
			return
		}
		out = append(out, fmt.Sprintf("%s / %s = %.1fx (%s)", a, b, median(va)/median(vb), what))
	}
	ratio("Rescan", "BuildTree", "a rescan is almost all host discovery; building and diffing the device tree is the rest")
	ratio("Allocate", "AllocateHandler", "gRPC over the unix socket versus the handler alone")
	ratio("AddDelExec", "AddDelInProcess", "two process starts per attachment versus the plugin's own work")
	ratio("AddDelExec", "VersionExec", "an ADD+DEL versus one bare start of the binary")
	return out
}

func machine() []string {
	var out []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				out = append(out, "CPU: "+strings.TrimSpace(strings.SplitN(l, ":", 2)[1]))
				break
			}
		}
	}
	out = append(out, fmt.Sprintf("cores: %d, GOMAXPROCS %d", runtime.NumCPU(), runtime.GOMAXPROCS(0)))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		out = append(out, "memory: "+strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " "))
	}
	if b, err := exec.Command("uname", "-sr").Output(); err == nil {
		out = append(out, "kernel: "+strings.TrimSpace(string(b)))
	}
	if b, err := exec.Command("go", "version").Output(); err == nil {
		out = append(out, strings.TrimSpace(string(b)))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		out = append(out, "load average at start: "+strings.Join(strings.Fields(string(b))[:3], " "))
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		out = append(out, "Debian "+strings.TrimSpace(string(b)))
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func minOf(v []float64) float64 {
	m := math.Inf(1)
	for _, x := range v {
		m = math.Min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}

func spread(v []float64) string {
	med := median(v)
	if med == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*(maxOf(v)-minOf(v))/med)
}

func num(x float64) string {
	switch {
	case x >= 1e6:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 1:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strconv.FormatFloat(x, 'g', 3, 64)
}
