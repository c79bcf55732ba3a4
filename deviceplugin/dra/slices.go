package dra

import (
	"cmp"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/deviceattribute"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"github.com/sluice-net/sluice/api/dradevice"
	"github.com/sluice-net/sluice/deviceplugin"
)

// DeviceName is the DRA device name of a VF: its PCI address as a DNS
// label ("0000:3b:00.2" -> "vf-0000-3b-00-2").
func DeviceName(pciAddress string) string {
	return "vf-" + strings.NewReplacer(":", "-", ".", "-").Replace(strings.ToLower(pciAddress))
}

// Resources is what a node publishes for a scan: one DRA pool named after
// the node with one device per VF of every DRA pool in the tree, in
// device-name order, split into slices of at most
// resourceapi.ResourceSliceMaxDevices. Device-plugin pools are left out. A
// VF that two DRA pools select (the operator never renders that) is
// published once, in the pool of the first name. A VF a pod holds through
// sluice-cni (a pool moved from the device plugin to DRA under running
// pods) is left out until that pod gives it back: the scheduler must not
// allocate it, and Prepare would refuse it.
func Resources(node string, t *deviceplugin.Tree) (resourceslice.DriverResources, error) {
	var devs []resourceapi.Device
	for pool, d := range draVFs(t) {
		dev, err := Device(pool, d)
		if err != nil {
			return resourceslice.DriverResources{}, err
		}
		devs = append(devs, dev)
	}
	slices.SortFunc(devs, func(a, b resourceapi.Device) int { return cmp.Compare(a.Name, b.Name) })
	var ss []resourceslice.Slice
	for c := range slices.Chunk(devs, resourceapi.ResourceSliceMaxDevices) {
		ss = append(ss, resourceslice.Slice{Devices: c})
	}
	if ss == nil {
		// An empty pool, so that the node's old slices are removed.
		ss = []resourceslice.Slice{{}}
	}
	return resourceslice.DriverResources{Pools: map[string]resourceslice.Pool{node: {Slices: ss}}}, nil
}

// draVFs yields the VFs Resources publishes, with their pool's name: each
// VF of the tree's DRA pools once (in the pool of the first name), but
// those a pod holds through sluice-cni.
func draVFs(t *deviceplugin.Tree) iter.Seq2[string, *deviceplugin.Device] {
	return func(yield func(string, *deviceplugin.Device) bool) {
		if t == nil {
			return
		}
		seen := map[string]bool{}
		for _, res := range slices.Sorted(maps.Keys(t.Pools)) {
			pd := t.Pools[res]
			if !pd.Pool.DRA {
				continue
			}
			for i := range pd.Devices {
				d := &pd.Devices[i]
				if seen[d.PCIAddress] {
					continue
				}
				if _, held := t.Attachment(d.PCIAddress); held {
					continue
				}
				seen[d.PCIAddress] = true
				if !yield(pd.Pool.Name, d) {
					return
				}
			}
		}
	}
}

// Device is the DRA device of one VF of a pool, with the attributes CEL
// selectors and constraints use (package dradevice lists them).
func Device(pool string, d *deviceplugin.Device) (resourceapi.Device, error) {
	attrs := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{}
	str := func(name string, v string) {
		if v != "" {
			attrs[resourceapi.QualifiedName(name)] = resourceapi.DeviceAttribute{StringValue: ptr.To(v)}
		}
	}
	num := func(name string, v int) {
		attrs[resourceapi.QualifiedName(name)] = resourceapi.DeviceAttribute{IntValue: ptr.To(int64(v))}
	}
	boolean := func(name string, v bool) {
		attrs[resourceapi.QualifiedName(name)] = resourceapi.DeviceAttribute{BoolValue: ptr.To(v)}
	}

	bus, err := deviceattribute.GetPCIBusIDAttribute(d.PCIAddress)
	if err != nil {
		return resourceapi.Device{}, fmt.Errorf("pool %s: VF %q: %w", pool, d.PCIAddress, err)
	}
	attrs[bus.Name] = bus.Value
	if d.PCIeRoot != "" {
		attrs[deviceattribute.StandardDeviceAttributePCIeRoot] = resourceapi.DeviceAttribute{StringValue: ptr.To(d.PCIeRoot)}
	}
	if d.NUMANode >= 0 {
		attrs[deviceattribute.StandardDeviceAttributeNUMANode] = resourceapi.DeviceAttribute{IntValue: ptr.To(int64(d.NUMANode))}
		num(dradevice.AttrNUMANode, d.NUMANode)
	}
	str(dradevice.AttrPool, pool)
	boolean(dradevice.AttrHealthy, d.Healthy)
	str(dradevice.AttrPFName, d.PFName)
	str(dradevice.AttrPFPCIAddress, d.PFAddress)
	if d.VFIndex >= 0 {
		num(dradevice.AttrVFIndex, d.VFIndex)
	}
	str(dradevice.AttrVendor, d.Vendor)
	str(dradevice.AttrDeviceID, d.DeviceID)
	str(dradevice.AttrDriver, d.Driver)
	str(dradevice.AttrLinkType, d.LinkType)
	if d.MTU > 0 {
		num(dradevice.AttrMTU, d.MTU)
	}
	boolean(dradevice.AttrRDMA, d.RDMA != nil)
	if d.RDMA != nil {
		str(dradevice.AttrRDMADevice, d.RDMA.Name)
	}
	return resourceapi.Device{Name: DeviceName(d.PCIAddress), Attributes: attrs}, nil
}
