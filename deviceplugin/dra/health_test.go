package dra

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	drahealthv1 "k8s.io/kubelet/pkg/apis/dra-health/v1"
)

// wait bounds every wait for a report: generous, nothing is timed.
const wait = 10 * time.Second

// newHealthEnv is a prepare env (fake node, config) whose driver resends
// the devices' health every resend and publishes its slices nowhere.
func newHealthEnv(t *testing.T, resend time.Duration) *env {
	e := newPrepareEnv(t, config)
	e.opts.HealthResend, e.opts.HealthCheckTimeout = resend, max(DefaultHealthCheckTimeout, 2*resend)
	e.restart()
	e.d.publish = func(context.Context, resourceslice.DriverResources) error { return nil }
	return e
}

// publish hands the driver a scan of the node, as the agent does.
func (e *env) publish() {
	e.t.Helper()
	if err := e.d.Publish(context.Background(), scan(e.t, e.n, e.cfg)); err != nil {
		e.t.Fatal(err)
	}
}

// watcher is one WatchHealthStatus call, as the helper makes it for a
// kubelet stream.
type watcher struct {
	t       *testing.T
	reports chan kubeletplugin.DeviceHealthReport
	cancel  context.CancelFunc
	done    chan error
}

func (e *env) watch() *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{t: e.t, reports: make(chan kubeletplugin.DeviceHealthReport), cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- e.d.WatchHealthStatus(ctx, w.reports) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-w.done:
			w.done <- err
		case <-time.After(wait):
			e.t.Errorf("canceled WatchHealthStatus still running after %s", wait)
		}
	})
	return w
}

// next is the watcher's next report.
func (w *watcher) next(what string) kubeletplugin.DeviceHealthReport {
	w.t.Helper()
	select {
	case r := <-w.reports:
		return r
	case err := <-w.done:
		w.done <- err
		w.t.Fatalf("%s: WatchHealthStatus returned %v, want reports", what, err)
	case <-time.After(wait):
		w.t.Fatalf("%s: no health report in %s", what, wait)
	}
	return kubeletplugin.DeviceHealthReport{}
}

// stop cancels the watcher and waits for WatchHealthStatus to return.
func (w *watcher) stop() {
	w.t.Helper()
	w.cancel()
	select {
	case err := <-w.done:
		w.done <- err // for the cleanup
		if err != nil {
			w.t.Errorf("canceled WatchHealthStatus returned %v, want nil", err)
		}
	case <-time.After(wait):
		w.t.Fatalf("canceled WatchHealthStatus still running after %s", wait)
	}
}

// health is a report as "device=Health(message)" in device order.
func health(r kubeletplugin.DeviceHealthReport) []string {
	var out []string
	for _, d := range r.Devices {
		s := fmt.Sprintf("%s/%s=%s", d.PoolName, d.DeviceName, d.Health)
		if d.Message != "" {
			s += "(" + d.Message + ")"
		}
		out = append(out, s)
	}
	return out
}

