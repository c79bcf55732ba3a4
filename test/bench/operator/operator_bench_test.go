// Package operator benchmarks how long the operator takes to converge on a
// large cluster in envtest:
//
//	go test -run '^$' -bench Convergence -benchtime 1x ./test/bench/operator/
//
// SLUICE_BENCH_NODES and SLUICE_BENCH_POLICIES change the scale (default
// 1000 nodes, 20 policies). Nothing here asserts a duration: the figures
// are reported as benchmark metrics.
package operator

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers"
	"github.com/sluice-net/sluice/test/testenv"
)

const (
	benchLabel = "sluice.dev/bench"
	rackLabel  = "sluice.dev/rack"
	racks      = 10
	workers    = 8
)

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// scenario is the cluster the benchmark builds: every node in one of ten
// racks with two PFs of 64 VFs. Policy i < 8 takes two VFs of ens1f0 on
// every node; policies 8 and 9 take VFs 0-7 and 8-15 of ens1f1 on every
// node; every further policy takes VFs 16-31 of ens1f1 in one rack. So
// nobody conflicts and every count is known.
type scenario struct {
	prefix          string
	nodes, policies int
}

func (s scenario) nodeName(i int) string { return fmt.Sprintf("%s-node-%04d", s.prefix, i) }

func (s scenario) policy(i int) *sluicev1.NetworkNodePolicy {
	p := &sluicev1.NetworkNodePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-policy-%02d", s.prefix, i)},
		Spec: sluicev1.NetworkNodePolicySpec{
			NodeSelector: map[string]string{benchLabel: s.prefix},
			Priority:     10,
			NumVfs:       64,
			ResourceName: fmt.Sprintf("pool-%02d", i),
		},
	}
	var pf sluicev1.PFName
	switch {
	case i < 8:
		pf = sluicev1.PFName(fmt.Sprintf("ens1f0#%d-%d", 2*i, 2*i+1))
	case i < 10:
		pf = sluicev1.PFName(fmt.Sprintf("ens1f1#%d-%d", 8*(i-8), 8*(i-8)+7))
	default:
		pf = "ens1f1#16-31"
		p.Spec.NodeSelector[rackLabel] = strconv.Itoa((i - 10) % racks)
	}
	p.Spec.NicSelector = sluicev1.NicSelector{Vendor: "15b3", PFNames: []sluicev1.PFName{pf}}
	return p
}

// matched is how many nodes policy i applies to.
func (s scenario) matched(i int) int32 {
	if i < 10 {
		return int32(s.nodes)
	}
	n := 0
	for j := range s.nodes {
		if j%racks == (i-10)%racks {
			n++
		}
	}
	return int32(n)
}

// groupsPerNode is how many VF groups node j gets.
func (s scenario) groupsPerNode(j int) int {
	n := 0
	for i := range s.policies {
		if i < 10 || j%racks == (i-10)%racks {
			n++
		}
	}
	return n
}

func interfaces() []sluicev1.InterfaceStatus {
	return []sluicev1.InterfaceStatus{
		{Name: "ens1f0", PCIAddress: "0000:3b:00.0", Vendor: "15b3", DeviceID: "101b", LinkType: sluicev1.LinkTypeEthernet, TotalVfs: 64},
		{Name: "ens1f1", PCIAddress: "0000:3b:00.1", Vendor: "15b3", DeviceID: "101b", LinkType: sluicev1.LinkTypeEthernet, TotalVfs: 64},
	}
}

// parallel runs fn(0..n-1) on a few goroutines and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// memSampler records the peak Go heap of the process while it runs.
type memSampler struct {
	peakHeap atomic.Uint64
	stop     chan struct{}
	done     chan struct{}
}

func startMemSampler() *memSampler {
	m := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > m.peakHeap.Load() {
				m.peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *memSampler) Stop() uint64 {
	close(m.stop)
	<-m.done
	return m.peakHeap.Load()
}

// vmHWM is the peak resident set size of this process, in bytes.
func vmHWM() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// waitFor polls check every interval until it returns nil or ctx ends.
func waitFor(ctx context.Context, interval time.Duration, check func() error) error {
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// BenchmarkConvergence builds the cluster (Nodes, NodeNetworkStates with
// discovered PFs, policies), then starts the operator and measures:
// render-s, the time until every NodeNetworkState spec is rendered and
// every policy reports its matched count; ready-s, the time from the
// simulated agents reporting success until every policy reports all its
// nodes ready; the peak Go heap of the process (operator plus the
// benchmark's own client) and its peak RSS.
func BenchmarkConvergence(b *testing.B) {
	ctrl.SetLogger(logr.Discard())
	s := scenario{nodes: envInt(b, "SLUICE_BENCH_NODES", 1000), policies: envInt(b, "SLUICE_BENCH_POLICIES", 20)}
	env := testenv.StartT(b)
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS = -1 // no client-side throttling; the API server's fairness decides
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllers.DefaultNamespace}}); err != nil {
		b.Fatal(err)
	}
	for iter := range b.N {
		b.StopTimer()
		s.prefix = fmt.Sprintf("b%d", iter)
		converge(b, cfg, c, s)
	}
}

