// Package kubelettest is a fake kubelet for device plugin tests: a real
// gRPC Registration server on kubelet.sock in a directory, which on each
// Register dials the plugin's socket and keeps a ListAndWatch stream open,
// as the kubelet's device manager does. Tests read the devices each plugin
// last sent and call Allocate and GetPreferredAllocation through it.
package kubelettest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Kubelet is the fake kubelet.
type Kubelet struct {
	pluginapi.UnimplementedRegistrationServer

	// Dir is the device-plugins directory (kubelet.sock and plugin sockets).
	Dir string
	t   testing.TB

	mu      sync.Mutex
	srv     *grpc.Server
	plugins map[string]*Plugin
	changed chan struct{} // closed and replaced on every plugin change
	// refused counts registrations refused because the kubelet was
	// connected to that socket path already.
	refused int
	// replyDelay holds back Register's answer after the kubelet has
	// registered the plugin and opened its stream: a busy kubelet.
	replyDelay time.Duration
	// listenDelay is the time between binding kubelet.sock and listening
	// on it: a starting kubelet that refuses connections meanwhile.
	listenDelay time.Duration
}

// SetReplyDelay makes Register answer d after it has done its work, as a
// kubelet on a busy node does: the plugin may give up waiting although it
// was registered.
func (k *Kubelet) SetReplyDelay(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.replyDelay = d
}

// SetListenDelay makes Start bind kubelet.sock and listen on it only d
// later, as a kubelet starting on a busy node can: the socket exists, and
// connecting to it is refused.
func (k *Kubelet) SetListenDelay(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.listenDelay = d
}

// Refused is how many registrations were refused as "already connected".
func (k *Kubelet) Refused() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.refused
}

// Plugin is one registered resource as the fake kubelet sees it.
type Plugin struct {
	Resource string
	Endpoint string
	Options  *pluginapi.DevicePluginOptions
	// Registrations are the times the resource registered.
	Registrations []time.Time

	conn    *grpc.ClientConn
	client  pluginapi.DevicePluginClient
	cancel  context.CancelFunc
	devices []*pluginapi.Device
	lists   int // ListAndWatch messages received on the current stream
	streams int // ListAndWatch streams opened
	ended   bool
}

// New starts a fake kubelet in a new short directory (unix socket paths are
// limited to 108 bytes) and stops it when the test ends.
func New(t testing.TB) *Kubelet {
	t.Helper()
	dir, err := os.MkdirTemp("", "kubelet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return NewAt(t, dir)
}

// NewAt starts a fake kubelet in dir.
func NewAt(t testing.TB, dir string) *Kubelet {
	t.Helper()
	k, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	k.t = t
	t.Cleanup(k.Stop)
	return k
}

// Open starts a fake kubelet in dir outside a test (the demo's node runs
// one); Stop stops it. Wait and WaitGone need a test: use Until.
func Open(dir string) (*Kubelet, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fake kubelet: %w", err)
	}
	k := &Kubelet{Dir: dir, plugins: map[string]*Plugin{}, changed: make(chan struct{})}
	if err := k.Start(); err != nil {
		return nil, err
	}
	return k, nil
}

// Socket is kubelet.sock's path.
func (k *Kubelet) Socket() string { return filepath.Join(k.Dir, "kubelet.sock") }

// Start listens on kubelet.sock.
func (k *Kubelet) Start() error {
	_ = os.Remove(k.Socket())
	k.mu.Lock()
	delay := k.listenDelay
	k.mu.Unlock()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fake kubelet: socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: k.Socket()}); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("fake kubelet: bind %s: %w", k.Socket(), err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, k)
	k.mu.Lock()
	k.srv = srv
	k.mu.Unlock()
	listen := func() error {
		f := os.NewFile(uintptr(fd), k.Socket())
		defer f.Close()
		if err := syscall.Listen(fd, 128); err != nil {
			return fmt.Errorf("fake kubelet: listen: %w", err)
		}
		l, err := net.FileListener(f)
		if err != nil {
			return fmt.Errorf("fake kubelet: listen: %w", err)
		}
		go func() { _ = srv.Serve(l) }()
		return nil
	}
	if delay == 0 {
		return listen()
	}
	go func() {
		time.Sleep(delay)
		_ = listen() // a test sees a kubelet that never listens
	}()
	return nil
}

