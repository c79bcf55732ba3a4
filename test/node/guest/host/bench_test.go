//go:build nodetest

package hostsuite

import (
	"testing"

	"github.com/sluice-net/sluice/host"
	nu "github.com/sluice-net/sluice/test/node/guest/nodeutil"
)

// BenchmarkVFLookup is sluice-cni's per-pod look-up of one VF on the real
// kernel (igb, 1 VF), beside a full discovery of the node for scale.
func BenchmarkVFLookup(b *testing.B) {
	nu.Require(b)
	pf := nu.PFs(b)[0]
	vf := nu.VFs(b, pf, 1)[0]
	h := host.New(host.NodePaths())
	b.Run("VF", func(b *testing.B) {
		for b.Loop() {
			if _, err := h.VF(vf.PCI); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Discover", func(b *testing.B) {
		for b.Loop() {
			if _, err := h.Discover(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
