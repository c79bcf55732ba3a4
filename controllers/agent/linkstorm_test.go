package agent

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

// stormVeths is the size of a link storm: veth pairs created, brought up
// and deleted, as a node starting and stopping a thousand pods does.
const stormVeths = 1000

// maxStormSyncs bounds the syncs (and device plugin rescans) a storm of
// unrelated links may cause: none is due; one is allowed for a netlink
// overflow (ENOBUFS), after which events were lost and one resync is.
const maxStormSyncs = 2

// TestLinkStormTriggersNothing: 1,000 veth pairs created and deleted in the
// node's namespace, none of them a PF or a VF, make the agent sync and the
// device plugin rescan at most maxStormSyncs times, and write nothing to
// the API server.
func TestLinkStormTriggersNothing(t *testing.T) {
	s := newLinkStorm(t)
	before := s.settle()
	start := time.Now()
	s.storm(stormVeths)
	took := time.Since(start)
	d := s.settle().minus(before)
	t.Logf("%d veth pairs added, up and deleted in %s: %s", stormVeths, took.Round(time.Millisecond), d)
	if d.syncs > maxStormSyncs {
		t.Errorf("the storm caused %d agent syncs, want at most %d", d.syncs, maxStormSyncs)
	}
	if d.rescans > maxStormSyncs {
		t.Errorf("the storm caused %d device plugin rescans, want at most %d", d.rescans, maxStormSyncs)
	}
	if d.writes != 0 {
		t.Errorf("the storm caused %d API writes, want none", d.writes)
	}
}

// BenchmarkLinkStorm measures what a storm of 1,000 unrelated veth pairs
// (created, up, deleted) costs the agent and its device plugin: syncs,
// rescans, API reads and writes, and the test process's CPU time per storm.
func BenchmarkLinkStorm(b *testing.B) {
	ctrl.SetLogger(logr.Discard()) // controller-runtime's own, which warns on stderr when unset
	s := newLinkStorm(b)
	before := s.settle()
	cpu0 := cpuTime(b)
	var took time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		s.storm(stormVeths)
		took += time.Since(start)
	}
	b.StopTimer()
	d := s.settle().minus(before)
	cpu := cpuTime(b) - cpu0
	n := float64(b.N)
	b.ReportMetric(cpu.Seconds()*1000/n, "cpu-ms/storm")
	b.ReportMetric(float64(d.syncs)/n, "syncs/storm")
	b.ReportMetric(float64(d.rescans)/n, "rescans/storm")
	b.ReportMetric(float64(d.writes)/n, "apiwrites/storm")
	b.ReportMetric(float64(d.reads)/n, "apireads/storm")
	b.ReportMetric(took.Seconds()/n, "storm-s")
}

// cpuTime is the CPU time (user and system) the test process used so far:
// the agent and its device plugin, the storm's own netlink requests, not
// the API server.
func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// linkStorm is an agent with its in-process device plugin over a fake
// node with one configured PF and a pod on one of its VFs, whose link
// watchers subscribe in a network namespace of the test's own, where the
// storm is made.
type linkStorm struct {
	tb  testing.TB
	h   *harness
	ns  ns.NetNS
	nl  *netlink.Handle
	reg *prometheus.Registry
	api *apiCounter
}

func newLinkStorm(tb testing.TB) *linkStorm {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates a network namespace and veth links")
	}
	h := newHarness(tb)
	nsHandle, err := testutils.NewNS()
	if err != nil {
		tb.Fatalf("create network namespace: %v", err)
	}
	tb.Cleanup(func() {
		_ = nsHandle.Close()
		_ = testutils.UnmountNS(nsHandle)
	})
	nl, err := netlink.NewHandleAt(netns.NsHandle(nsHandle.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nl.Close)
	s := &linkStorm{tb: tb, h: h, ns: nsHandle, nl: nl, reg: prometheus.NewRegistry(), api: &apiCounter{}}

	h.node.AddPF(hosttest.E810(pfA, "ens1f0", 0))
	watched, err := host.OpenNetns(nsHandle.Path())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = watched.Close() })
	links := nsLinks{ns: watched}
	kubelet := kubelettest.New(tb)
	cfg := rest.CopyConfig(h.opts.RestConfig)
	cfg.Wrap(s.api.wrap)
	h.opts.RestConfig = cfg
	h.opts.ResyncPeriod = time.Hour // only the storm may bring a sync
	h.opts.WatchLinks = true
	h.opts.LinkEvents = links
	h.opts.Metrics = s.reg
	h.opts.AttachmentsDir = filepath.Join(h.dir, "attachments")
	h.opts.DevicePlugin = &deviceplugin.Options{KubeletDir: kubelet.Dir, Resync: time.Hour, LinkEvents: links}
	if _, ok := tb.(*testing.B); ok {
		h.opts.Logger = logr.Discard()
		h.opts.DevicePlugin.Log = logr.Discard()
	}
	h.start()
	h.waitFor("the agent's NodeNetworkState", func(*sluicev1.NodeNetworkState) error { return nil })
	gen := h.setSpec(nVFs(pfA, "ens1f0", 4))
	h.synced(sluicev1.SyncSucceeded, gen)
	// A pod on VF 0: every sync reads it from the API.
	h.usage.use(h.node.VFAddress(pfA, 0), h.pod("vf-user", nil))
	return s
}

