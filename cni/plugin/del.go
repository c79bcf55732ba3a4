package plugin

import (
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// CmdDel returns the VF to the host as it was before ADD. It is idempotent
// and does what it can when the pod's namespace or the cache entry is gone
// (see the package documentation).
func (p *Plugin) CmdDel(args *skel.CmdArgs) error {
	return p.logged("DEL", args, func(q *Plugin) error { return q.cmdDel(args) })
}

func (p *Plugin) cmdDel(args *skel.CmdArgs) error {
	conf, err := loadBaseConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := validateEnv(args); err != nil {
		return err
	}
	t := target{
		containerID: args.ContainerID, ifName: args.IfName, netns: args.Netns,
		path: args.Path, cniArgs: args.Args, pci: conf.deviceID(),
		ipamType: conf.IPAM.Type, ipamConf: args.StdinData,
	}
	p.mark("config")
	e, ok, err := cache{dir: conf.cacheDir()}.get(args.ContainerID, args.IfName)
	if err != nil {
		p.logf("DEL %s/%s: %v; going on with the attachment record", args.ContainerID, args.IfName, err)
	}
	if ok {
		t.withEntry(e)
	}
	p.mark("cache entry")
	return p.release(conf, t)
}

// target is one attachment to release: by DEL, or by GC for a stale one.
type target struct {
	containerID, ifName, netns string
	// path and cniArgs are CNI_PATH and CNI_ARGS for the IPAM plugin.
	path, cniArgs string
	pci           string
	// entry is the cache entry, nil when missing.
	entry *entry
	// ipamType and ipamConf release the address: the ADD's configuration
	// when the entry has it, else the request's.
	ipamType string
	ipamConf []byte
}

func (t *target) withEntry(e entry) {
	t.entry = &e
	t.pci = e.PCIAddress
	if t.netns == "" {
		t.netns = e.Netns
	}
	if base, err := loadBaseConf(e.Config); err == nil && len(e.Config) > 0 {
		t.ipamType, t.ipamConf = base.IPAM.Type, e.Config
	}
}

// fromRecord stands the attachment record in for a missing cache entry;
// the address is released with the request's IPAM configuration.
func (t *target) fromRecord(r nodefiles.Record) {
	t.entry = &entry{
		Network: r.Network, ContainerID: r.ContainerID, IfName: r.IfName, Netns: r.Netns,
		PCIAddress: r.PCIAddress, PFName: r.PFName, VFIndex: r.VFIndex, Original: *r.OriginalVF,
		Netdev: r.OriginalNetdev, RDMADevice: r.RDMADevice,
		SoftRoCEDevice: r.SoftRoCEDevice, SoftRoCECDISpec: r.SoftRoCECDISpec,
	}
	if t.netns == "" {
		t.netns = r.Netns
	}
}

// release restores the VF of t (netdev, RDMA device, PF-side settings),
// releases its IPAM address and removes its attachment record and cache
// entry, in that order. Missing pieces are skipped; the only failures
// returned are a netdev that cannot leave a live pod namespace and an IPAM
// plugin that fails, both worth the runtime's retry: the cache entry stays
// for it.
func (p *Plugin) release(conf *BaseConf, t target) error {
	att := nodefiles.NewAttachments(conf.attachmentsDir())
	if t.pci != "" && pciAddrRE.MatchString(t.pci) {
		lock, err := lockVF(conf.lockDir(), t.pci, p.LockTimeout)
		if err != nil {
			return err
		}
		defer lock.Unlock()
		p.mark("VF lock")
		rec, recOK, err := att.Get(t.pci)
		var unreadable *nodefiles.UnreadableError
		if err != nil {
			p.logf("release %s: %v", t.pci, err)
			errors.As(err, &unreadable)
		}
		p.mark("record")
		// A record of another attachment means the VF is someone else's now.
		recOK = recOK && rec.ContainerID == t.containerID && rec.IfName == t.ifName
		if t.entry == nil && recOK && rec.OriginalVF != nil {
			t.fromRecord(rec) // the cache entry is gone: the record has the same state
		}
		if t.entry != nil || recOK {
			var r *nodefiles.Record
			if recOK {
				r = &rec
			}
			if err := p.restore(t, r); err != nil {
				return err
			}
		}
		defer func() {
			switch {
			case recOK:
				if err := att.Delete(t.pci); err != nil {
					p.logf("release %s: %v", t.pci, err)
				}
			case unreadable != nil && t.entry != nil && t.entry.PCIAddress == t.pci:
				// This attachment's own cache entry brought the VF back:
				// the damaged record held nothing else.
				if to, err := att.Quarantine(t.pci, time.Now()); err != nil {
					p.logf("release %s: %v", t.pci, err)
				} else {
					p.logf("release %s: moved its unreadable attachment record to %s", t.pci, to)
				}
			}
		}()
	}
	if t.ipamType != "" {
		a := &invoke.Args{ContainerID: t.containerID, NetNS: t.netns, IfName: t.ifName, PluginArgsStr: t.cniArgs, Path: t.path}
		if _, err := p.execIPAM("DEL", t.ipamType, t.ipamConf, a, p.Stderr); err != nil {
			return fmt.Errorf("IPAM plugin %s: release the address of %s/%s: %w", t.ipamType, t.containerID, t.ifName, err)
		}
		p.mark("IPAM")
	}
	if err := (cache{dir: conf.cacheDir()}).remove(t.containerID, t.ifName); err != nil {
		p.logf("release %s/%s: %v", t.containerID, t.ifName, err)
	}
	p.mark("remove state")
	return nil
}

// restore brings the VF's netdev and RDMA device back to the host namespace
// and puts back its name, state and PF-side settings, as far as the cache
// entry (or else the attachment record) tells them.
func (p *Plugin) restore(t target, rec *nodefiles.Record) error {
	hostNS, err := host.CurrentNetns()
	if err != nil {
		return err
	}
	defer hostNS.Close()
	var podNS *host.Netns
	if t.netns != "" {
		podNS, err = host.OpenNetns(t.netns)
		if err != nil {
			if !errors.Is(err, host.ErrNotFound) {
				p.logf("release %s: %v; looking for its netdev in the host namespace", t.pci, err)
			}
			podNS = nil
		} else {
			defer podNS.Close()
		}
	}

	p.mark("namespaces")
	p.removeSoftRoCE(t, rec)
	p.mark("soft-RoCE")

	var orig *host.NetdevState
	rdmaDev := ""
	switch {
	case t.entry != nil:
		orig, rdmaDev = t.entry.Netdev, t.entry.RDMADevice
	case rec != nil && rec.HostIfName != "":
		// No cache entry and a record of an older sluice-cni: the name is
		// all that is known.
		orig, rdmaDev = &host.NetdevState{Name: rec.HostIfName}, rec.RDMADevice
	}

	// An RDMA device left in a namespace being destroyed goes back to the
	// initial namespace by itself; otherwise move it.
	if rdmaDev != "" && podNS != nil {
		if err := p.Node.MoveRDMADevice(podNS, rdmaDev, hostNS); err != nil && !errors.Is(err, host.ErrNotFound) {
			p.logf("release %s: move RDMA device %s back: %v", t.pci, rdmaDev, err)
		}
	}

	if orig != nil {
		cur := ""
		if podNS != nil {
			if _, err := podNS.Netdev(t.ifName); err == nil {
				name, err := host.MoveNetdev(podNS, t.ifName, hostNS, orig.Name)
				if errors.Is(err, host.ErrNameInUse) {
					p.logf("release %s: %v; leaving it under a temporary name", t.pci, err)
					name, err = host.MoveNetdev(podNS, t.ifName, hostNS, "")
				}
				if err != nil {
					return fmt.Errorf("move %s of container %s back to the host: %w", t.ifName, t.containerID, err)
				}
				cur = name
			}
		}
		p.mark("move netdev")
		if cur == "" {
			// The namespace is gone (the kernel returned the netdev, under
			// the pod's name or devN) or DEL already ran: find it by PCI.
			vf, err := p.Node.VF(t.pci)
			switch {
			case err != nil:
				p.logf("release %s: %v", t.pci, err)
			case vf.Netdev == "":
				p.logf("release %s: its netdev is not in the host namespace; nothing to rename", t.pci)
			default:
				cur = vf.Netdev
			}
		}
		if cur != "" {
			var err error
			if t.entry != nil {
				err = hostNS.RestoreNetdev(cur, *orig)
			} else {
				err = hostNS.RenameNetdev(cur, orig.Name)
			}
			if err != nil {
				p.logf("release %s: restore netdev %s: %v", t.pci, orig.Name, err)
			}
		}
		p.mark("restore netdev")
	}
	if t.entry != nil {
		if err := p.restoreVF(*t.entry); err != nil {
			p.logf("release %s: restore VF settings: %v", t.pci, err)
		}
		p.mark("restore VF")
	}
	return nil
}

// removeSoftRoCE deletes the attachment's soft-RoCE device (gone already
// when its netdev left the pod's namespace) and its CDI spec.
func (p *Plugin) removeSoftRoCE(t target, rec *nodefiles.Record) {
	dev, spec := "", ""
	if t.entry != nil {
		dev, spec = t.entry.SoftRoCEDevice, t.entry.SoftRoCECDISpec
	}
	if rec != nil {
		dev, spec = or(dev, rec.SoftRoCEDevice), or(spec, rec.SoftRoCECDISpec)
	}
	if dev != "" {
		if err := p.Node.DeleteSoftRoCE(dev); err != nil && !errors.Is(err, host.ErrNotFound) {
			p.logf("release %s: %v", t.pci, err)
		}
	}
	if err := nodefiles.RemoveCDISpec(spec); err != nil {
		p.logf("release %s: %v", t.pci, err)
	}
}

// restoreVF puts back the VF's PF-side settings (host.RestoreVF).
func (p *Plugin) restoreVF(e entry) error {
	return host.RestoreVF(p.Node, e.PFName, e.VFIndex, e.Original)
}
