package deviceplugin

import (
	"slices"
	"testing"

	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	"github.com/sluice-net/sluice/host/hosttest"
)

// A VF whose netdev carries the node's default route is left out of every
// pool, as sriov-network-device-plugin leaves out any network function
// with one (pkg/netdevice/netDeviceProvider.go, AddTargetDevices, which
// lists VFs too); it joins once the route is gone.
func TestUplinkVFNotServed(t *testing.T) {
	n := hosttest.New(t)
	const pf = "0000:01:00.0"
	n.AddPF(hosttest.IGB(pf, "enp1s0"))
	n.SetNumVFs(pf, 3)
	vf0, vf1, vf2 := n.VFAddress(pf, 0), n.VFAddress(pf, 1), n.VFAddress(pf, 2)
	n.SetDefaultRoute(n.Netdev(vf1), true)
	e := newEnv(t, n, sndp(
		map[string]any{"resourceName": "igb", "selectors": []any{map[string]any{"pfNames": []string{"enp1s0"}}}},
	), func(o *Options) { o.ResourcePrefix = "intel.com" })
	s := e.kubelet.Wait("intel.com/igb", wait, "the VFs but the uplink", allHealthy(2))
	if got, want := s.IDs(), []string{vf0, vf2}; !slices.Equal(got, want) {
		t.Errorf("igb = %v, want %v (not %s, which carries the default route)", got, want, vf1)
	}

	n.SetDefaultRoute(n.Netdev(vf1), false)
	e.rescan()
	e.kubelet.Wait("intel.com/igb", wait, "all 3 VFs once the route is gone", func(s kubelettest.Snapshot) bool {
		return s.Device(vf1) != nil && len(s.Devices) == 3
	})
}
