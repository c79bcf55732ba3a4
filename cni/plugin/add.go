package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ipam"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// CmdAdd attaches the VF deviceID to the pod as CNI_IFNAME.
func (p *Plugin) CmdAdd(args *skel.CmdArgs) error {
	return p.logged("ADD", args, func(q *Plugin) error { return q.cmdAdd(args) })
}

func (p *Plugin) cmdAdd(args *skel.CmdArgs) error {
	res, conf, err := p.add(args)
	if err != nil {
		return err
	}
	p.mark("release")
	if p.log.enabled(LogInfo) {
		var ips []string
		for _, ip := range res.IPs {
			ips = append(ips, ip.Address.String())
		}
		p.infof("VF %s is %s in the pod (MAC %s, addresses %v)", conf.PCI, args.IfName, res.Interfaces[0].Mac, ips)
	}
	err = printResult(p.Stdout, res, conf.CNIVersion)
	p.mark("result")
	return err
}

// add validates the request, then, holding the VF's lock: saves the VF's
// state (cache entry and attachment record), configures the VF on its PF,
// moves its netdev (up, in one request) and RDMA device into the pod, and
// runs IPAM (beside the move when the plugin only allocates). Each step
// registers its undo; a failure undoes all steps before it, in reverse.
func (p *Plugin) add(args *skel.CmdArgs) (_ *current.Result, _ *Config, err error) {
	conf, err := LoadConf(args)
	if err != nil {
		return nil, nil, err
	}
	p.mark("config")
	if args.Netns == "" {
		return nil, nil, invalidEnv("CNI_NETNS is empty: ADD needs the pod's network namespace")
	}
	podNS, err := host.OpenNetns(args.Netns)
	if err != nil {
		if errors.Is(err, host.ErrNotFound) {
			return nil, nil, invalidEnv("CNI_NETNS %s: the network namespace does not exist", args.Netns)
		}
		return nil, nil, invalidEnv("CNI_NETNS %s: %v", args.Netns, err)
	}
	defer podNS.Close()
	// CNI_IFNAME taken in the pod is found by the move, which then undoes
	// itself (and the steps before it undo theirs): looking first would
	// open a netlink socket in the pod's namespace on every ADD.
	hostNS, err := host.CurrentNetns()
	if err != nil {
		return nil, nil, err
	}
	defer hostNS.Close()
	p.mark("namespaces")

	att := nodefiles.NewAttachments(conf.attachmentsDir())
	if p.HolderWait > 0 {
		p.waitForHolder(att, conf.PCI, args.ContainerID)
	}
	lock, err := lockVF(conf.lockDir(), conf.PCI, p.LockTimeout)
	if err != nil {
		return nil, nil, err
	}
	defer lock.Unlock()
	p.mark("VF lock")

	vf, err := p.Node.VF(conf.PCI)
	if err != nil {
		if errors.Is(err, host.ErrNotFound) {
			return nil, nil, invalidConfig("deviceID %s is not a VF on this node (%v): check the device plugin's allocation and the network's resource name", conf.PCI, err)
		}
		return nil, nil, fmt.Errorf("look up VF %s: %w", conf.PCI, err)
	}
	p.mark("VF lookup")
	if err := draHeld(conf); err != nil {
		return nil, nil, err
	}
	cch := cache{dir: conf.cacheDir()}
	var unreadable *nodefiles.UnreadableError
	if rec, ok, err := att.Get(conf.PCI); errors.As(err, &unreadable) {
		// Damaged: only the VF's own state tells whether it is in a pod.
		if vf.Driver == host.VfioPci || vf.Netdev == "" {
			return nil, nil, cniError(ErrVFUnavailable, "VF %s has an unreadable attachment record (%v) and its netdev is not in the host namespace, so it may be in a pod: if no pod uses the VF, delete %s", conf.PCI, unreadable.Err, unreadable.Path)
		}
		to, err := att.Quarantine(conf.PCI, time.Now())
		if err != nil {
			return nil, nil, fmt.Errorf("VF %s: %w", conf.PCI, err)
		}
		p.logf("VF %s: its attachment record was unreadable (%v) and the VF is back in the host namespace, so it held nothing: moved the record to %s", conf.PCI, unreadable.Err, to)
	} else if err != nil {
		return nil, nil, err
	} else if ok {
		if !staleRecord(rec, vf) {
			return nil, nil, cniError(ErrVFUnavailable, "VF %s is already attached to pod %s as %s (container %s): the device plugin gave it twice, or its DEL has not run", conf.PCI, rec.Pod(), rec.IfName, rec.ContainerID)
		}
		// The namespace it names is gone and the VF is back on the host:
		// a reboot, or a runtime that never called DEL. Nothing holds the
		// VF, so the record describes nothing any more.
		p.logf("VF %s: taking over the stale attachment of pod %s (container %s): its network namespace %s is gone and the VF is back in the host namespace", conf.PCI, rec.Pod(), rec.ContainerID, rec.Netns)
		if err := att.Delete(conf.PCI); err != nil {
			return nil, nil, fmt.Errorf("remove the stale attachment record of VF %s: %w", conf.PCI, err)
		}
		_ = cch.remove(rec.ContainerID, rec.IfName)
	}
	if _, ok, _ := cch.get(args.ContainerID, args.IfName); ok {
		return nil, nil, cniError(ErrVFUnavailable, "container %s already has %s from sluice-cni (cache entry in %s): DEL it first", args.ContainerID, args.IfName, cch.dir)
	}
	p.mark("records check")
	hasNetdev := vf.Driver != host.VfioPci
	if hasNetdev && vf.Netdev == "" {
		return nil, nil, cniError(ErrVFUnavailable, "VF %s (driver %q) has no netdev in the host namespace: it is in another namespace, or its driver is not bound", conf.PCI, vf.Driver)
	}
	if vf.PFName == "" {
		return nil, nil, cniError(ErrVFUnavailable, "VF %s: its PF %s has no netdev in the host namespace, so its settings cannot be applied", conf.PCI, vf.PFAddress)
	}
	if conf.SoftRoCE != nil {
		if !hasNetdev {
			return nil, nil, invalidConfig("softRoCE: VF %s is bound to %s and has no netdev to run soft-RoCE on: use a netdevice pool", conf.PCI, vf.Driver)
		}
		// Without the RDMA core loaded the mode cannot be read; the kernel
		// loads it with rdma_rxe, in its default shared mode.
		if mode, err := p.Node.RDMANetnsMode(); err == nil && mode == "exclusive" {
			return nil, nil, invalidConfig("softRoCE: the node is in exclusive RDMA mode, where a soft-RoCE device (registered in the initial RDMA namespace, unable to move) is visible to no pod: set spec.rdma.mode shared on this node's policies")
		}
	}
	rdmaMode := ""
	if conf.RDMA && conf.SoftRoCE == nil {
		if !hasNetdev || vf.RDMA == nil {
			return nil, nil, invalidConfig("rdma is true but VF %s (driver %s) has no RDMA device: use a VF with RDMA (a ConnectX VF, or soft-RoCE on its netdev), or set rdma to false", conf.PCI, vf.Driver)
		}
		if rdmaMode, err = p.Node.RDMANetnsMode(); err != nil {
			return nil, nil, fmt.Errorf("rdma: %w", err)
		}
	}

	p.mark("RDMA mode")

	// Save what DEL needs before changing anything.
	e := entry{
		Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns,
		PCIAddress: conf.PCI, PFName: vf.PFName, VFIndex: vf.Index, Original: vf.Settings,
		Config: args.StdinData,
	}
	rec := nodefiles.Record{
		PCIAddress: conf.PCI, ContainerID: args.ContainerID, IfName: args.IfName, Netns: args.Netns,
		PodNamespace: conf.Args.PodNamespace, PodName: conf.Args.PodName, PodUID: conf.Args.PodUID,
		Network: conf.Name, Created: time.Now().UTC(),
		PFName: vf.PFName, VFIndex: vf.Index, OriginalVF: &e.Original,
	}
	if hasNetdev {
		// As the look-up read it, under the VF's lock.
		st := host.NetdevState{Name: vf.Netdev, MAC: vf.MAC, MTU: vf.MTU, Up: vf.Up}
		e.Netdev, rec.OriginalNetdev = &st, &st
		rec.HostIfName = st.Name
	}
	switch {
	case conf.SoftRoCE != nil:
		e.SoftRoCEDevice, rec.SoftRoCEDevice = host.SoftRoCEName(conf.PCI), host.SoftRoCEName(conf.PCI)
		e.SoftRoCECDISpec = nodefiles.CDISpecPath(conf.SoftRoCE.cdiDir(), conf.PCI)
		rec.SoftRoCECDISpec = e.SoftRoCECDISpec
	case conf.RDMA && rdmaMode == "exclusive":
		e.RDMADevice, rec.RDMADevice = vf.RDMA.Name, vf.RDMA.Name
	case conf.RDMA:
		rec.SharedRDMADevice = vf.RDMA.Name
		p.logf("VF %s: the node is in %s RDMA mode, so RDMA device %s stays in the host namespace, visible from every namespace (exclusive mode moves it into the pod)", conf.PCI, rdmaMode, vf.RDMA.Name)
	}
	if err := cch.put(e); err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = cch.remove(e.ContainerID, e.IfName)
		}
	}()
	if err := att.Put(rec); err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = att.Delete(conf.PCI)
		}
	}()
	p.mark("save state")

	// An IPAM plugin that only allocates runs while the VF is configured
	// and moved (see ipamNeedsInterface); others run after the move.
	var ipamRun *ipamCall
	if conf.IPAM.Type != "" && !ipamNeedsInterface(conf.IPAM.Type) {
		ipamRun = p.startIPAM(conf.IPAM.Type, args)
	}
	defer func() {
		if err != nil && ipamRun != nil {
			p.releaseIPAM(ipamRun, conf.IPAM.Type, args)
		}
	}()

	// PF side.
	if p.log.enabled(LogDebug) {
		b, _ := json.Marshal(conf.VF)
		p.debugf("VF %s is VF %d of %s, netdev %q, driver %s; applying %s", conf.PCI, vf.Index, vf.PFName, vf.Netdev, vf.Driver, b)
	}
	// The VF as the look-up read it, under the VF's lock since.
	if err := p.Node.ConfigureVFFrom(vf, conf.VF); err != nil {
		return nil, nil, fmt.Errorf("configure VF %s: %w", conf.PCI, err)
	}
	p.mark("configure VF")
	defer func() {
		if err != nil {
			if rerr := p.restoreVF(e); rerr != nil {
				p.logf("undo: restore VF %s settings: %v", conf.PCI, rerr)
			}
		}
	}()

	iface := &current.Interface{Name: args.IfName, PciID: conf.PCI}
	if hasNetdev {
		if err := p.moveIn(hostNS, podNS, vf, conf, e, iface); err != nil {
			return nil, nil, err
		}
		defer func() {
			if err != nil {
				p.moveOut(hostNS, podNS, e)
			}
		}()
		p.mark("move netdev")
	}

	result := &current.Result{CNIVersion: current.ImplementedSpecVersion, Interfaces: []*current.Interface{iface}}
	if conf.IPAM.Type != "" {
		if ipamRun == nil {
			ipamRun = p.startIPAM(conf.IPAM.Type, args)
		}
		r, ierr := ipamRun.wait(p.Stderr)
		if ierr != nil {
			return nil, nil, fmt.Errorf("IPAM plugin %s: %w", conf.IPAM.Type, ierr)
		}
		ipRes, cerr := current.NewResultFromResult(r)
		if cerr != nil {
			return nil, nil, fmt.Errorf("IPAM plugin %s: convert its result: %w", conf.IPAM.Type, cerr)
		}
		if len(ipRes.IPs) == 0 {
			return nil, nil, fmt.Errorf("IPAM plugin %s returned no IP address", conf.IPAM.Type)
		}
		for _, ip := range ipRes.IPs {
			ip.Interface = current.Int(0)
		}
		result.IPs, result.Routes, result.DNS = ipRes.IPs, ipRes.Routes, ipRes.DNS
		if hasNetdev {
			if err := podNS.Do(func() error { return ipam.ConfigureIface(args.IfName, result) }); err != nil {
				return nil, nil, fmt.Errorf("configure %s with the IPAM result: %w", args.IfName, err)
			}
		}
		p.mark("IPAM")
	}
	if conf.SoftRoCE != nil {
		if err := p.addSoftRoCE(podNS, conf, e); err != nil {
			return nil, nil, err
		}
		p.mark("soft-RoCE")
	}
	return result, conf, nil
}

