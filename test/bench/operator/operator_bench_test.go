// Package operator benchmarks how long the operator takes to converge on a
// large cluster in envtest:
//
//	go test -run '^$' -bench Convergence -benchtime 1x ./test/bench/operator/
//
// SLUICE_BENCH_NODES and SLUICE_BENCH_POLICIES change the scale (default
// 1000 nodes, 20 policies), SLUICE_BENCH_AGENT_APPLY how long a simulated
// agent takes to apply a spec (default 100ms, about an MTU change). Nothing here asserts a duration or a count: the
// figures are reported as benchmark metrics.
package operator

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
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
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
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
	// changedMTU is what the policy change sets every policy's MTU to.
	changedMTU = 9000
)

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		b.Fatalf("%s=%q: want a duration such as 100ms", name, v)
	}
	return d
}

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
	// agentApply is how long a simulated agent takes to apply a spec,
	// between its InProgress and its Succeeded status patch.
	agentApply time.Duration
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
// discovered PFs and an empty spec already synced, policies), starts one
// simulated agent per node (simAgents) and then the operator, and
// measures:
//
//   - specs-s: the time until every NodeNetworkState spec is rendered;
//   - render-s: until every policy also reports its matched count;
//   - ready-s: until every policy reports all its nodes ready, the agents
//     reporting as soon as they see their spec;
//   - change-s: the time from a rollout that changes every policy (its MTU,
//     one update after the other) until every policy reports all its nodes
//     ready at its new generation;
//   - nns-writes and nns-conflicts: the operator's NodeNetworkState writes
//     (create, update, patch; not status) over the run, and how many of
//     them the API server refused with 409 Conflict;
//   - agent-patches: the simulated agents' status patches over the run;
//   - the peak Go heap of the process (operator, agents and the benchmark's
//     own client) and its peak RSS.
func BenchmarkConvergence(b *testing.B) {
	ctrl.SetLogger(logr.Discard())
	s := scenario{
		nodes:      envInt(b, "SLUICE_BENCH_NODES", 1000),
		policies:   envInt(b, "SLUICE_BENCH_POLICIES", 20),
		agentApply: envDuration(b, "SLUICE_BENCH_AGENT_APPLY", 100*time.Millisecond),
	}
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

// writeCounter counts the operator's NodeNetworkState writes, by the HTTP
// requests its client sends, and the 409 Conflict answers to them.
type writeCounter struct {
	writes, conflicts atomic.Int64
}

func (w *writeCounter) snapshot() (writes, conflicts int64) {
	return w.writes.Load(), w.conflicts.Load()
}

// countingTransport feeds a writeCounter.
type countingTransport struct {
	next    http.RoundTripper
	counter *writeCounter
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if isNodeStateWrite(req) {
		t.counter.writes.Add(1)
		if err == nil && resp.StatusCode == http.StatusConflict {
			t.counter.conflicts.Add(1)
		}
	}
	return resp, err
}

// isNodeStateWrite: a create, update or patch of a NodeNetworkState other
// than of its status.
func isNodeStateWrite(req *http.Request) bool {
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return false
	}
	prefix := fmt.Sprintf("/apis/%s/%s/nodenetworkstates", sluicev1.GroupVersion.Group, sluicev1.GroupVersion.Version)
	return strings.HasPrefix(req.URL.Path, prefix) && !strings.HasSuffix(req.URL.Path, "/status")
}

// simAgents stand in for the node agents of the scenario's nodes. Each
// reacts to a new generation of its NodeNetworkState as the agent does
// (controllers/agent): a status patch InProgress at that generation, the
// apply (scenario.agentApply), then a patch Succeeded. The patches are JSON
// merge patches without a resourceVersion, as the agent's: they never
// conflict themselves, but each one changes the resourceVersion under any
// writer of the object that sends the one it read.
type simAgents struct {
	c       client.Client
	cache   cache.Cache
	kicks   map[string]chan struct{}
	apply   time.Duration
	patches atomic.Int64
	// err is the first error of any agent.
	errOnce sync.Once
	err     error
	wg      sync.WaitGroup
}

// startAgents starts one agent per node of s and returns once they watch
// their NodeNetworkStates; they stop with ctx.
func startAgents(ctx context.Context, cfg *rest.Config, c client.Client, s scenario) (*simAgents, error) {
	ca, err := cache.New(cfg, cache.Options{Scheme: c.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("agents' cache: %w", err)
	}
	a := &simAgents{c: c, cache: ca, kicks: map[string]chan struct{}{}, apply: s.agentApply}
	for j := range s.nodes {
		a.kicks[s.nodeName(j)] = make(chan struct{}, 1)
	}
	inf, err := ca.GetInformer(ctx, &sluicev1.NodeNetworkState{})
	if err != nil {
		return nil, fmt.Errorf("agents' informer: %w", err)
	}
	kick := func(obj any) {
		if o, ok := obj.(client.Object); ok {
			if ch := a.kicks[o.GetName()]; ch != nil {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    kick,
		UpdateFunc: func(_, obj any) { kick(obj) },
	}); err != nil {
		return nil, fmt.Errorf("agents' event handler: %w", err)
	}
	a.wg.Go(func() {
		if err := ca.Start(ctx); err != nil {
			a.fail(err)
		}
	})
	if !ca.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("agents' cache did not sync")
	}
	for name, ch := range a.kicks {
		a.wg.Go(func() { a.run(ctx, name, ch) })
	}
	return a, nil
}

func (a *simAgents) fail(err error) {
	a.errOnce.Do(func() { a.err = err })
}

// run is one node's agent: one sync at a time, as the agent's reconciler.
func (a *simAgents) run(ctx context.Context, name string, kick <-chan struct{}) {
	var reported int64 // the generation last reported Succeeded
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		nns := &sluicev1.NodeNetworkState{}
		if err := a.cache.Get(ctx, client.ObjectKey{Name: name}, nns); err != nil {
			if ctx.Err() == nil {
				a.fail(fmt.Errorf("agent %s: %w", name, err))
			}
			continue
		}
		gen := nns.Generation
		if gen <= reported || (nns.Status.ObservedGeneration == gen && nns.Status.SyncStatus == sluicev1.SyncSucceeded) {
			continue
		}
		if err := a.report(ctx, nns, sluicev1.SyncInProgress, gen); err != nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.apply):
		}
		if err := a.report(ctx, nns, sluicev1.SyncSucceeded, gen); err != nil {
			continue
		}
		reported = gen
	}
}