// stormCounts are the agent's syncs, the device plugin's rescans and the
// API requests so far.
type stormCounts struct{ syncs, rescans, writes, reads int }

func (c stormCounts) minus(o stormCounts) stormCounts {
	return stormCounts{c.syncs - o.syncs, c.rescans - o.rescans, c.writes - o.writes, c.reads - o.reads}
}

func (c stormCounts) String() string {
	return fmt.Sprintf("%d agent syncs, %d device plugin rescans, %d API writes, %d API reads", c.syncs, c.rescans, c.writes, c.reads)
}

func (s *linkStorm) counts() stormCounts {
	s.tb.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		s.tb.Fatal(err)
	}
	c := stormCounts{writes: int(s.api.writes.Load()), reads: int(s.api.reads.Load())}
	for _, mf := range mfs {
		var n *int
		switch mf.GetName() {
		case "sluice_agent_sync_duration_seconds":
			n = &c.syncs
		case "sluice_deviceplugin_scan_duration_seconds":
			n = &c.rescans
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			*n += int(m.GetHistogram().GetSampleCount())
		}
	}
	return c
}

// settle waits until nothing has happened for longer than the agent's
// quiet period after link events (2 s), and returns the counts then.
func (s *linkStorm) settle() stormCounts {
	s.tb.Helper()
	const still = 3 * time.Second
	deadline := time.Now().Add(time.Minute)
	last, since := s.counts(), time.Now()
	for time.Since(since) < still {
		if time.Now().After(deadline) {
			s.tb.Fatalf("still busy after a minute: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
		if c := s.counts(); c != last {
			last, since = c, time.Now()
		}
	}
	return last
}

// The storm comes in batches of stormBatch veth pairs, one batch every
// stormPace: a node creating and tearing down a hundred pods a second, for
// ten seconds, longer than the agent's quiet period after link events
// (2 s). A batch's pairs are deleted with one request, by link group (the
// kernel still sends a message per link): one by one, each deletion waits
// for an RCU grace period, tens of milliseconds.
const (
	stormBatch      = 50
	stormPace       = 500 * time.Millisecond
	stormFirstGroup = 100
)

// storm creates n veth pairs in the namespace, brings them up and deletes
// them, a batch at a time.
func (s *linkStorm) storm(n int) {
	s.tb.Helper()
	start := time.Now()
	for b := 0; b*stormBatch < n; b++ {
		group := uint32(stormFirstGroup + b)
		for i := b * stormBatch; i < min(n, (b+1)*stormBatch); i++ {
			la := netlink.NewLinkAttrs()
			la.Name, la.Group = fmt.Sprintf("st%d", i), group
			v := &netlink.Veth{LinkAttrs: la, PeerName: fmt.Sprintf("st%dp", i)}
			if err := s.nl.LinkAdd(v); err != nil {
				s.tb.Fatalf("add veth %s: %v", la.Name, err)
			}
			if err := s.nl.LinkSetUp(v); err != nil {
				s.tb.Fatalf("set %s up: %v", la.Name, err)
			}
		}
		if err := s.ns.Do(func(ns.NetNS) error {
			req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
			req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
			req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
			_, err := req.Execute(unix.NETLINK_ROUTE, 0)
			return err
		}); err != nil {
			s.tb.Fatalf("delete the storm's veths of group %d: %v", group, err)
		}
		time.Sleep(time.Until(start.Add(time.Duration(b+1) * stormPace)))
	}
	if ls, err := s.nl.LinkList(); err != nil || len(ls) != 1 {
		s.tb.Fatalf("after the storm: %d links (%v), want lo alone", len(ls), err)
	}
}

// nsLinks subscribes to link events in one network namespace.
type nsLinks struct{ ns *host.Netns }

func (l nsLinks) Subscribe(ctx context.Context, keep func(host.LinkEvent) bool) (<-chan string, error) {
	return l.ns.SubscribeLinks(ctx, keep)
}

// apiCounter counts the requests sent to the API server: writes (every
// method but GET) and reads (GETs other than watches).
type apiCounter struct{ writes, reads atomic.Int64 }

func (c *apiCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		switch {
		case req.Method != http.MethodGet:
			c.writes.Add(1)
		case req.URL.Query().Get("watch") != "true":
			c.reads.Add(1)
		}
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