// addSoftRoCE creates the pod's soft-RoCE device on its VF, from inside
// the pod's namespace, and writes the CDI spec that hands its char devices
// to the containers. On failure it leaves neither behind.
func (p *Plugin) addSoftRoCE(podNS *host.Netns, conf *Config, e entry) (err error) {
	dev, err := p.Node.AddSoftRoCE(podNS, e.SoftRoCEDevice, e.IfName)
	if err != nil && errors.Is(err, syscall.EEXIST) {
		// Left by an attachment whose DEL never ran while its VF stayed
		// in a namespace: the name is this VF's, so the device is stale.
		p.logf("VF %s: removing the stale soft-RoCE device %s", conf.PCI, e.SoftRoCEDevice)
		_ = p.Node.DeleteSoftRoCE(e.SoftRoCEDevice)
		dev, err = p.Node.AddSoftRoCE(podNS, e.SoftRoCEDevice, e.IfName)
	}
	if err != nil {
		return fmt.Errorf("softRoCE: %w", err)
	}
	defer func() {
		if err != nil {
			if derr := p.Node.DeleteSoftRoCE(e.SoftRoCEDevice); derr != nil {
				p.logf("undo: delete soft-RoCE device %s: %v", e.SoftRoCEDevice, derr)
			}
		}
	}()
	d := nodefiles.CDIDevice{Kind: conf.SoftRoCE.CDIKind, PCIAddress: conf.PCI, DeviceNodes: dev.CharDevices}
	if _, err := nodefiles.WriteCDISpec(conf.SoftRoCE.cdiDir(), d); err != nil {
		return fmt.Errorf("softRoCE: %w", err)
	}
	return nil
}

