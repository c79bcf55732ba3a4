package deviceplugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

// fakeLinks is a link event source the test fires by hand; it keeps the
// filter of the last subscription.
type fakeLinks struct {
	mu   sync.Mutex
	ch   chan string
	subs int
	keep func(host.LinkEvent) bool
}

func newFakeLinks() *fakeLinks { return &fakeLinks{ch: make(chan string, 16)} }

func (f *fakeLinks) Subscribe(_ context.Context, keep func(host.LinkEvent) bool) (<-chan string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs++
	f.keep = keep
	return f.ch, nil
}

// fire sends a link event, as the kernel does after a netdev change.
func (f *fakeLinks) fire(name string) {
	f.mu.Lock()
	ch := f.ch
	f.mu.Unlock()
	ch <- name
}

// overflow ends the subscription, as a netlink socket overflowing
// (ENOBUFS) does; the next one gets a fresh channel.
func (f *fakeLinks) overflow() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.ch)
	f.ch = make(chan string, 16)
}

// subscriptions counts the Subscribe calls.
func (f *fakeLinks) subscriptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs
}

// concerns asks the last subscriber's filter about ev.
func (f *fakeLinks) concerns(ev host.LinkEvent) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keep != nil && f.keep(ev)
}

// env is a running device plugin on a fake node, with a fake kubelet.
type env struct {
	t       *testing.T
	node    *hosttest.Node
	kubelet *kubelettest.Kubelet
	dir     string
	links   *fakeLinks
	m       *Manager
	trigger chan struct{}
	stop    func()
}

type envOption func(*Options)

// settle waits until the start's own file events have had their scans
// (under load one may come well after the registration) and returns the
// scan count then: a later change is seen only if the plugin itself
// notices it, not because a scan was still pending.
func (e *env) settle() int64 {
	e.t.Helper()
	before := e.m.scans.Load()
	for end := time.Now().Add(wait); time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond)
		now := e.m.scans.Load()
		if now == before {
			return now
		}
		before = now
	}
	e.t.Fatalf("scans did not settle within %v", wait)
	return 0
}

// newEnv starts the plugin with the given config (a Go value marshalled to
// JSON, or nil for no file) and the readiness gate open for every PF of
// the node (pass withGate to manage it).
func newEnv(t *testing.T, node *hosttest.Node, config any, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, node: node, kubelet: kubelettest.New(t), dir: t.TempDir(), links: newFakeLinks(), trigger: make(chan struct{}, 1)}
	o := Options{
		ConfigFile:     filepath.Join(e.dir, "run", "device-plugin.json"),
		ReadinessFile:  filepath.Join(e.dir, "run", "readiness.json"),
		KubeletDir:     e.kubelet.Dir,
		AttachmentsDir: filepath.Join(e.dir, "attachments"),
		DRAClaimsDir:   filepath.Join(e.dir, "dra-claims"),
		CDIDir:         filepath.Join(e.dir, "cdi"),
		DeviceInfoDir:  filepath.Join(e.dir, "devinfo"),
		Log:            testr.New(t),
		Host:           node.Host(),
		LinkEvents:     e.links,
		Trigger:        e.trigger,
		Resync:         time.Hour, // tests drive rescans by events
	}
	for _, f := range opts {
		f(&o)
	}
	if config != nil {
		e.writeConfig(config)
	}
	if o.ReadinessFile != "" {
		e.setGate(node.PFs()...)
	}
	m, err := NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	e.stop = func() { once.Do(func() { stop(cancel, done, t) }) }
	t.Cleanup(e.stop)
	return e
}

func stop(cancel context.CancelFunc, done <-chan error, t *testing.T) {
	{
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5s of cancel")
		}
	}
}

func (e *env) configPath() string { return e.m.opts.ConfigFile }

// writeConfig replaces the config as the agent does: temporary file and
// rename.
func (e *env) writeConfig(config any) {
	e.t.Helper()
	b, ok := config.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(config); err != nil {
			e.t.Fatal(err)
		}
	}
	path := filepath.Join(e.dir, "run", "device-plugin.json")
	if e.m != nil {
		path = e.configPath()
	}
	if err := nodefiles.WriteFileAtomic(path, b); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) setGate(ready ...string) {
	e.t.Helper()
	if err := nodefiles.WriteGate(filepath.Join(e.dir, "run", "readiness.json"), nodefiles.GateState{Generation: 1, Ready: ready}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) attach(pci, hostIf string) {
	e.t.Helper()
	if err := nodefiles.NewAttachments(filepath.Join(e.dir, "attachments")).Put(nodefiles.Record{PCIAddress: pci, ContainerID: "c1", IfName: "net1", HostIfName: hostIf}); err != nil {
		e.t.Fatal(err)
	}
}

// rescan asks for a rescan through Options.Trigger, as the agent does.
func (e *env) rescan() { e.trigger <- struct{}{} }

// native builds a native config.
func native(pools ...map[string]any) map[string]any {
	if pools == nil {
		pools = []map[string]any{}
	}
	return map[string]any{"resourcePrefix": "sluice.dev", "pools": pools}
}

func pool(name string, fields map[string]any) map[string]any {
	p := map[string]any{"resourceName": name}
	for k, v := range fields {
		p[k] = v
	}
	return p
}

// allHealthy is a Wait condition: n devices, all Healthy.
func allHealthy(n int) func(kubelettest.Snapshot) bool {
	return func(s kubelettest.Snapshot) bool { return len(s.Devices) == n && s.Healthy() == n }
}

func health(id, want string) func(kubelettest.Snapshot) bool {
	return func(s kubelettest.Snapshot) bool {
		d := s.Device(id)
		return d != nil && d.Health == want
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeFile overwrites a (read-only) sysfs file of the fake node.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
