package plugin

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ip"

	"github.com/sluice-net/sluice/host"
)

// CmdCheck verifies that the attachment is as ADD left it: the VF's
// PF-side settings, and in the pod the interface with the MAC, MTU,
// addresses and routes of prevResult.
func (p *Plugin) CmdCheck(args *skel.CmdArgs) error {
	return p.logged("CHECK", args, func(q *Plugin) error { return q.cmdCheck(args) })
}

func (p *Plugin) cmdCheck(args *skel.CmdArgs) error {
	conf, err := LoadConf(args)
	if err != nil {
		return err
	}
	if conf.RawPrevResult == nil {
		return invalidConfig("CHECK needs prevResult, the result of ADD")
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return cniError(types.ErrDecodingFailure, "prevResult: %v", err)
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return cniError(types.ErrDecodingFailure, "prevResult: %v", err)
	}
	e, ok, err := cache{dir: conf.cacheDir()}.get(args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	if !ok {
		return cniError(types.ErrUnknownContainer, "container %s has no %s from sluice-cni (no cache entry in %s)", args.ContainerID, args.IfName, conf.cacheDir())
	}
	if e.PCIAddress != conf.PCI {
		return fmt.Errorf("container %s's %s is VF %s, but the configuration names deviceID %s", args.ContainerID, args.IfName, e.PCIAddress, conf.PCI)
	}

	var problems []string
	vf, err := p.Node.VF(e.PCIAddress)
	if err != nil {
		return fmt.Errorf("look up VF %s: %w", e.PCIAddress, err)
	}
	problems = append(problems, vfMismatches(vf.Settings, conf.VF)...)

	if e.Netdev != nil {
		pp, err := p.checkPod(args, conf, prev)
		if err != nil {
			return err
		}
		problems = append(problems, pp...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("CHECK of %s in container %s (VF %s) failed: %s", args.IfName, args.ContainerID, e.PCIAddress, strings.Join(problems, "; "))
	}
	if conf.IPAM.Type != "" {
		if _, err := p.execIPAM("CHECK", conf.IPAM.Type, args.StdinData, ipamArgs(args), p.Stderr); err != nil {
			return fmt.Errorf("IPAM plugin %s: %w", conf.IPAM.Type, err)
		}
	}
	return nil
}

// checkPod compares the interface in the pod with prevResult.
func (p *Plugin) checkPod(args *skel.CmdArgs, conf *Config, prev *current.Result) ([]string, error) {
	var iface *current.Interface
	for _, i := range prev.Interfaces {
		if i.Name == args.IfName && i.Sandbox == args.Netns {
			iface = i
		}
	}
	if iface == nil {
		return []string{fmt.Sprintf("prevResult has no interface %s in %s", args.IfName, args.Netns)}, nil
	}
	podNS, err := host.OpenNetns(args.Netns)
	if err != nil {
		return nil, invalidEnv("CNI_NETNS %s: %v", args.Netns, err)
	}
	defer podNS.Close()
	st, err := podNS.Netdev(args.IfName)
	if errors.Is(err, host.ErrNotFound) {
		return []string{fmt.Sprintf("interface %s is missing from the pod's namespace", args.IfName)}, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	if iface.Mac != "" && !strings.EqualFold(iface.Mac, st.MAC) {
		out = append(out, fmt.Sprintf("MAC is %s, ADD set %s", st.MAC, iface.Mac))
	}
	want, by := conf.MTU, "the configuration asks"
	if want == 0 {
		want, by = iface.Mtu, "ADD set"
	}
	if want > 0 && st.MTU != want {
		out = append(out, fmt.Sprintf("MTU is %d, %s %d", st.MTU, by, want))
	}
	if !st.Up {
		out = append(out, "interface is down")
	}
	var ips []*current.IPConfig
	for _, c := range prev.IPs {
		if c.Interface == nil || (*c.Interface >= 0 && *c.Interface < len(prev.Interfaces) && prev.Interfaces[*c.Interface] == iface) {
			ips = append(ips, c)
		}
	}
	if err := podNS.Do(func() error {
		if err := ip.ValidateExpectedInterfaceIPs(args.IfName, ips); err != nil {
			return err
		}
		return ip.ValidateExpectedRoute(prev.Routes)
	}); err != nil {
		out = append(out, err.Error())
	}
	return out, nil
}

// vfMismatches lists the PF-side settings that differ from cfg.
func vfMismatches(s host.VFSettings, cfg host.VFConfig) []string {
	var out []string
	if cfg.MAC != nil && !strings.EqualFold(*cfg.MAC, s.MAC) {
		out = append(out, fmt.Sprintf("VF MAC is %s, want %s", s.MAC, *cfg.MAC))
	}
	if cfg.VLAN != nil {
		proto := s.VLANProto
		if proto == 0 {
			proto = host.VLANProto8021Q
		}
		if *cfg.VLAN != s.VLAN || cfg.QoS != s.QoS || cfg.VLANProto != proto {
			out = append(out, fmt.Sprintf("VF VLAN is %d qos %d proto %#x, want %d qos %d proto %#x", s.VLAN, s.QoS, proto, *cfg.VLAN, cfg.QoS, cfg.VLANProto))
		}
	}
	if cfg.SpoofChk != nil && *cfg.SpoofChk != s.SpoofChk {
		out = append(out, fmt.Sprintf("VF spoofchk is %s, want %s", onOff(s.SpoofChk), onOff(*cfg.SpoofChk)))
	}
	if cfg.Trust != nil && *cfg.Trust != s.Trust {
		out = append(out, fmt.Sprintf("VF trust is %s, want %s", onOff(s.Trust), onOff(*cfg.Trust)))
	}
	if cfg.LinkState != nil && *cfg.LinkState != s.LinkState {
		out = append(out, fmt.Sprintf("VF link_state is %s, want %s", s.LinkState, *cfg.LinkState))
	}
	if cfg.MinTxRate != nil && *cfg.MinTxRate != s.MinTxRate {
		out = append(out, fmt.Sprintf("VF min_tx_rate is %d, want %d", s.MinTxRate, *cfg.MinTxRate))
	}
	if cfg.MaxTxRate != nil && *cfg.MaxTxRate != s.MaxTxRate {
		out = append(out, fmt.Sprintf("VF max_tx_rate is %d, want %d", s.MaxTxRate, *cfg.MaxTxRate))
	}
	return out
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