// moveIn moves the VF netdev into the pod under its interface name, with
// its MTU and MAC, up (one request: host.AttachNetdev), and moves the RDMA
// device when e says so. On failure it leaves the netdev and RDMA device
// where they were.
func (p *Plugin) moveIn(hostNS, podNS *host.Netns, vf *host.VF, conf *Config, e entry, iface *current.Interface) (err error) {
	set := host.NetdevSettings{Name: iface.Name, MTU: conf.MTU, MAC: conf.MACAddr, Up: true}
	if err := host.AttachNetdev(hostNS, vf.Netdev, podNS, set); err != nil {
		if errors.Is(err, host.ErrNameInUse) {
			return invalidEnv("CNI_IFNAME %s: the pod's namespace already has an interface of that name (%v)", iface.Name, err)
		}
		return fmt.Errorf("move VF netdev into the pod: %w", err)
	}
	defer func() {
		if err != nil {
			p.moveOut(hostNS, podNS, e)
		}
	}()
	if e.RDMADevice != "" {
		if err := p.Node.MoveRDMADevice(hostNS, e.RDMADevice, podNS); err != nil {
			return fmt.Errorf("rdma: %w", err)
		}
	}
	// The MAC and MTU are the host's (e.Netdev, read before the move)
	// unless the configuration set them: no need to read them back.
	iface.Mac, iface.Mtu, iface.Sandbox = e.Netdev.MAC, e.Netdev.MTU, podNS.Path()
	if conf.MACAddr != nil {
		iface.Mac = conf.MACAddr.String()
	}
	if conf.MTU > 0 {
		iface.Mtu = conf.MTU
	}
	return nil
}

