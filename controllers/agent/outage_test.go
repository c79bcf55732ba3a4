package agent

import (
	"context"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"k8s.io/client-go/rest"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	"github.com/sluice-net/sluice/host"
)

// apiProxy stands between the agent and the API server: down, nothing
// listens on its address (connection refused), as on a node that boots
// before its control plane.
type apiProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	l      net.Listener
	conns  []net.Conn
}

func newAPIProxy(t *testing.T, target string) *apiProxy {
	t.Helper()
	p := &apiProxy{t: t, addr: freeAddr(t), target: target}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.l != nil {
			p.l.Close()
		}
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

// up starts forwarding to the API server.
func (p *apiProxy) up() {
	p.t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *apiProxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); s.Close() }()
	_, _ = io.Copy(c, s)
	c.Close()
}

type noLinkEvents struct{}

func (noLinkEvents) Subscribe(context.Context, func(host.LinkEvent) bool) (<-chan string, error) {
	return make(chan string), nil
}

// configuredWithPlugin is an agent with its device plugin that configured
// pfA's 4 VFs as pool net1 and stopped, leaving its files behind.
func configuredWithPlugin(t *testing.T) (*harness, func(int32) func(*sluicev1.NodeNetworkStateSpec)) {
	t.Helper()
	kubelet := kubelettest.New(t)
	h := twoPFHarness(t, func(h *harness) {
		h.opts.DevicePlugin = &deviceplugin.Options{KubeletDir: kubelet.Dir, Resync: time.Hour, LinkEvents: noLinkEvents{}, AttachmentsDir: filepath.Join(h.dir, "attachments")}
	})
	withPool := func(n int32) func(*sluicev1.NodeNetworkStateSpec) {
		return func(s *sluicev1.NodeNetworkStateSpec) {
			twoPFs(n, nil)(s)
			s.Pools = []sluicev1.DevicePluginPool{{ResourceName: "net1", Selectors: sluicev1.PoolSelectors{PFNames: []string{"ens1f0"}}}}
		}
	}
	h.synced(sluicev1.SyncSucceeded, h.setSpec(withPool(4)))
	kubelet.Wait(DefaultResourcePrefix+"/net1", 10*time.Second, "pfA's 4 VFs advertised", func(s kubelettest.Snapshot) bool {
		return s.Streaming && s.Healthy() == 4
	})
	h.stop()
	return h, withPool
}

// restartCounted starts the agent again on a fresh kubelet directory,
// waits for its controller to stop and start again twice, and checks the
// device plugin served all along.
func (h *harness) restartCounted() *kubelettest.Kubelet {
	h.t.Helper()
	var restarts atomic.Int32
	base := h.opts.Logger
	h.opts.Logger = funcr.New(func(prefix, args string) {
		if strings.Contains(args, "the agent stopped") {
			restarts.Add(1)
		}
		base.Info(prefix + " " + args)
	}, funcr.Options{})
	h.opts.CacheSyncTimeout = 300 * time.Millisecond
	kubelet := kubelettest.New(h.t)
	h.opts.DevicePlugin.KubeletDir = kubelet.Dir
	h.start()
	kubelet.Wait(DefaultResourcePrefix+"/net1", 10*time.Second, "pfA's 4 VFs advertised", func(s kubelettest.Snapshot) bool {
		return s.Streaming && s.Healthy() == 4
	})
	deadline := time.Now().Add(30 * time.Second)
	for restarts.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := restarts.Load(); n < 2 {
		h.t.Fatalf("the agent's controller stopped %d times in 30 s, want it restarted at least twice", n)
	}
	if s := kubelet.Plugin(DefaultResourcePrefix + "/net1"); !s.Streaming || s.Healthy() != 4 {
		h.t.Errorf("after %d restarts of the agent's controller, the kubelet has %s", restarts.Load(), s)
	}
	return kubelet
}

// TestDevicePluginOutlivesTheControlPlane: the agent restarts (its pod, or
// the node) while the API server cannot be reached. Building its
// controller fails, and used to take the device plugin down with it, so
// the node lost its allocatable VFs although they were configured. Now the
// plugin serves what the agent left configured, the controller is built
// again and again, and syncs once the API server is back.
func TestDevicePluginOutlivesTheControlPlane(t *testing.T) {
	h, withPool := configuredWithPlugin(t)
	u, err := url.Parse(h.env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newAPIProxy(t, u.Host)
	cfg := rest.CopyConfig(h.opts.RestConfig)
	cfg.Host = "https://" + proxy.addr
	h.opts.RestConfig = cfg
	kubelet := h.restartCounted()

	// The API server is back: the agent syncs a new spec.
	proxy.up()
	gen := h.setSpec(withPool(6))
	h.synced(sluicev1.SyncSucceeded, gen)
	kubelet.Wait(DefaultResourcePrefix+"/net1", 10*time.Second, "pfA's 6 VFs advertised", func(s kubelettest.Snapshot) bool {
		return s.Streaming && s.Healthy() == 6
	})
}

// TestDevicePluginOutlivesAnRBACError: the agent's controller cannot list
// its NodeNetworkState (its RBAC broken by an upgrade), so its caches never
// sync and it stops; the device plugin serves on.
func TestDevicePluginOutlivesAnRBACError(t *testing.T) {
	h, _ := configuredWithPlugin(t)
	cfg := rest.CopyConfig(h.opts.RestConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + h.ns + ":nobody"}
	h.opts.RestConfig = cfg
	h.restartCounted()
}
