package node

// The deviceplugin suite (test/node/guest/deviceplugin) runs sluice's device
// plugin in the guest against a fake kubelet; it needs nothing from the host
// but the IOMMU, for its vfio-pci allocation test.
func devicePluginSuite() Suite {
	return Suite{Name: "deviceplugin", PFs: 1, IOMMU: true}
}