// moveOut is the undo of moveIn: RDMA device and netdev back to the host,
// netdev under its old name and state. Failures are logged.
func (p *Plugin) moveOut(hostNS, podNS *host.Netns, e entry) {
	if e.RDMADevice != "" {
		if err := p.Node.MoveRDMADevice(podNS, e.RDMADevice, hostNS); err != nil && !errors.Is(err, host.ErrNotFound) {
			p.logf("undo: move RDMA device %s back: %v", e.RDMADevice, err)
		}
	}
	name, err := host.MoveNetdev(podNS, e.IfName, hostNS, e.Netdev.Name)
	if errors.Is(err, host.ErrNameInUse) {
		name, err = host.MoveNetdev(podNS, e.IfName, hostNS, "")
	}
	if err != nil {
		p.logf("undo: move netdev %s back to the host: %v", e.IfName, err)
		return
	}
	if err := hostNS.RestoreNetdev(name, *e.Netdev); err != nil {
		p.logf("undo: restore netdev %s: %v", e.Netdev.Name, err)
	}
}

// draHeld refuses a VF that a DRA claim holds: its hold file (one open,
// under the VF's lock, which the DRA driver's Prepare holds while it
// writes the hold) names the claim. It runs before anything changes.
func draHeld(conf *Config) error {
	h, ok, err := nodefiles.NewDRAClaims(conf.draClaimsDir()).Hold(conf.PCI)
	var unreadable *nodefiles.UnreadableError
	switch {
	case errors.As(err, &unreadable):
		return cniError(ErrVFUnavailable, "VF %s has an unreadable DRA hold (%v), so a ResourceClaim may hold it: the sluice agent removes it at its start if no claim checkpoint backs it; if no claim uses the VF, delete %s", conf.PCI, unreadable.Err, unreadable.Path)
	case err != nil:
		return fmt.Errorf("VF %s: %w", conf.PCI, err)
	case ok:
		return cniError(ErrVFUnavailable, "VF %s is held by DRA ResourceClaim %s (uid %s), prepared on this node: its pool is DRA-allocated, so its VFs go to pods through ResourceClaims, not through this network's extended resource; give the pod a ResourceClaim, or move the pool back to the device plugin once the claim's pods are gone", conf.PCI, h.Claim(), h.ClaimUID)
	}
	return nil
}

// staleRecord reports whether an attachment record outlived what it
// describes: the network namespace it names no longer exists, and the VF
// is back in the host namespace (its netdev is here, or it has none).
func staleRecord(rec nodefiles.Record, vf *host.VF) bool {
	if rec.Netns == "" {
		return false
	}
	if _, err := os.Stat(rec.Netns); !errors.Is(err, os.ErrNotExist) {
		return false
	}
	return vf.Driver == host.VfioPci || vf.Netdev != ""
}