// Stop stops serving, removes kubelet.sock and ends every plugin stream.
func (k *Kubelet) Stop() {
	k.mu.Lock()
	srv := k.srv
	k.srv = nil
	plugins := k.plugins
	k.plugins = map[string]*Plugin{}
	k.notifyLocked()
	k.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	for _, p := range plugins {
		p.cancel()
		p.conn.Close()
	}
	_ = os.Remove(k.Socket())
}

// Restart does what a kubelet restart does to the directory: it stops,
// removes every socket in it (the plugins' too), and starts again.
func (k *Kubelet) Restart() error {
	k.Stop()
	entries, err := os.ReadDir(k.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sock") {
			if err := os.Remove(filepath.Join(k.Dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return k.Start()
}

func (k *Kubelet) notifyLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// Register is the kubelet's registration endpoint: it checks the request
// as the kubelet does, then dials the plugin and opens ListAndWatch.
func (k *Kubelet) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if req.Version != pluginapi.Version {
		return nil, fmt.Errorf("unsupported version %q", req.Version)
	}
	if strings.Contains(req.Endpoint, "/") {
		return nil, fmt.Errorf("endpoint %q must be a file name in %s", req.Endpoint, k.Dir)
	}
	if !strings.Contains(req.ResourceName, "/") {
		return nil, fmt.Errorf("resource %q is not an extended resource name", req.ResourceName)
	}
	// As the kubelet since 1.37 does: a socket path it is connected to
	// (its ListAndWatch stream open) cannot register again.
	k.mu.Lock()
	if old := k.plugins[req.ResourceName]; old != nil && old.Endpoint == req.Endpoint && old.streams > 0 && !old.ended {
		k.refused++
		k.mu.Unlock()
		return nil, fmt.Errorf("device plugin already connected: %s", filepath.Join(k.Dir, req.Endpoint))
	}
	k.mu.Unlock()
	conn, err := grpc.NewClient("unix://"+filepath.Join(k.Dir, req.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Plugin{Resource: req.ResourceName, Endpoint: req.Endpoint, Options: req.Options,
		conn: conn, client: pluginapi.NewDevicePluginClient(conn), cancel: cancel}
	k.mu.Lock()
	if old := k.plugins[req.ResourceName]; old != nil {
		p.Registrations = old.Registrations
		old.cancel()
		old.conn.Close()
	}
	p.Registrations = append(p.Registrations, time.Now())
	k.plugins[req.ResourceName] = p
	k.notifyLocked()
	delay := k.replyDelay
	k.mu.Unlock()
	go k.watch(ctx, p)
	time.Sleep(delay)
	return &pluginapi.Empty{}, nil
}

func (k *Kubelet) watch(ctx context.Context, p *Plugin) {
	stream, err := p.client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err == nil {
		k.mu.Lock()
		p.streams++
		k.mu.Unlock()
		for {
			var resp *pluginapi.ListAndWatchResponse
			resp, err = stream.Recv()
			if err != nil {
				break
			}
			k.mu.Lock()
			p.devices = resp.Devices
			p.lists++
			k.notifyLocked()
			k.mu.Unlock()
		}
	}
	k.mu.Lock()
	p.ended = true
	k.notifyLocked()
	k.mu.Unlock()
}

// Plugins are the registered resources, sorted.
func (k *Kubelet) Plugins() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for r := range k.plugins {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Snapshot is a plugin's state at one moment.
type Snapshot struct {
	Registered bool
	// Endpoint and Options are from the last registration.
	Endpoint      string
	Options       *pluginapi.DevicePluginOptions
	Registrations []time.Time
	Devices       []*pluginapi.Device
	// Streaming is true while its ListAndWatch stream is open.
	Streaming bool
	// Lists counts the ListAndWatch messages on the current stream.
	Lists int
}

// Healthy counts the Healthy devices.
func (s Snapshot) Healthy() int {
	n := 0
	for _, d := range s.Devices {
		if d.Health == pluginapi.Healthy {
			n++
		}
	}
	return n
}

// Device returns a device by ID.
func (s Snapshot) Device(id string) *pluginapi.Device {
	for _, d := range s.Devices {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// IDs are the device IDs in the order the plugin sent them.
func (s Snapshot) IDs() []string {
	out := make([]string, len(s.Devices))
	for i, d := range s.Devices {
		out[i] = d.ID
	}
	return out
}

func (k *Kubelet) snapshotLocked(resource string) Snapshot {
	p := k.plugins[resource]
	if p == nil {
		return Snapshot{}
	}
	return Snapshot{Registered: true, Endpoint: p.Endpoint, Options: p.Options, Registrations: slices.Clone(p.Registrations), Devices: p.devices,
		Streaming: p.streams > 0 && !p.ended, Lists: p.lists}
}

// Plugin returns a resource's current state.
func (k *Kubelet) Plugin(resource string) Snapshot {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.snapshotLocked(resource)
}

// Wait waits until cond holds for the resource's state and returns it; it
// fails the test after timeout, showing the last state.
func (k *Kubelet) Wait(resource string, timeout time.Duration, what string, cond func(Snapshot) bool) Snapshot {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := k.Until(ctx, resource, cond)
	if err != nil {
		k.t.Fatalf("%s: not within %v: %s", resource, timeout, what+"; last state: "+s.String())
	}
	return s
}

// Until waits until cond holds for the resource's state and returns it, or
// returns the last state and ctx's error.
func (k *Kubelet) Until(ctx context.Context, resource string, cond func(Snapshot) bool) (Snapshot, error) {
	for {
		k.mu.Lock()
		s := k.snapshotLocked(resource)
		ch := k.changed
		k.mu.Unlock()
		if cond(s) {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// WaitGone waits until a resource is no longer served: its stream ended.
func (k *Kubelet) WaitGone(resource string, timeout time.Duration) {
	k.t.Helper()
	k.Wait(resource, timeout, "plugin stopped", func(s Snapshot) bool { return !s.Streaming })
}

func (s Snapshot) String() string {
	if !s.Registered {
		return "not registered"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "registered %d times, streaming=%v, %d lists, devices:", len(s.Registrations), s.Streaming, s.Lists)
	for _, d := range s.Devices {
		fmt.Fprintf(&b, " %s=%s", d.ID, d.Health)
		if d.Topology != nil {
			for _, n := range d.Topology.Nodes {
				fmt.Fprintf(&b, "@numa%d", n.ID)
			}
		}
	}
	return b.String()
}

func (k *Kubelet) client(resource string) (pluginapi.DevicePluginClient, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.plugins[resource]
	if p == nil {
		return nil, errors.New(resource + " is not registered")
	}
	return p.client, nil
}

// Allocate asks the plugin for devices for one container.
func (k *Kubelet) Allocate(ctx context.Context, resource string, ids ...string) (*pluginapi.ContainerAllocateResponse, error) {
	c, err := k.client(resource)
	if err != nil {
		return nil, err
	}
	resp, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}})
	if err != nil {
		return nil, err
	}
	if len(resp.ContainerResponses) != 1 {
		return nil, fmt.Errorf("%d container responses for 1 request", len(resp.ContainerResponses))
	}
	return resp.ContainerResponses[0], nil
}

// Preferred asks the plugin for its preferred allocation for one container.
func (k *Kubelet) Preferred(ctx context.Context, resource string, available, mustInclude []string, size int) ([]string, error) {
	c, err := k.client(resource)
	if err != nil {
		return nil, err
	}
	resp, err := c.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
		{AvailableDeviceIDs: available, MustIncludeDeviceIDs: mustInclude, AllocationSize: int32(size)},
	}})
	if err != nil {
		return nil, err
	}
	if len(resp.ContainerResponses) != 1 {
		return nil, fmt.Errorf("%d container responses for 1 request", len(resp.ContainerResponses))
	}
	return resp.ContainerResponses[0].DeviceIDs, nil
}
