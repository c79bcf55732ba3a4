package plugin

import (
	"errors"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// CmdGC (CNI 1.1) releases the VFs of this network's attachments that are
// not in cni.dev/valid-attachments, as DEL would: from their cache entries,
// or from their attachment records when the entry is gone. Then it passes
// GC on to the IPAM plugin.
func (p *Plugin) CmdGC(args *skel.CmdArgs) error {
	return p.logged("GC", args, func(q *Plugin) error { return q.cmdGC(args) })
}

func (p *Plugin) cmdGC(args *skel.CmdArgs) error {
	conf, err := loadBaseConf(args.StdinData)
	if err != nil {
		return err
	}
	valid := map[[2]string]bool{}
	for _, a := range conf.ValidAttachments {
		valid[[2]string{a.ContainerID, a.IfName}] = true
	}
	stale := func(network, containerID, ifName string) bool {
		return network == conf.Name && !valid[[2]string{containerID, ifName}]
	}
	cch := cache{dir: conf.cacheDir()}
	var errs []error
	entries, err := cch.list()
	if err != nil {
		p.logf("GC: %v", err)
	}
	for _, e := range entries {
		if !stale(e.Network, e.ContainerID, e.IfName) {
			continue
		}
		p.logf("GC: releasing VF %s of stale attachment %s/%s", e.PCIAddress, e.ContainerID, e.IfName)
		t := target{containerID: e.ContainerID, ifName: e.IfName, path: args.Path, ipamType: conf.IPAM.Type, ipamConf: args.StdinData}
		t.withEntry(e)
		errs = append(errs, p.release(conf, t))
	}
	records, bad, err := nodefiles.NewAttachments(conf.attachmentsDir()).List()
	if err != nil {
		p.logf("GC: %v", err)
	}
	for _, u := range bad {
		p.logf("GC: skipping unreadable attachment record %s: %v", u.Path, u.Err)
	}
	for _, r := range records {
		if !stale(r.Network, r.ContainerID, r.IfName) {
			continue
		}
		if _, ok, _ := cch.get(r.ContainerID, r.IfName); ok {
			continue // its entry was handled above
		}
		p.logf("GC: releasing VF %s of stale attachment %s/%s (no cache entry)", r.PCIAddress, r.ContainerID, r.IfName)
		errs = append(errs, p.release(conf, target{
			containerID: r.ContainerID, ifName: r.IfName, netns: r.Netns, path: args.Path, pci: r.PCIAddress,
			ipamType: conf.IPAM.Type, ipamConf: args.StdinData,
		}))
	}
	if conf.IPAM.Type != "" {
		if _, err := p.execIPAM("GC", conf.IPAM.Type, args.StdinData, &invoke.Args{Path: args.Path}, p.Stderr); err != nil {
			p.logf("GC: IPAM plugin %s: %v", conf.IPAM.Type, err)
		}
	}
	return errors.Join(errs...)
}
