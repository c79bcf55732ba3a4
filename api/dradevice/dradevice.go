// Package dradevice is the contract between sluice's DRA driver, which
// publishes VFs in ResourceSlices, and the operator, which renders the
// DeviceClasses selecting them: the driver's name and the attributes every
// published device carries.
package dradevice

// Attributes of every device the driver publishes, in the driver's own
// domain (device.attributes["<driver>"].<name> in CEL). The standard
// resource.kubernetes.io/pcieRoot, pciBusID and numaNode are published too
// (k8s.io/dynamic-resource-allocation/deviceattribute).
const (
	// AttrPool (string) is the NetworkNodePolicy resourceName of the pool.
	AttrPool = "pool"
	// AttrHealthy (bool) is false while the VF cannot be used (its PF is
	// not configured, its driver is wrong, its RDMA device is gone...).
	AttrHealthy = "healthy"
	// AttrPFName (string) is the PF's netdev name.
	AttrPFName = "pfName"
	// AttrPFPCIAddress (string) is the PF's PCI address.
	AttrPFPCIAddress = "pfPciAddress"
	// AttrVFIndex (int) is the VF's index on its PF.
	AttrVFIndex = "vfIndex"
	// AttrVendor and AttrDeviceID (string) are the VF's PCI IDs ("15b3").
	AttrVendor   = "vendor"
	AttrDeviceID = "deviceID"
	// AttrDriver (string) is the kernel driver the VF is bound to.
	AttrDriver = "driver"
	// AttrLinkType (string) is the PF's link type: eth or ib.
	AttrLinkType = "linkType"
	// AttrMTU (int) is the VF netdev's MTU (its PF's when the VF has none).
	AttrMTU = "mtu"
	// AttrNUMANode (int) is the VF's NUMA node, absent when unknown (as is
	// the standard resource.kubernetes.io/numaNode).
	AttrNUMANode = "numaNode"
	// AttrRDMA (bool) says whether the VF has an RDMA device.
	AttrRDMA = "rdma"
	// AttrRDMADevice (string) is the RDMA device's name (mlx5_3), absent
	// without one.
	AttrRDMADevice = "rdmaDevice"
)

// DriverName is the DRA driver's name for a resource prefix: the prefix
// itself (sluice.dev), so that DRA devices and device-plugin resources
// share one domain.
func DriverName(resourcePrefix string) string { return resourcePrefix }

// DeviceClassName is the DeviceClass the operator renders for a DRA pool:
// <resourceName>.<resourcePrefix>, e.g. rail-a.sluice.dev.
func DeviceClassName(resourceName, resourcePrefix string) string {
	return resourceName + "." + resourcePrefix
}
