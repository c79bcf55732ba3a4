package agent

import (
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
)

// interfacesStatus renders a discovery as status.interfaces.
func interfacesStatus(snap *host.Snapshot) []sluicev1.InterfaceStatus {
	if len(snap.PFs) == 0 {
		return nil
	}
	out := make([]sluicev1.InterfaceStatus, len(snap.PFs))
	for i, pf := range snap.PFs {
		s := sluicev1.InterfaceStatus{
			Name: pf.Name, PCIAddress: pf.PCIAddress,
			Vendor: pf.Vendor, DeviceID: pf.Device,
			VendorName: pf.VendorName, DeviceName: pf.DeviceName,
			Driver:   pf.Driver,
			LinkType: linkType(pf.LinkType),
			MAC:      pf.MAC, MTU: int32(pf.MTU),
			NUMANode: int32(pf.NUMANode),
			TotalVfs: int32(pf.TotalVFs), NumVfs: int32(pf.NumVFs),
			RDMA: rdmaStatus(pf.RDMA),
		}
		if pf.Name != "" {
			s.LinkState = "down"
			if pf.Carrier {
				s.LinkState = "up"
			}
		}
		for _, vf := range pf.VFs {
			v := sluicev1.VFStatus{
				VFID: int32(vf.Index), PCIAddress: vf.PCIAddress, Name: vf.Netdev,
				Vendor: vf.Vendor, DeviceID: vf.Device, Driver: vf.Driver,
				MTU: int32(vf.MTU), VLAN: int32(vf.Settings.VLAN),
				Trust: vf.Settings.Trust, SpoofChk: vf.Settings.SpoofChk,
				RDMA: rdmaStatus(vf.RDMA),
			}
			if vf.Settings.MAC != "00:00:00:00:00:00" {
				v.MAC = vf.Settings.MAC
			}
			s.VFs = append(s.VFs, v)
		}
		out[i] = s
	}
	return out
}

// linkType keeps the link types the API knows (eth, ib).
func linkType(t string) sluicev1.LinkType {
	switch lt := sluicev1.LinkType(t); lt {
	case sluicev1.LinkTypeEthernet, sluicev1.LinkTypeInfiniband:
		return lt
	}
	return ""
}

func rdmaStatus(d *host.RDMADevice) *sluicev1.RDMADeviceStatus {
	if d == nil {
		return nil
	}
	s := &sluicev1.RDMADeviceStatus{Name: d.Name, CharDevices: d.CharDevices}
	for _, p := range d.Ports {
		if p.Num == 1 || s.PortState == "" {
			s.PortState, s.LinkLayer = p.State, p.LinkLayer
		}
	}
	return s
}

// rdmaMode keeps the modes the API knows.
func rdmaMode(m string) sluicev1.RDMAMode {
	switch mode := sluicev1.RDMAMode(m); mode {
	case sluicev1.RDMAModeShared, sluicev1.RDMAModeExclusive:
		return mode
	}
	return ""
}
