package host

import (
	"errors"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// LinkSetVfInfo is one RTM_SETLINK carrying one IFLA_VF_INFO with every
// setting of set, built from the netlink library's VF attribute types as
// its one-setting LinkSetVf* calls build them. Per pod, sluice-cni's ADD
// sends one request (and the kernel one link notification) where the
// one-setting calls would send one per setting.
func (k kernelNetlink) LinkSetVfInfo(link netlink.Link, vf int, set VFInfoSet) error {
	idx := link.Attrs().Index
	if idx == 0 {
		l, err := k.LinkByName(link.Attrs().Name)
		if err != nil {
			return err
		}
		idx = l.Attrs().Index
	}
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(idx)
	req.AddData(msg)
	data := nl.NewRtAttr(unix.IFLA_VFINFO_LIST, nil)
	info := data.AddRtAttr(nl.IFLA_VF_INFO, nil)
	id := uint32(vf)
	n := 0
	if set.MAC != nil {
		m := nl.VfMac{Vf: id}
		copy(m.Mac[:], set.MAC)
		info.AddRtAttr(nl.IFLA_VF_MAC, m.Serialize())
		n++
	}
	if v := set.VLAN; v != nil {
		list := info.AddRtAttr(nl.IFLA_VF_VLAN_LIST, nil)
		m := nl.VfVlanInfo{
			VfVlan: nl.VfVlan{Vf: id, Vlan: uint32(v.VLAN), Qos: uint32(v.QoS)},
			// Network byte order.
			VlanProto: (uint16(v.Proto)>>8)&0xFF | (uint16(v.Proto)&0xFF)<<8,
		}
		list.AddRtAttr(nl.IFLA_VF_VLAN_INFO, m.Serialize())
		n++
	}
	if r := set.Rate; r != nil {
		m := nl.VfRate{Vf: id, MinTxRate: uint32(r.Min), MaxTxRate: uint32(r.Max)}
		info.AddRtAttr(nl.IFLA_VF_RATE, m.Serialize())
		n++
	}
	if set.SpoofChk != nil {
		m := nl.VfSpoofchk{Vf: id, Setting: boolSetting(*set.SpoofChk)}
		info.AddRtAttr(nl.IFLA_VF_SPOOFCHK, m.Serialize())
		n++
	}
	if set.LinkState != nil {
		m := nl.VfLinkState{Vf: id, LinkState: *set.LinkState}
		info.AddRtAttr(nl.IFLA_VF_LINK_STATE, m.Serialize())
		n++
	}
	if set.Trust != nil {
		m := nl.VfTrust{Vf: id, Setting: boolSetting(*set.Trust)}
		info.AddRtAttr(nl.IFLA_VF_TRUST, m.Serialize())
		n++
	}
	if n == 0 {
		return errors.New("no VF setting to send")
	}
	req.AddData(data)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func boolSetting(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
