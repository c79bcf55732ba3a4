package node

import "time"

// The host suite (test/node/guest/host) runs the host layer on the real
// kernel; vfio-pci needs the emulated IOMMU.
func hostLayerSuite() Suite {
	return Suite{
		Name:    "host",
		PFs:     1,
		IOMMU:   true,
		Timeout: 5 * time.Minute,
	}
}