func converge(b *testing.B, cfg *rest.Config, c client.Client, s scenario) {
	ctx := context.Background()
	setupStart := time.Now()
	err := parallel(s.nodes, func(j int) error {
		name := s.nodeName(j)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{benchLabel: s.prefix, rackLabel: strconv.Itoa(j % racks)}}}
		if err := c.Create(ctx, node); err != nil {
			return err
		}
		nns := &sluicev1.NodeNetworkState{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Create(ctx, nns); err != nil {
			return err
		}
		nns.Status.Interfaces = interfaces()
		return c.Status().Update(ctx, nns)
	})
	if err != nil {
		b.Fatalf("create nodes: %v", err)
	}
	for i := range s.policies {
		if err := c.Create(ctx, s.policy(i)); err != nil {
			b.Fatalf("create policy: %v", err)
		}
	}
	b.Logf("created %d nodes with NodeNetworkStates and %d policies in %s", s.nodes, s.policies, time.Since(setupStart).Round(time.Millisecond))

	runtime.GC()
	mem := startMemSampler()
	mgr, err := controllers.NewManager(controllers.Options{
		RestConfig:                   cfg,
		Namespace:                    controllers.DefaultNamespace,
		MetricsBindAddress:           "0",
		NodeDaemonSet:                controllers.NodeDaemonSetOptions{Image: "registry.example/sluice:bench", MaxUnavailable: 1},
		SkipControllerNameValidation: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.StartTimer()
	start := time.Now()
	go func() { done <- mgr.Start(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("operator: %v", err)
		}
	}()

	waitCtx, stop := context.WithTimeout(ctx, 10*time.Minute)
	defer stop()
	rendered := func() error {
		var l sluicev1.NodeNetworkStateList
		if err := c.List(waitCtx, &l); err != nil {
			return err
		}
		done := 0
		for _, nns := range l.Items {
			j, ok := strings.CutPrefix(nns.Name, s.prefix+"-node-")
			if !ok {
				continue
			}
			idx, _ := strconv.Atoi(j)
			groups := 0
			for _, in := range nns.Spec.Interfaces {
				groups += len(in.VFGroups)
			}
			if groups == s.groupsPerNode(idx) {
				done++
			}
		}
		if done != s.nodes {
			return fmt.Errorf("%d of %d NodeNetworkStates rendered", done, s.nodes)
		}
		return nil
	}
	counts := func(ready bool) func() error {
		return func() error {
			var l sluicev1.NetworkNodePolicyList
			if err := c.List(waitCtx, &l); err != nil {
				return err
			}
			for i := range s.policies {
				p := s.policy(i)
				var got *sluicev1.NetworkNodePolicy
				for k := range l.Items {
					if l.Items[k].Name == p.Name {
						got = &l.Items[k]
					}
				}
				want := s.matched(i)
				if got == nil || got.Status.MatchedNodes != want || (ready && got.Status.ReadyNodes != want) {
					return fmt.Errorf("policy %s: status %+v, want matched=%d", p.Name, got.Status, want)
				}
			}
			return nil
		}
	}
	if err := waitFor(waitCtx, 250*time.Millisecond, rendered); err != nil {
		b.Fatal(err)
	}
	renderedAt := time.Since(start)
	if err := waitFor(waitCtx, 250*time.Millisecond, counts(false)); err != nil {
		b.Fatal(err)
	}
	render := time.Since(start)

	// Every agent applies its node's state and reports success.
	agentsStart := time.Now()
	err = parallel(s.nodes, func(j int) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			nns := &sluicev1.NodeNetworkState{}
			if err := c.Get(ctx, client.ObjectKey{Name: s.nodeName(j)}, nns); err != nil {
				return err
			}
			nns.Status.SyncStatus = sluicev1.SyncSucceeded
			nns.Status.ObservedGeneration = nns.Generation
			return c.Status().Update(ctx, nns)
		})
	})
	if err != nil {
		b.Fatalf("simulated agents: %v", err)
	}
	agentsDone := time.Since(agentsStart)
	if err := waitFor(waitCtx, 250*time.Millisecond, counts(true)); err != nil {
		b.Fatal(err)
	}
	ready := time.Since(agentsStart)
	b.StopTimer()
	peak := mem.Stop()

	b.Logf("reconciles: %s", reconcileCounts(b))
	b.ReportMetric(renderedAt.Seconds(), "specs-s")
	b.ReportMetric(render.Seconds(), "render-s")
	b.ReportMetric(ready.Seconds(), "ready-s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(vmHWM())/(1<<20), "peak-rss-MiB")
	b.Logf("%d nodes x %d policies: all specs rendered after %s, all matched counts after %s; agents reported in %s, all ready counts %s after the first report; peak heap %.0f MiB, peak RSS %.0f MiB",
		s.nodes, s.policies, renderedAt.Round(time.Millisecond), render.Round(time.Millisecond), agentsDone.Round(time.Millisecond), ready.Round(time.Millisecond),
		float64(peak)/(1<<20), float64(vmHWM())/(1<<20))
}

// reconcileCounts summarises controller-runtime's reconcile counters.
func reconcileCounts(b *testing.B) string {
	families, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if f.GetName() == "controller_runtime_reconcile_time_seconds" {
			for _, m := range f.GetMetric() {
				if h := m.GetHistogram(); h.GetSampleCount() > 0 {
					out = append(out, fmt.Sprintf("%s-mean=%s", m.GetLabel()[0].GetValue(),
						time.Duration(h.GetSampleSum()/float64(h.GetSampleCount())*float64(time.Second)).Round(time.Microsecond)))
				}
			}
		}
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if v := m.GetCounter().GetValue(); v > 0 {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetValue())
				}
				out = append(out, fmt.Sprintf("%s=%.0f", strings.Join(labels, "/"), v))
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
