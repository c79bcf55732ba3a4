package deviceplugin

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/sluice-net/sluice/api/v1alpha1"
)

// maxShared bounds rdmaHcaMax: each share is one device in every
// ListAndWatch message.
const maxShared = 10000

// NativeFile is the config the node agent writes from its
// NodeNetworkState's spec.pools.
type NativeFile struct {
	// ResourcePrefix applies to pools without their own; empty means the
	// default (sluice.dev).
	ResourcePrefix string                      `json:"resourcePrefix,omitempty"`
	Pools          []v1alpha1.DevicePluginPool `json:"pools"`
	// DRAPools are scanned like Pools but not served to the kubelet as
	// device-plugin resources: the DRA driver publishes them.
	DRAPools []v1alpha1.DevicePluginPool `json:"draPools,omitempty"`
}

// nativeTop is NativeFile with the pools left raw, so each is decoded with
// its own index in error messages.
type nativeTop struct {
	ResourcePrefix string            `json:"resourcePrefix,omitempty"`
	Pools          []json.RawMessage `json:"pools"`
	DRAPools       []json.RawMessage `json:"draPools,omitempty"`
}

func parseNative(data []byte, defaultPrefix string) (*Config, error) {
	if err := checkKeys("", data, reflect.TypeFor[NativeFile]()); err != nil {
		return nil, err
	}
	var top nativeTop
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, valueError("config", err)
	}
	if top.ResourcePrefix != "" {
		defaultPrefix = top.ResourcePrefix
	}
	c := &Config{Format: FormatNative}
	for _, list := range []struct {
		key  string
		raws []json.RawMessage
		dra  bool
	}{{"pools", top.Pools, false}, {"draPools", top.DRAPools, true}} {
		for i, raw := range list.raws {
			path := fmt.Sprintf("%s[%d]", list.key, i)
			var dp v1alpha1.DevicePluginPool
			if err := decodeStrict(path, raw, &dp); err != nil {
				return nil, err
			}
			p, err := nativePool(path, dp, defaultPrefix)
			if err != nil {
				return nil, err
			}
			if list.dra {
				if p.Shared() {
					return nil, fmt.Errorf("%s.rdmaHcaMax: a DRA pool publishes one device per VF and cannot share RDMA devices: remove rdmaHcaMax or move the pool to pools", path)
				}
				p.DRA = true
			}
			c.Pools = append(c.Pools, p)
		}
	}
	return c, nil
}

