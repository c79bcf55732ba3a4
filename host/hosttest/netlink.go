package hosttest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/sluice-net/sluice/host"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The fake netlink: link attributes come from the fake node's state, and
// PF-side VF settings live on the fake PF, as the driver keeps them.

func (n *Node) failed(method string) error {
	if err := n.nlFail[method]; err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	return nil
}

func (n *Node) linkOf(l *fakeLink) netlink.Link {
	a := netlink.NewLinkAttrs()
	a.Name, a.Index, a.MTU, a.HardwareAddr, a.EncapType = l.name, l.index, l.mtu, l.mac, l.encap
	a.OperState = netlink.OperDown
	if l.up {
		a.Flags |= net.FlagUp
		a.RawFlags |= unix.IFF_UP
		if l.carrier {
			a.OperState = netlink.OperUp
			a.RawFlags |= unix.IFF_LOWER_UP | unix.IFF_RUNNING
		} else {
			a.OperState = netlink.OperLowerLayerDown
		}
	}
	if pf := n.pfs[l.dev]; pf != nil {
		for i, s := range pf.settings {
			vi := netlink.VfInfo{ID: i, Vlan: s.VLAN, Qos: s.QoS, VlanProto: s.VLANProto, Spoofchk: s.SpoofChk,
				MinTxRate: uint32(s.MinTxRate), MaxTxRate: uint32(s.MaxTxRate)}
			if s.Trust {
				vi.Trust = 1
			}
			if s.MAC != "" {
				vi.Mac, _ = net.ParseMAC(s.MAC)
			} else {
				vi.Mac = make(net.HardwareAddr, 6)
			}
			switch s.LinkState {
			case "enable":
				vi.LinkState = netlink.VF_LINK_STATE_ENABLE
			case "disable":
				vi.LinkState = netlink.VF_LINK_STATE_DISABLE
			}
			a.Vfs = append(a.Vfs, vi)
		}
	}
	return &netlink.Device{LinkAttrs: a}
}

// LinkList lists the node's netdevs.
func (n *Node) LinkList() ([]netlink.Link, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.failed("LinkList"); err != nil {
		return nil, err
	}
	out := make([]netlink.Link, 0, len(n.links))
	for _, l := range n.links {
		out = append(out, n.linkOf(l))
	}
	return out, nil
}

// LinkByName returns one netdev.
func (n *Node) LinkByName(name string) (netlink.Link, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.failed("LinkByName"); err != nil {
		return nil, err
	}
	l := n.links[name]
	if l == nil {
		return nil, netlink.LinkNotFoundError{}
	}
	return n.linkOf(l), nil
}

// LinkSetMTU sets a netdev's MTU; a VF cannot exceed its PF's MTU.
func (n *Node) LinkSetMTU(link netlink.Link, mtu int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.failed("LinkSetMTU"); err != nil {
		return err
	}
	l := n.links[link.Attrs().Name]
	if l == nil {
		return syscall.ENODEV
	}
	if mtu < 68 || mtu > 9216 {
		return syscall.EINVAL
	}
	if d := n.devs[l.dev]; d != nil && d.isVF {
		if pl := n.links[n.pfs[d.pf].spec.Name]; pl != nil && mtu > pl.mtu {
			return syscall.EINVAL
		}
	}
	l.mtu = mtu
	if pf := n.pfs[l.dev]; pf != nil {
		pf.spec.MTU = mtu
	}
	_ = os.WriteFile(filepath.Join(n.devs[l.dev].dir, "net", l.name, "mtu"), []byte(strconv.Itoa(mtu)+"\n"), 0o644)
	return nil
}

// vfSettings returns the settings of VF vf of the PF link, or an error as
// the kernel gives for a bad index.
func (n *Node) vfSettings(method string, link netlink.Link, vf int) (*fakeLinkVF, error) {
	if err := n.failed(method); err != nil {
		return nil, err
	}
	l := n.links[link.Attrs().Name]
	if l == nil {
		return nil, syscall.ENODEV
	}
	pf := n.pfs[l.dev]
	if pf == nil || vf < 0 || vf >= len(pf.settings) {
		return nil, syscall.EINVAL
	}
	return &fakeLinkVF{pf: pf, i: vf}, nil
}

type fakeLinkVF struct {
	pf *fakePF
	i  int
}

func (n *Node) setVF(method string, link netlink.Link, vf int, f func(s *fakeLinkVF)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, err := n.vfSettings(method, link, vf)
	if err != nil {
		return err
	}
	f(v)
	return nil
}

// LinkSetVfHardwareAddr sets a VF's MAC on its PF.
func (n *Node) LinkSetVfHardwareAddr(link netlink.Link, vf int, hw net.HardwareAddr) error {
	return n.setVF("LinkSetVfHardwareAddr", link, vf, func(v *fakeLinkVF) { v.pf.settings[v.i].MAC = hw.String() })
}