// wantHealth is every DRA VF of testNode with 2 VFs per PF, those of PFs
// in unhealthy with the message.
func (e *env) wantHealth(vfs int, unhealthy map[string]string) []string {
	var out []string
	for _, pf := range []string{cx0, e810} {
		for i := range vfs {
			s := "node-a/" + DeviceName(e.n.VFAddress(pf, i)) + "="
			if msg, ok := unhealthy[pf]; ok {
				s += "Unhealthy(" + msg + ")"
			} else {
				s += "Healthy"
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func checkHealth(t *testing.T, what string, r kubeletplugin.DeviceHealthReport, want []string) {
	t.Helper()
	if got := health(r); !slices.Equal(got, want) {
		t.Fatalf("%s: report\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestHealthInitialReport: a watcher gets the health of every published
// device at once, in the node's pool, an unhealthy one with its reason,
// each with the driver's health check timeout.
func TestHealthInitialReport(t *testing.T) {
	e := newHealthEnv(t, time.Hour)
	e.n.SetCarrier("ens2f0", false)
	e.publish()
	r := e.watch().next("initial report")
	checkHealth(t, "initial report", r, e.wantHealth(2, map[string]string{e810: "PF ens2f0 has no carrier (link lower-layer-down)"}))
	for _, d := range r.Devices {
		if d.HealthCheckTimeout != e.opts.HealthCheckTimeout || d.LastUpdated.IsZero() {
			t.Errorf("%s: timeout %s, last updated %s, want %s and the scan's time", d.DeviceName, d.HealthCheckTimeout, d.LastUpdated, e.opts.HealthCheckTimeout)
		}
	}
}

// TestHealthChangeReportedAtOnce: a Publish that changes a device's health
// or the set of devices is reported without waiting for the resend (an
// hour here); one that changes nothing is not.
func TestHealthChangeReportedAtOnce(t *testing.T) {
	e := newHealthEnv(t, time.Hour)
	e.publish()
	w := e.watch()
	checkHealth(t, "initial report", w.next("initial report"), e.wantHealth(2, nil))

	e.publish() // nothing changed: no report
	e.n.SetCarrier("ens2f0", false)
	e.publish()
	checkHealth(t, "after ens2f0 lost its carrier", w.next("carrier loss"), e.wantHealth(2, map[string]string{e810: "PF ens2f0 has no carrier (link lower-layer-down)"}))

	e.n.SetCarrier("ens2f0", true)
	e.n.SetNumVFs(cx0, 1)
	e.n.SetNumVFs(e810, 1)
	e.publish()
	checkHealth(t, "after 1 VF per PF", w.next("fewer VFs"), e.wantHealth(1, nil))
}

// TestHealthResentPeriodically: without any change, the health is sent
// again every HealthResend, so that the kubelet's copy never goes stale.
func TestHealthResentPeriodically(t *testing.T) {
	e := newHealthEnv(t, 20*time.Millisecond)
	e.publish()
	w := e.watch()
	for i := range 4 {
		checkHealth(t, fmt.Sprintf("report %d", i), w.next(fmt.Sprintf("report %d", i)), e.wantHealth(2, nil))
	}
}

// TestHealthTwoWatchers: each watcher (the kubelet reconnected while the
// old stream lingers) gets the initial report and every change.
func TestHealthTwoWatchers(t *testing.T) {
	e := newHealthEnv(t, time.Hour)
	e.publish()
	a, b := e.watch(), e.watch()
	for _, w := range []*watcher{a, b} {
		checkHealth(t, "initial report", w.next("initial report"), e.wantHealth(2, nil))
	}
	e.n.SetCarrier("ens1f0", false)
	e.publish()
	for _, w := range []*watcher{b, a} {
		checkHealth(t, "after ens1f0 lost its carrier", w.next("carrier loss"), e.wantHealth(2, map[string]string{cx0: "PF ens1f0 has no carrier (link lower-layer-down)"}))
	}
}

// TestHealthWatcherGoneNeverBlocksPublish: Publish returns while a
// watcher takes no report (a stuck stream), and a canceled watcher
// returns nil; the others keep getting reports.
func TestHealthWatcherGoneNeverBlocksPublish(t *testing.T) {
	e := newHealthEnv(t, time.Hour)
	stuck, live := e.watch(), e.watch()
	checkHealth(t, "before any Publish", live.next("initial report"), nil)

	published := make(chan struct{})
	go func() {
		defer close(published)
		for _, up := range []bool{false, true, false, true} {
			e.n.SetCarrier("ens2f0", up)
			if err := e.d.Publish(context.Background(), scan(t, e.n, e.cfg)); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-published:
	case <-time.After(wait):
		t.Fatalf("Publish blocked for %s behind a watcher that takes no report", wait)
	}
	stuck.stop()
	e.n.SetCarrier("ens2f0", false)
	e.publish()
	// live may have seen the changes above or only their outcome: the
	// last report is the last Publish's.
	want := e.wantHealth(2, map[string]string{e810: "PF ens2f0 has no carrier (link lower-layer-down)"})
	for {
		r := live.next("changes after the stuck watcher left")
		if slices.Equal(health(r), want) {
			break
		}
	}
	live.stop()
}

// TestHealthServedToTheKubelet: with the driver started, the kubelet's
// DRAResourceHealth stream on the plugin's socket gets the published
// devices' health; NoHealth turns the service off.
func TestHealthServedToTheKubelet(t *testing.T) {
	for _, noHealth := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoHealth=%v", noHealth), func(t *testing.T) {
			e := newPrepareEnv(t, config)
			dir := t.TempDir()
			o := e.opts
			o.NodeUID, o.KubeClient = "node-a-uid", fake.NewClientset()
			o.PluginDir, o.RegistryDir = filepath.Join(dir, "p"), filepath.Join(dir, "r")
			o.NoHealth = noHealth
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			d, err := Start(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Stop()
			e.d = d
			e.publish()

			conn, err := grpc.NewClient("unix://"+filepath.Join(o.PluginDir, "dra.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			sctx, scancel := context.WithTimeout(ctx, wait)
			defer scancel()
			stream, err := drahealthv1.NewDRAResourceHealthClient(conn).NodeWatchResources(sctx, &drahealthv1.NodeWatchResourcesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if noHealth {
				if err == nil {
					t.Fatalf("NoHealth: the kubelet got a health report %v", resp)
				}
				return
			}
			if err != nil {
				t.Fatalf("health stream: %v", err)
			}
			var got []string
			for _, dev := range resp.GetDevices() {
				got = append(got, fmt.Sprintf("%s/%s=%s", dev.GetDevice().GetPoolName(), dev.GetDevice().GetDeviceName(), dev.GetHealth()))
				if dev.GetHealthCheckTimeoutSeconds() != int64(DefaultHealthCheckTimeout/time.Second) {
					t.Errorf("%s: health check timeout %d s, want %s", dev.GetDevice().GetDeviceName(), dev.GetHealthCheckTimeoutSeconds(), DefaultHealthCheckTimeout)
				}
			}
			want := e.wantHealth(2, nil)
			for i := range want {
				want[i] = strings.Replace(want[i], "=Healthy", "=HEALTHY", 1)
			}
			if !slices.Equal(got, want) {
				t.Errorf("kubelet got %v, want %v", got, want)
			}
		})
	}
}