func (a *simAgents) report(ctx context.Context, nns *sluicev1.NodeNetworkState, result sluicev1.SyncStatus, gen int64) error {
	base := nns.DeepCopy()
	nns.Status.SyncStatus = result
	nns.Status.ObservedGeneration = gen
	err := a.c.Status().Patch(ctx, nns, client.MergeFrom(base))
	if err != nil {
		if ctx.Err() == nil {
			a.fail(fmt.Errorf("agent %s: patch status %s: %w", nns.Name, result, err))
		}
		return err
	}
	a.patches.Add(1)
	return nil
}

// stop waits for the agents, whose context must be cancelled, and returns
// the first error any of them had.
func (a *simAgents) stop() error {
	a.wg.Wait()
	return a.err
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
		// The agent has discovered the PFs and synced the empty spec.
		nns.Status.Interfaces = interfaces()
		nns.Status.SyncStatus = sluicev1.SyncSucceeded
		nns.Status.ObservedGeneration = nns.Generation
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

	runCtx, cancel := context.WithCancel(ctx)
	agents, err := startAgents(runCtx, cfg, c, s)
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	defer func() {
		cancel()
		if err := agents.stop(); err != nil {
			b.Errorf("simulated agents: %v", err)
		}
	}()

	runtime.GC()
	mem := startMemSampler()
	var writes writeCounter
	opCfg := rest.CopyConfig(cfg)
	opCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{next: rt, counter: &writes} })
	mgr, err := controllers.NewManager(controllers.Options{
		RestConfig:                   opCfg,
		Namespace:                    controllers.DefaultNamespace,
		MetricsBindAddress:           "0",
		NodeDaemonSet:                controllers.NodeDaemonSetOptions{Image: "registry.example/sluice:bench", MaxUnavailable: 1},
		SkipControllerNameValidation: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	opCtx, stopOperator := context.WithCancel(runCtx)
	done := make(chan error, 1)
	b.StartTimer()
	start := time.Now()
	go func() { done <- mgr.Start(opCtx) }()
	defer func() {
		stopOperator()
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
	// counts checks every policy's status against its current generation.
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
				if got == nil {
					return fmt.Errorf("policy %s missing", p.Name)
				}
				want := s.matched(i)
				if got.Status.ObservedGeneration != got.Generation || got.Status.MatchedNodes != want || (ready && got.Status.ReadyNodes != want) {
					return fmt.Errorf("policy %s generation %d: status %+v, want matched=%d", p.Name, got.Generation, got.Status, want)
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
	if err := waitFor(waitCtx, 250*time.Millisecond, counts(true)); err != nil {
		b.Fatal(err)
	}
	ready := time.Since(start)
	firstWrites, firstConflicts := writes.snapshot()

	// A rollout changes every policy, one update after the other, while
	// the agents apply what the operator renders.
	changeStart := time.Now()
	for i := range s.policies {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p := &sluicev1.NetworkNodePolicy{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(s.policy(i)), p); err != nil {
				return err
			}
			p.Spec.MTU = changedMTU
			return c.Update(ctx, p)
		})
		if err != nil {
			b.Fatalf("change policy %d: %v", i, err)
		}
	}
	if err := waitFor(waitCtx, 250*time.Millisecond, counts(true)); err != nil {
		b.Fatal(err)
	}
	change := time.Since(changeStart)
	b.StopTimer()
	peak := mem.Stop()
	totalWrites, totalConflicts := writes.snapshot()

	b.Logf("reconciles: %s", reconcileCounts(b))
	b.ReportMetric(renderedAt.Seconds(), "specs-s")
	b.ReportMetric(render.Seconds(), "render-s")
	b.ReportMetric(ready.Seconds(), "ready-s")
	b.ReportMetric(change.Seconds(), "change-s")
	b.ReportMetric(float64(totalWrites), "nns-writes")
	b.ReportMetric(float64(totalConflicts), "nns-conflicts")
	b.ReportMetric(float64(agents.patches.Load()), "agent-patches")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(vmHWM())/(1<<20), "peak-rss-MiB")
	b.Logf("%d nodes x %d policies, agents applying in %s: all specs rendered after %s, all matched counts after %s, all ready counts after %s; "+
		"a change of every policy was ready everywhere after %s; the operator wrote NodeNetworkStates %d times (%d conflicts) until all were ready and %d times (%d conflicts) for the change; "+
		"the agents patched their status %d times; peak heap %.0f MiB, peak RSS %.0f MiB",
		s.nodes, s.policies, s.agentApply, renderedAt.Round(time.Millisecond), render.Round(time.Millisecond), ready.Round(time.Millisecond),
		change.Round(time.Millisecond), firstWrites, firstConflicts, totalWrites-firstWrites, totalConflicts-firstConflicts,
		agents.patches.Load(), float64(peak)/(1<<20), float64(vmHWM())/(1<<20))
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