// LinkSetVfVlanQosProto sets a VF's VLAN tag.
func (n *Node) LinkSetVfVlanQosProto(link netlink.Link, vf, vlan, qos, proto int) error {
	if vlan < 0 || vlan > 4095 || qos < 0 || qos > 7 {
		return syscall.EINVAL
	}
	return n.setVF("LinkSetVfVlanQosProto", link, vf, func(v *fakeLinkVF) {
		s := &v.pf.settings[v.i]
		s.VLAN, s.QoS, s.VLANProto = vlan, qos, proto
	})
}

// LinkSetVfTrust sets a VF's trust.
func (n *Node) LinkSetVfTrust(link netlink.Link, vf int, state bool) error {
	return n.setVF("LinkSetVfTrust", link, vf, func(v *fakeLinkVF) { v.pf.settings[v.i].Trust = state })
}

// LinkSetVfSpoofchk sets a VF's spoof checking.
func (n *Node) LinkSetVfSpoofchk(link netlink.Link, vf int, check bool) error {
	return n.setVF("LinkSetVfSpoofchk", link, vf, func(v *fakeLinkVF) { v.pf.settings[v.i].SpoofChk = check })
}

// LinkSetVfState sets a VF's administrative link state.
func (n *Node) LinkSetVfState(link netlink.Link, vf int, state uint32) error {
	names := map[uint32]string{netlink.VF_LINK_STATE_AUTO: "auto", netlink.VF_LINK_STATE_ENABLE: "enable", netlink.VF_LINK_STATE_DISABLE: "disable"}
	name, ok := names[state]
	if !ok {
		return syscall.EINVAL
	}
	return n.setVF("LinkSetVfState", link, vf, func(v *fakeLinkVF) { v.pf.settings[v.i].LinkState = name })
}

// LinkSetVfRate sets a VF's TX rate limits.
func (n *Node) LinkSetVfRate(link netlink.Link, vf, minRate, maxRate int) error {
	if maxRate != 0 && minRate > maxRate {
		return syscall.EINVAL
	}
	return n.setVF("LinkSetVfRate", link, vf, func(v *fakeLinkVF) {
		v.pf.settings[v.i].MinTxRate, v.pf.settings[v.i].MaxTxRate = minRate, maxRate
	})
}

// LinkSetVfInfo applies set's settings as the kernel does, in its order,
// each through its one-setting call (and that call's injected failure),
// stopping at the first refused and leaving those before it applied.
func (n *Node) LinkSetVfInfo(link netlink.Link, vf int, set host.VFInfoSet) error {
	var steps []func() error
	if set.MAC != nil {
		steps = append(steps, func() error { return n.LinkSetVfHardwareAddr(link, vf, set.MAC) })
	}
	if v := set.VLAN; v != nil {
		steps = append(steps, func() error { return n.LinkSetVfVlanQosProto(link, vf, v.VLAN, v.QoS, v.Proto) })
	}
	if r := set.Rate; r != nil {
		steps = append(steps, func() error { return n.LinkSetVfRate(link, vf, r.Min, r.Max) })
	}
	if set.SpoofChk != nil {
		steps = append(steps, func() error { return n.LinkSetVfSpoofchk(link, vf, *set.SpoofChk) })
	}
	if set.LinkState != nil {
		steps = append(steps, func() error { return n.LinkSetVfState(link, vf, *set.LinkState) })
	}
	if set.Trust != nil {
		steps = append(steps, func() error { return n.LinkSetVfTrust(link, vf, *set.Trust) })
	}
	if len(steps) == 0 {
		return syscall.EINVAL
	}
	n.mu.Lock()
	n.vfInfoCalls++
	n.mu.Unlock()
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// VFInfoCalls counts the LinkSetVfInfo requests made so far.
func (n *Node) VFInfoCalls() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.vfInfoCalls
}

// RdmaSystemGetNetnsMode returns the RDMA netns mode.
func (n *Node) RdmaSystemGetNetnsMode() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.failed("RdmaSystemGetNetnsMode"); err != nil {
		return "", err
	}
	return n.rdmaMode, nil
}

// RdmaSystemSetNetnsMode switches the RDMA netns mode; like the kernel it
// refuses (EBUSY) while other network namespaces exist.
func (n *Node) RdmaSystemSetNetnsMode(mode string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.failed("RdmaSystemSetNetnsMode"); err != nil {
		return err
	}
	if mode != "shared" && mode != "exclusive" {
		return syscall.EINVAL
	}
	if mode != n.rdmaMode && n.otherNetns > 0 {
		return syscall.EBUSY
	}
	n.rdmaMode = mode
	return nil
}
