package node

import (
	"path/filepath"
	"testing"
)

// The cni suite (test/node/guest/cni) runs the real sluice-cni binary with
// host-local IPAM on the node's VFs; both are built here.
func cniSuite() Suite {
	return Suite{
		Name:  "cni",
		PFs:   1,
		IOMMU: true,
		Setup: func(t *testing.T, h *Host) {
			bin := h.GoBuild(t, "sluice-cni", "./cni")
			h.GoBuild(t, "host-local", "github.com/containernetworking/plugins/plugins/ipam/host-local")
			h.Setenv("SLUICE_CNI_PATH", filepath.Dir(bin))
		},
	}
}