func nativePool(path string, dp v1alpha1.DevicePluginPool, defaultPrefix string) (Pool, error) {
	p := Pool{Prefix: dp.ResourcePrefix, Name: dp.ResourceName, Driver: dp.DeviceType, RDMA: dp.Selectors.IsRdma,
		ExcludeTopology: dp.ExcludeTopology, NeedVhostNet: dp.NeedVhostNet}
	if p.Prefix == "" {
		p.Prefix = defaultPrefix
	}
	switch dp.DeviceType {
	case "", v1alpha1.DeviceTypeNetdevice, v1alpha1.DeviceTypeVfioPci:
	default:
		return Pool{}, fmt.Errorf("%s.deviceType %q: use %q or %q", path, dp.DeviceType, v1alpha1.DeviceTypeNetdevice, v1alpha1.DeviceTypeVfioPci)
	}
	if dp.RDMAHcaMax < 0 || dp.RDMAHcaMax > maxShared {
		return Pool{}, fmt.Errorf("%s.rdmaHcaMax %d: use 0 for a VF pool or 1 to %d for a shared RDMA pool", path, dp.RDMAHcaMax, maxShared)
	}
	p.SharedMax = int(dp.RDMAHcaMax)
	switch dp.RDMASharing {
	case "", v1alpha1.RDMASharingPerDevice:
	case v1alpha1.RDMASharingWholeSet:
		p.WholeSet = true
	default:
		return Pool{}, fmt.Errorf("%s.rdmaSharing %q: use %q (rdmaHcaMax units per RDMA device) or %q (rdmaHcaMax units, each with every device)", path, dp.RDMASharing, v1alpha1.RDMASharingPerDevice, v1alpha1.RDMASharingWholeSet)
	}
	if dp.RDMASharing != "" && p.SharedMax == 0 {
		return Pool{}, fmt.Errorf("%s.rdmaSharing %q: only a shared RDMA pool shares: set rdmaHcaMax above 0 or remove rdmaSharing", path, dp.RDMASharing)
	}
	if len(dp.Selectors.IfNames) > 0 && !p.Shared() {
		return Pool{}, fmt.Errorf("%s.selectors.ifNames: only a shared RDMA pool (rdmaHcaMax > 0) selects by netdev name: use pfNames for a VF pool", path)
	}
	if p.Shared() {
		if dp.DeviceType == v1alpha1.DeviceTypeVfioPci {
			return Pool{}, fmt.Errorf("%s.deviceType vfio-pci: a shared RDMA pool (rdmaHcaMax > 0) hands out RDMA devices, not VFs: remove deviceType or rdmaHcaMax", path)
		}
		p.Driver = ""
		p.RDMA = true
	}
	if dp.SoftRoCE {
		switch {
		case dp.DeviceType == v1alpha1.DeviceTypeVfioPci:
			return Pool{}, fmt.Errorf("%s.softRoCE: a VF bound to vfio-pci has no netdev to run soft-RoCE on: use deviceType netdevice or remove softRoCE", path)
		case p.Shared():
			return Pool{}, fmt.Errorf("%s.softRoCE: a shared RDMA pool (rdmaHcaMax > 0) shares existing RDMA devices, soft-RoCE creates one per pod: remove rdmaHcaMax or softRoCE", path)
		case dp.Selectors.IsRdma:
			return Pool{}, fmt.Errorf("%s.selectors.isRdma: a soft-RoCE pool's VFs have no RDMA device until a pod gets one, so isRdma would select none: remove isRdma", path)
		}
		p.SoftRoCE = true
	}
	s := dp.Selectors
	sel, err := selectorOf(path+".selectors", rawSelector{
		Vendors: s.Vendors, Devices: s.Devices, Drivers: s.Drivers, PFNames: s.PFNames,
		RootDevices: s.RootDevices, LinkTypes: s.LinkTypes, IfNames: s.IfNames, IsRdma: s.IsRdma || p.Shared(),
	})
	if err != nil {
		return Pool{}, err
	}
	p.Selectors = []Selector{sel}
	return p, nil
}

// rawSelector is a selector's fields as written, before validation.
type rawSelector struct {
	Vendors, Devices, Drivers []string
	PFNames, RootDevices      []string
	PCIAddresses, LinkTypes   []string
	IfNames                   []string
	IsRdma                    bool
}

func selectorOf(path string, r rawSelector) (Selector, error) {
	var (
		s   = Selector{RDMA: r.IsRdma}
		err error
	)
	if s.Vendors, err = pciIDs(path+".vendors", r.Vendors); err != nil {
		return s, err
	}
	if s.Devices, err = pciIDs(path+".devices", r.Devices); err != nil {
		return s, err
	}
	if s.Drivers, err = names(path+".drivers", r.Drivers); err != nil {
		return s, err
	}
	if s.PFNames, err = pfNames(path+".pfNames", r.PFNames); err != nil {
		return s, err
	}
	if s.RootDevices, err = pciAddresses(path+".rootDevices", r.RootDevices); err != nil {
		return s, err
	}
	if s.PCIAddresses, err = pciAddresses(path+".pciAddresses", r.PCIAddresses); err != nil {
		return s, err
	}
	if s.LinkTypes, err = linkTypes(path+".linkTypes", r.LinkTypes); err != nil {
		return s, err
	}
	if s.IfNames, err = netdevs(path+".ifNames", r.IfNames); err != nil {
		return s, err
	}
	return s, nil
}
