package host

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/vishvananda/netlink"
)

// VFConfig is the PF-side configuration of one VF. Nil fields are left as
// they are. Its JSON form is what the DRA driver's checkpoints record as
// applied.
type VFConfig struct {
	MAC *string `json:"mac,omitempty"`
	// VLAN, QoS and VLANProto (0x8100 for 802.1Q, 0x88a8 for 802.1ad) are
	// applied together when VLAN is set.
	VLAN      *int  `json:"vlan,omitempty"`
	QoS       int   `json:"qos,omitempty"`
	VLANProto int   `json:"vlanProto,omitempty"`
	SpoofChk  *bool `json:"spoofChk,omitempty"`
	Trust     *bool `json:"trust,omitempty"`
	// LinkState is "auto", "enable" or "disable".
	LinkState *string `json:"linkState,omitempty"`
	// MinTxRate and MaxTxRate (Mbps) are applied together when MaxTxRate
	// or MinTxRate is set.
	MinTxRate *int `json:"minTxRate,omitempty"`
	MaxTxRate *int `json:"maxTxRate,omitempty"`
}

// VLAN tag protocols.
const (
	VLANProto8021Q  = 0x8100
	VLANProto8021AD = 0x88a8
)

// ConfigureVF applies cfg to VF index vf of the PF with netdev pfName.
// Settings already as asked are not touched. When a step fails, the steps
// already applied are undone, so the VF keeps its previous settings.
func (h *Host) ConfigureVF(pfName string, vf int, cfg VFConfig) error {
	link, err := h.nl.LinkByName(pfName)
	if err != nil {
		return stepErr(pfName, "find PF link", err)
	}
	old, ok := vfInfo(link, vf)
	if !ok {
		return stepErr(pfName, "configure vf "+strconv.Itoa(vf), fmt.Errorf("%w: the PF reports %d VFs", ErrNotFound, len(link.Attrs().Vfs)))
	}
	return h.configureVF(link, vf, old, cfg)
}

// ConfigureVFFrom is ConfigureVF on a VF as its look-up (Host.VF) read it:
// the PF and the VF's settings are not read again. The caller must have
// held the VF since the look-up (sluice-cni holds its VF lock), so that
// they are still as read. A VF whose settings the look-up could not read
// is configured by ConfigureVF.
func (h *Host) ConfigureVFFrom(vf *VF, cfg VFConfig) error {
	if vf.PFIndex == 0 {
		return h.ConfigureVF(vf.PFName, vf.Index, cfg)
	}
	old, err := vfInfoOf(vf.Index, vf.Settings)
	if err != nil {
		return stepErr(vf.PFName, "configure vf "+strconv.Itoa(vf.Index), err)
	}
	pf := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: vf.PFIndex, Name: vf.PFName}}
	return h.configureVF(pf, vf.Index, old, cfg)
}

// vfInfoOf is the inverse of settingsOf.
func vfInfoOf(vf int, s VFSettings) (netlink.VfInfo, error) {
	i := netlink.VfInfo{
		ID: vf, Vlan: s.VLAN, Qos: s.QoS, VlanProto: s.VLANProto, Spoofchk: s.SpoofChk,
		MinTxRate: uint32(s.MinTxRate), MaxTxRate: uint32(s.MaxTxRate),
	}
	if s.Trust {
		i.Trust = 1
	}
	if s.MAC != "" {
		mac, err := net.ParseMAC(s.MAC)
		if err != nil {
			return i, fmt.Errorf("the look-up's MAC %q: %w", s.MAC, err)
		}
		i.Mac = mac
	}
	st, err := vfLinkState(s.LinkState)
	if err != nil {
		n, nerr := strconv.ParseUint(s.LinkState, 10, 32)
		if nerr != nil {
			return i, fmt.Errorf("the look-up's link state: %w", err)
		}
		st = uint32(n)
	}
	i.LinkState = st
	return i, nil
}

