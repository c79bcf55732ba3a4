package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/sluice-net/sluice/cni/plugin"
	"github.com/sluice-net/sluice/host"
)

// orderIPAM is an IPAM plugin run in-process that records whether the pod
// already had its interface when the plugin started. With wait set it
// then waits (up to 10 s) for the interface: an ADD that ran it before
// moving the VF, one step after the other, would never get there.
type orderIPAM struct {
	wait bool
	// started is closed when the plugin's ADD starts.
	started chan struct{}

	mu             sync.Mutex
	adds           int
	presentAtStart bool
}

// ipamGate holds the VF's configuration until the IPAM plugin started
// (or 10 s passed).
type ipamGate struct {
	plugin.Node
	started chan struct{}
}

func (g ipamGate) ConfigureVFFrom(vf *host.VF, cfg host.VFConfig) error {
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
	}
	return g.Node.ConfigureVFFrom(vf, cfg)
}

func (f *orderIPAM) FindInPath(plugin string, _ []string) (string, error) {
	return "/fake/" + plugin, nil
}

func (f *orderIPAM) Decode([]byte) (version.PluginInfo, error) {
	return version.PluginSupports("1.1.0"), nil
}

func (f *orderIPAM) ExecPlugin(_ context.Context, _ string, _ []byte, environ []string) ([]byte, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if env["CNI_COMMAND"] != "ADD" {
		return nil, nil
	}
	present := func() bool {
		pod, err := ns.GetNS(env["CNI_NETNS"])
		if err != nil {
			return false
		}
		defer pod.Close()
		return pod.Do(func(ns.NetNS) error {
			_, err := netlink.LinkByName(env["CNI_IFNAME"])
			return err
		}) == nil
	}
	f.mu.Lock()
	f.adds++
	f.presentAtStart = present()
	if f.adds == 1 {
		close(f.started)
	}
	f.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); f.wait && !present(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return nil, errors.New("the interface never reached the pod")
		}
	}
	return []byte(`{"cniVersion":"1.1.0","ips":[{"address":"10.9.0.5/24"}]}`), nil
}

// TestIPAMBesideTheMove: host-local only allocates, so ADD runs it while
// the VF moves; dhcp needs the pod's interface, so it runs after the move.
func TestIPAMBesideTheMove(t *testing.T) {
	for _, c := range []struct {
		ipam        string
		wait        bool
		wantAtStart bool
	}{
		{ipam: "host-local", wait: true, wantAtStart: false},
		{ipam: "dhcp", wantAtStart: true},
	} {
		t.Run(c.ipam, func(t *testing.T) {
			e := newEnv(t, 1)
			pod := newNS(t)
			conf := e.conf(vfAddr(0), map[string]any{"ipam": map[string]any{"type": c.ipam}})
			fake := &orderIPAM{wait: c.wait, started: make(chan struct{})}
			var out bytes.Buffer
			p := e.plugin(&out)
			p.Exec = fake
			if c.wait {
				// The VF is configured (then moved) once the IPAM plugin
				// started, or after 10 s: a loaded machine cannot make the
				// plugin start late and find the interface there.
				p.Node = ipamGate{Node: p.Node, started: fake.started}
			}
			if err := e.in(func() error { return p.CmdAdd(cmdArgs(pod, "c1", "net1", conf)) }); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if fake.adds != 1 || fake.presentAtStart != c.wantAtStart {
				t.Errorf("%s ran %d times, the interface in the pod when it started: %v, want %v", c.ipam, fake.adds, fake.presentAtStart, c.wantAtStart)
			}
			if !strings.Contains(out.String(), "10.9.0.5/24") {
				t.Errorf("ADD result %s lacks the IPAM address", out.String())
			}
			p = e.plugin(&bytes.Buffer{})
			p.Exec = fake
			if err := e.in(func() error { return p.CmdDel(cmdArgs(pod, "c1", "net1", conf)) }); err != nil {
				t.Fatalf("DEL: %v", err)
			}
		})
	}
}
