package deviceplugin

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-net/sluice/api/v1alpha1"
)

// TestDRAPoolsAreScannedNotServed: a pool in draPools is in every scan's
// tree (what the DRA driver publishes) but never registered with the
// kubelet; moving a served pool to draPools stops its server.
func TestDRAPoolsAreScannedNotServed(t *testing.T) {
	n := twoNICNode(t, 2)
	trees := make(chan *Tree, 16)
	onScan := func(o *Options) {
		o.OnScan = func(t *Tree) {
			select {
			case trees <- t:
			default:
			}
		}
	}
	intel := pool("intel", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}})
	rail := pool("rail", map[string]any{"deviceType": "netdevice", "selectors": map[string]any{"pfNames": []string{"ens1f0"}}})
	cfg := native(intel)
	cfg["draPools"] = []map[string]any{rail}
	e := newEnv(t, n, cfg, onScan)
	e.kubelet.Wait("sluice.dev/intel", wait, "intel pool", allHealthy(2))
	tr := waitTree(t, trees, func(t *Tree) bool { return t.Pools["sluice.dev/rail"] != nil })
	pd := tr.Pools["sluice.dev/rail"]
	if !pd.Pool.DRA || pd.Pool.Driver != v1alpha1.DeviceTypeNetdevice || len(pd.Devices) != 2 || pd.Healthy() != 2 {
		t.Errorf("rail in the tree = %+v, want a DRA pool of 2 healthy VFs", pd)
	}
	if got := e.kubelet.Plugins(); !slices.Equal(got, []string{"sluice.dev/intel"}) {
		t.Errorf("registered = %v, want only the device-plugin pool", got)
	}

	// intel moves to DRA: its device-plugin server goes.
	cfg = native()
	cfg["draPools"] = []map[string]any{intel, rail}
	e.writeConfig(cfg)
	e.kubelet.WaitGone("sluice.dev/intel", time.Second)
	waitTree(t, trees, func(t *Tree) bool {
		pd := t.Pools["sluice.dev/intel"]
		return pd != nil && pd.Pool.DRA
	})
}

func waitTree(t *testing.T, trees <-chan *Tree, cond func(*Tree) bool) *Tree {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case tr := <-trees:
			if cond(tr) {
				return tr
			}
		case <-deadline:
			t.Fatal("no scan met the condition")
			return nil
		}
	}
}

func TestParseNativeDRAPools(t *testing.T) {
	c, err := ParseConfig([]byte(`{"pools":[{"resourceName":"a","selectors":{"pfNames":["ens1f0"]}}],
		"draPools":[{"resourceName":"b","selectors":{"pfNames":["ens1f1"]}}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pools) != 2 || c.Pools[0].DRA || !c.Pools[1].DRA || c.Pools[1].Name != "b" {
		t.Errorf("pools = %+v, want a (device plugin) and b (DRA)", c.Pools)
	}
	for _, tc := range []struct{ cfg, want string }{
		{`{"pools":[{"resourceName":"a","selectors":{}}],"draPools":[{"resourceName":"a","selectors":{}}]}`, `draPools[0]: resource "sluice.dev/a" is already defined by pools[0]`},
		{`{"pools":[],"draPools":[{"resourceName":"a","rdmaHcaMax":10,"selectors":{}}]}`, `draPools[0].rdmaHcaMax`},
		{`{"pools":[],"draPools":[{"resourceName":"a","selectr":{}}]}`, `draPools[0].selectr`},
	} {
		_, err := ParseConfig([]byte(tc.cfg), "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", tc.cfg, err, tc.want)
		}
	}
}
