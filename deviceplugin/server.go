package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// poolServer is the kubelet device plugin of one pool: a gRPC server on a
// unix socket in the kubelet's device-plugins directory. Its devices are
// replaced by the manager after each scan that changed them; every open
// ListAndWatch stream then sends the new list.
type poolServer struct {
	pluginapi.UnimplementedDevicePluginServer
	// metrics is nil when none are kept.
	metrics *metrics

	resource string
	dir      string
	log      logr.Logger
	alloc    allocator
	// attached, when set, lists the PCI addresses the CNI's registry
	// still has records for (prefer).
	attached func() (map[string]bool, error)

	mu      sync.Mutex
	pd      *PoolDevices
	changed chan struct{} // closed and replaced on every update
	srv     *grpc.Server
	stopped bool

	// registered is set once the kubelet accepted the registration.
	registered atomic.Bool

	// regMu serialises registrations; under it, served counts serve()
	// calls and regServed and regKubelet say which socket and which
	// kubelet (kubelet.sock's identity) the last accepted registration
	// was for. The kubelet (1.37) refuses a second registration of a
	// socket path it is connected to, and then drops its client for
	// that path, so its endpoint is never cleaned up: a registration is
	// sent only when the socket or the kubelet is new.
	regMu      sync.Mutex
	served     int
	regServed  int
	regKubelet string
	// attemptServed and attemptKubelet are the socket and kubelet of the
	// last registration sent, answered or not; watching counts the open
	// ListAndWatch streams. The kubelet opens one only after accepting a
	// registration, so a stream open on the socket of the last attempt to
	// the current kubelet means that attempt was accepted, even if its
	// answer came after the deadline (a busy node): sending it again
	// would be refused as "already connected".
	attemptServed  int
	attemptKubelet string
	watching       atomic.Int32
	// socketName is the socket's file name: socketName(resource), or a
	// fresh one when the kubelet holds a stale endpoint for that name.
	name string
}

func newPoolServer(pd *PoolDevices, dir string, alloc allocator, log logr.Logger) *poolServer {
	return &poolServer{
		resource: pd.Pool.Resource(), dir: dir, alloc: alloc, pd: pd,
		changed: make(chan struct{}), log: log.WithValues("resource", pd.Pool.Resource()),
		name: socketName(pd.Pool.Resource()),
	}
}

func (s *poolServer) socket() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return filepath.Join(s.dir, s.name)
}

// socketBase is the socket's file name.
func (s *poolServer) socketBase() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.name
}

// serve (re)creates the socket and serves on it, replacing a server whose
// socket is gone (the kubelet wipes the directory when it restarts).
func (s *poolServer) serve() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("server stopped")
	}
	if s.srv != nil {
		s.srv.Stop()
		s.srv = nil
	}
	path := filepath.Join(s.dir, s.name)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s (check --kubelet-dir): %w", path, err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, s)
	s.srv = srv
	s.served++
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error(err, "device plugin server ended")
		}
	}()
	return nil
}

// socketPresent reports whether the socket file is still there.
func (s *poolServer) socketPresent() bool {
	_, err := os.Stat(s.socket())
	return err == nil
}

// stop ends the server and its streams and removes its socket.
func (s *poolServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.srv != nil {
		s.srv.Stop()
		s.srv = nil
	}
	_ = os.Remove(filepath.Join(s.dir, s.name))
	close(s.changed)
}

// update replaces the pool's devices and wakes the streams.
func (s *poolServer) update(pd *PoolDevices) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.pd = pd
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *poolServer) current() (*PoolDevices, <-chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pd, s.changed, s.stopped
}

// renameSocket moves the server to a socket name the kubelet has not seen
// (it holds a stale endpoint for the current one) and serves there.
func (s *poolServer) renameSocket() error {
	s.mu.Lock()
	old := filepath.Join(s.dir, s.name)
	s.name = strings.TrimSuffix(socketName(s.resource), ".sock") + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".sock"
	s.mu.Unlock()
	if err := s.serve(); err != nil {
		return err
	}
	_ = os.Remove(old)
	return nil
}

// register announces the pool to the kubelet, waiting at most timeout
// for its answer.
func (s *poolServer) register(ctx context.Context, kubeletSocket string, timeout time.Duration) error {
	conn, err := grpc.NewClient("unix://"+kubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to kubelet at %s: %w", kubeletSocket, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     s.socketBase(),
		ResourceName: s.resource,
		Options:      &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true},
	})
	if err != nil {
		return fmt.Errorf("register %s with the kubelet at %s: %w", s.resource, kubeletSocket, err)
	}
	return nil
}

// GetDevicePluginOptions tells the kubelet to ask for preferred allocations.
func (s *poolServer) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

// ListAndWatch sends the full list at once, then again on every change.
func (s *poolServer) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	s.watching.Add(1)
	defer s.watching.Add(-1)
	for {
		pd, changed, stopped := s.current()
		if stopped {
			return nil
		}
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: pd.apiDevices()}); err != nil {
			return fmt.Errorf("send %s devices: %w", s.resource, err)
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// GetPreferredAllocation prefers devices no pod still holds, then one
// NUMA node, spread over PFs.
func (s *poolServer) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	pd, _, _ := s.current()
	var attached map[string]bool
	if s.attached != nil {
		// Unreadable, the registry only loses its say in the choice.
		attached, _ = s.attached()
	}
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		ids := prefer(pd, attached, cr.AvailableDeviceIDs, cr.MustIncludeDeviceIDs, int(cr.AllocationSize))
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

// prefer is preferred, first among the available devices whose PCI
// address is not in attached (the attachment records). The kubelet frees
// a deleted pod's devices as soon as its containers are gone, before the
// runtime has run the CNI DEL of its sandbox; a VF handed out in between
// is refused by sluice-cni (still attached) until that DEL runs, which
// costs the new pod a failed sandbox and the kubelet's back-off. Such VFs
// are chosen only when too few others are available.
func prefer(pd *PoolDevices, attached map[string]bool, available, mustInclude []string, size int) []string {
	if len(attached) == 0 {
		return preferred(pd, available, mustInclude, size)
	}
	var free, held []string
	for _, id := range available {
		if d, ok := pd.Device(id); ok && attached[d.PCIAddress] {
			held = append(held, id)
			continue
		}
		free = append(free, id)
	}
	ids := preferred(pd, free, mustInclude, size)
	if len(ids) < size && len(held) > 0 {
		ids = preferred(pd, held, ids, size)
	}
	return ids
}

// Allocate hands out the devices of each container request.
func (s *poolServer) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	pd, _, _ := s.current()
	resp := &pluginapi.AllocateResponse{ContainerResponses: make([]*pluginapi.ContainerAllocateResponse, 0, len(req.ContainerRequests))}
	for _, cr := range req.ContainerRequests {
		c, err := s.alloc.container(pd, cr.DevicesIds)
		s.metrics.allocated(s.resource, len(cr.DevicesIds), err)
		if err != nil {
			s.log.Info("refused allocation", "devices", cr.DevicesIds, "error", err.Error())
			return nil, err
		}
		resp.ContainerResponses = append(resp.ContainerResponses, c)
	}
	return resp, nil
}

// PreStartContainer is not used (PreStartRequired is false).
func (s *poolServer) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
