package deviceplugin

import (
	"testing"
	"time"

	"github.com/sluice-net/sluice/host"
)

// The plugin subscribes with a filter that knows its last scan: the PFs'
// and VFs' events are kept (a VF netdev leaving for a pod too), a pod's
// veth is not.
func TestLinkSubscriptionKeepsOnlyPFsAndVFs(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})))
	e.kubelet.Wait("sluice.dev/a", wait, "registered", allHealthy(2))
	vf := n.Netdev(n.VFAddress(cx0, 1))
	for _, c := range []struct {
		ev   host.LinkEvent
		want bool
	}{
		{host.LinkEvent{Name: "ens1f0", Kind: "device"}, true},
		{host.LinkEvent{Name: "ens2f0", Kind: "device"}, true},
		{host.LinkEvent{Name: vf, Kind: "device", Deleted: true}, true},
		{host.LinkEvent{Name: "veth1c2d3e4f", Kind: "veth"}, false},
		{host.LinkEvent{Name: "veth1c2d3e4f", Kind: "veth", Deleted: true}, false},
	} {
		if got := e.links.concerns(c.ev); got != c.want {
			t.Errorf("filter(%+v) = %v, want %v", c.ev, got, c.want)
		}
	}
}

// A subscription that ends (ENOBUFS: events were lost) is made again
// within linkRetry, followed by one rescan.
func TestResubscribesAfterOverflow(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}}})))
	e.kubelet.Wait("sluice.dev/a", wait, "registered", allHealthy(2))
	before := e.m.scans.Load()
	e.links.overflow()
	deadline := time.Now().Add(linkRetry + time.Second)
	for e.links.subscriptions() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not subscribed again within %s", linkRetry+time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for e.m.scans.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("no rescan after subscribing again")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if got := e.m.scans.Load() - before; got != 1 {
		t.Errorf("%d rescans after the overflow, want 1", got)
	}
	if got := e.links.subscriptions(); got != 2 {
		t.Errorf("%d subscriptions, want 2", got)
	}
}