// configureVF applies cfg to VF vf of link, whose settings are old.
func (h *Host) configureVF(link netlink.Link, vf int, old netlink.VfInfo, cfg VFConfig) (err error) {
	pfName := link.Attrs().Name
	dev := fmt.Sprintf("%s vf %d", pfName, vf)
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	// step applies one setting and registers how to put it back.
	step := func(name string, apply, revert func() error) error {
		if e := apply(); e != nil {
			return stepErr(dev, name, e)
		}
		undo = append(undo, func() { _ = revert() })
		return nil
	}

	// Trust first: some drivers only accept a MAC change from a trusted VF,
	// and spoof checking last, once the MAC it checks is in place.
	if cfg.Trust != nil && *cfg.Trust != (old.Trust == 1) {
		want := *cfg.Trust
		if err := step("set trust "+onOff(want), func() error { return h.nl.LinkSetVfTrust(link, vf, want) },
			func() error { return h.nl.LinkSetVfTrust(link, vf, old.Trust == 1) }); err != nil {
			return err
		}
	}
	if cfg.MAC != nil {
		mac, perr := net.ParseMAC(*cfg.MAC)
		if perr != nil {
			return stepErr(dev, "set mac", fmt.Errorf("invalid MAC %q: %w", *cfg.MAC, perr))
		}
		if mac.String() != old.Mac.String() {
			if err := step("set mac "+mac.String(), func() error { return h.nl.LinkSetVfHardwareAddr(link, vf, mac) },
				func() error { return h.nl.LinkSetVfHardwareAddr(link, vf, old.Mac) }); err != nil {
				return err
			}
		}
	}
	if cfg.VLAN != nil {
		vlan, qos, proto := *cfg.VLAN, cfg.QoS, cfg.VLANProto
		if proto == 0 {
			proto = VLANProto8021Q
		}
		if vlan < 0 || vlan > 4095 || qos < 0 || qos > 7 {
			return stepErr(dev, "set vlan", fmt.Errorf("vlan must be 0-4095 and qos 0-7, got %d and %d", vlan, qos))
		}
		oldProto := old.VlanProto
		if oldProto == 0 {
			oldProto = VLANProto8021Q
		}
		if vlan != old.Vlan || qos != old.Qos || proto != oldProto {
			if err := step(fmt.Sprintf("set vlan %d qos %d proto %#x", vlan, qos, proto),
				func() error { return h.nl.LinkSetVfVlanQosProto(link, vf, vlan, qos, proto) },
				func() error { return h.nl.LinkSetVfVlanQosProto(link, vf, old.Vlan, old.Qos, oldProto) }); err != nil {
				return err
			}
		}
	}
	if cfg.MinTxRate != nil || cfg.MaxTxRate != nil {
		minR, maxR := int(old.MinTxRate), int(old.MaxTxRate)
		if cfg.MinTxRate != nil {
			minR = *cfg.MinTxRate
		}
		if cfg.MaxTxRate != nil {
			maxR = *cfg.MaxTxRate
		}
		if maxR != 0 && minR > maxR {
			return stepErr(dev, "set tx rate", fmt.Errorf("min_tx_rate %d exceeds max_tx_rate %d", minR, maxR))
		}
		if minR != int(old.MinTxRate) || maxR != int(old.MaxTxRate) {
			if err := step(fmt.Sprintf("set tx rate min %d max %d", minR, maxR),
				func() error { return h.nl.LinkSetVfRate(link, vf, minR, maxR) },
				func() error { return h.nl.LinkSetVfRate(link, vf, int(old.MinTxRate), int(old.MaxTxRate)) }); err != nil {
				return err
			}
		}
	}
	if cfg.LinkState != nil {
		st, perr := vfLinkState(*cfg.LinkState)
		if perr != nil {
			return stepErr(dev, "set link state", perr)
		}
		if st != old.LinkState {
			if err := step("set state "+*cfg.LinkState, func() error { return h.nl.LinkSetVfState(link, vf, st) },
				func() error { return h.nl.LinkSetVfState(link, vf, old.LinkState) }); err != nil {
				return err
			}
		}
	}
	if cfg.SpoofChk != nil && *cfg.SpoofChk != old.Spoofchk {
		want := *cfg.SpoofChk
		if err := step("set spoofchk "+onOff(want), func() error { return h.nl.LinkSetVfSpoofchk(link, vf, want) },
			func() error { return h.nl.LinkSetVfSpoofchk(link, vf, old.Spoofchk) }); err != nil {
			return err
		}
	}
	return nil
}

// VFConfigurer applies PF-side VF settings, all or none; *Host is one.
type VFConfigurer interface {
	ConfigureVF(pfName string, vf int, cfg VFConfig) error
}

// RestoreVF puts back VF vf's PF-side settings s (as read before a change)
// one at a time, so that one the driver refuses does not stop (or undo)
// the others; the error joins the refused ones. It is how the CNI's DEL
// and the DRA driver's Unprepare give a VF back.
func RestoreVF(c VFConfigurer, pfName string, vf int, s VFSettings) error {
	mac := s.MAC
	if mac == "" {
		mac = "00:00:00:00:00:00"
	}
	vlan, minR, maxR, ls := s.VLAN, s.MinTxRate, s.MaxTxRate, s.LinkState
	trust, spoof := s.Trust, s.SpoofChk
	proto := s.VLANProto
	if proto == 0 {
		proto = VLANProto8021Q
	}
	steps := []VFConfig{
		{Trust: &trust},
		{MAC: &mac},
		{VLAN: &vlan, QoS: s.QoS, VLANProto: proto},
		{MinTxRate: &minR, MaxTxRate: &maxR},
		{SpoofChk: &spoof},
	}
	if ls != "" {
		steps = append(steps[:4], VFConfig{LinkState: &ls}, steps[4])
	}
	var errs []error
	for _, cfg := range steps {
		if err := c.ConfigureVF(pfName, vf, cfg); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// VFSettingsOf reads VF vf's settings from the PF with netdev pfName.
func (h *Host) VFSettingsOf(pfName string, vf int) (VFSettings, error) {
	link, err := h.nl.LinkByName(pfName)
	if err != nil {
		return VFSettings{}, stepErr(pfName, "find PF link", err)
	}
	i, ok := vfInfo(link, vf)
	if !ok {
		return VFSettings{}, stepErr(pfName, "read vf "+strconv.Itoa(vf), ErrNotFound)
	}
	return settingsOf(i), nil
}

func vfInfo(link netlink.Link, vf int) (netlink.VfInfo, bool) {
	for _, i := range link.Attrs().Vfs {
		if i.ID == vf {
			return i, true
		}
	}
	return netlink.VfInfo{}, false
}

func vfLinkState(s string) (uint32, error) {
	switch s {
	case "auto":
		return netlink.VF_LINK_STATE_AUTO, nil
	case "enable":
		return netlink.VF_LINK_STATE_ENABLE, nil
	case "disable":
		return netlink.VF_LINK_STATE_DISABLE, nil
	}
	return 0, fmt.Errorf("link state must be auto, enable or disable, got %q", s)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
