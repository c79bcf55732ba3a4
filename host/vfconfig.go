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

// configureVF applies cfg to VF vf of link, whose settings are old: the
// settings that differ go in one request (two when trust goes on and the
// MAC changes: trust first, as some drivers only take a MAC for a trusted
// VF; the kernel applies a request's MAC before its trust).
// When the driver refuses a request, what it applied is put back and the
// settings are applied one at a time, so that the error names the one
// refused; that one's failure undoes the others.
func (h *Host) configureVF(link netlink.Link, vf int, old netlink.VfInfo, cfg VFConfig) error {
	dev := fmt.Sprintf("%s vf %d", link.Attrs().Name, vf)
	steps, err := vfSteps(old, cfg)
	if err != nil {
		return stepErr(dev, err.name, err.err)
	}
	if len(steps) == 0 {
		return nil
	}
	groups := [][]vfStep{steps}
	if len(steps) > 1 && steps[0].set.Trust != nil && *steps[0].set.Trust && steps[1].set.MAC != nil {
		groups = [][]vfStep{steps[:1], steps[1:]}
	}
	sent := 0 // steps sent so far, this request's included
	for _, g := range groups {
		var set VFInfoSet
		for _, s := range g {
			set = set.with(s.set)
		}
		sent += len(g)
		if err := h.nl.LinkSetVfInfo(link, vf, set); err != nil {
			h.revertVF(link, vf, steps[:sent])
			return h.configureVFStepwise(link, vf, dev, steps)
		}
	}
	return nil
}

// configureVFStepwise applies steps one request each, in order; a refused
// one undoes those before it, and its error names it.
func (h *Host) configureVFStepwise(link netlink.Link, vf int, dev string, steps []vfStep) error {
	for i, s := range steps {
		if err := h.nl.LinkSetVfInfo(link, vf, s.set); err != nil {
			h.revertVF(link, vf, steps[:i+1])
			return stepErr(dev, s.name, err)
		}
	}
	return nil
}

// revertVF puts back the old value of each of steps, last first, one
// request each, so that one the driver refuses does not stop the others.
func (h *Host) revertVF(link netlink.Link, vf int, steps []vfStep) {
	for i := len(steps) - 1; i >= 0; i-- {
		_ = h.nl.LinkSetVfInfo(link, vf, steps[i].revert)
	}
}

// vfStep is one VF setting to change: its new value and its old one.
type vfStep struct {
	name        string
	set, revert VFInfoSet
}

type stepError struct {
	name string
	err  error
}

// vfSteps lists the settings of cfg that differ from old, in the order
// they are applied one at a time: trust first, spoof checking last (once
// the MAC it checks is in place). A setting that cannot be applied is
// refused here, before any is.
func vfSteps(old netlink.VfInfo, cfg VFConfig) ([]vfStep, *stepError) {
	var steps []vfStep
	if cfg.Trust != nil && *cfg.Trust != (old.Trust == 1) {
		want, was := *cfg.Trust, old.Trust == 1
		steps = append(steps, vfStep{"set trust " + onOff(want), VFInfoSet{Trust: &want}, VFInfoSet{Trust: &was}})
	}
	if cfg.MAC != nil {
		mac, err := net.ParseMAC(*cfg.MAC)
		if err != nil {
			return nil, &stepError{"set mac", fmt.Errorf("invalid MAC %q: %w", *cfg.MAC, err)}
		}
		if mac.String() != old.Mac.String() {
			was := old.Mac
			if was == nil {
				was = make(net.HardwareAddr, 6)
			}
			steps = append(steps, vfStep{"set mac " + mac.String(), VFInfoSet{MAC: mac}, VFInfoSet{MAC: was}})
		}
	}
	if cfg.VLAN != nil {
		vlan, qos, proto := *cfg.VLAN, cfg.QoS, cfg.VLANProto
		if proto == 0 {
			proto = VLANProto8021Q
		}
		if vlan < 0 || vlan > 4095 || qos < 0 || qos > 7 {
			return nil, &stepError{"set vlan", fmt.Errorf("vlan must be 0-4095 and qos 0-7, got %d and %d", vlan, qos)}
		}
		oldProto := old.VlanProto
		if oldProto == 0 {
			oldProto = VLANProto8021Q
		}
		if vlan != old.Vlan || qos != old.Qos || proto != oldProto {
			steps = append(steps, vfStep{fmt.Sprintf("set vlan %d qos %d proto %#x", vlan, qos, proto),
				VFInfoSet{VLAN: &VFVLAN{vlan, qos, proto}}, VFInfoSet{VLAN: &VFVLAN{old.Vlan, old.Qos, oldProto}}})
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
			return nil, &stepError{"set tx rate", fmt.Errorf("min_tx_rate %d exceeds max_tx_rate %d", minR, maxR)}
		}
		if minR != int(old.MinTxRate) || maxR != int(old.MaxTxRate) {
			steps = append(steps, vfStep{fmt.Sprintf("set tx rate min %d max %d", minR, maxR),
				VFInfoSet{Rate: &VFRate{minR, maxR}}, VFInfoSet{Rate: &VFRate{int(old.MinTxRate), int(old.MaxTxRate)}}})
		}
	}
	if cfg.LinkState != nil {
		st, err := vfLinkState(*cfg.LinkState)
		if err != nil {
			return nil, &stepError{"set link state", err}
		}
		if st != old.LinkState {
			was := old.LinkState
			steps = append(steps, vfStep{"set state " + *cfg.LinkState, VFInfoSet{LinkState: &st}, VFInfoSet{LinkState: &was}})
		}
	}
	if cfg.SpoofChk != nil && *cfg.SpoofChk != old.Spoofchk {
		want, was := *cfg.SpoofChk, old.Spoofchk
		steps = append(steps, vfStep{"set spoofchk " + onOff(want), VFInfoSet{SpoofChk: &want}, VFInfoSet{SpoofChk: &was}})
	}
	return steps, nil
}

// with is s with the fields o sets.
func (s VFInfoSet) with(o VFInfoSet) VFInfoSet {
	if o.MAC != nil {
		s.MAC = o.MAC
	}
	if o.VLAN != nil {
		s.VLAN = o.VLAN
	}
	if o.Rate != nil {
		s.Rate = o.Rate
	}
	if o.SpoofChk != nil {
		s.SpoofChk = o.SpoofChk
	}
	if o.LinkState != nil {
		s.LinkState = o.LinkState
	}
	if o.Trust != nil {
		s.Trust = o.Trust
	}
	return s
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
