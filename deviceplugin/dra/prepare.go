package dra

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sluice-net/sluice/api/dradevice"
	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/host"
)

// Prepare and Unprepare: Prepare applies the claim's PF-side settings to
// each of its VFs on this node, records the pods the claim is reserved for
// and hands the containers the VFs' device nodes through one CDI spec per
// claim; Unprepare gives back a VF still in a pod (nri.go) and puts
// everything back. Both work from the claim checkpoints (package
// nodefiles), which say which VFs are held and what they were before.
// Moving the VF's netdev into the pod happens at sandbox creation, through
// NRI (nri.go).

// Node is what Prepare and Unprepare need of the node; *host.Host is it.
type Node interface {
	// VF looks up one VF by PCI address (host.ErrNotFound wrapped when it
	// is not on the node).
	VF(pciAddr string) (*host.VF, error)
	host.VFConfigurer
	// DevPath maps a /dev path as containers see it to the node's.
	DevPath(p string) string
	// RDMANetnsMode and MoveRDMADevice move a VF's RDMA device with its
	// netdev in exclusive RDMA mode (nri.go).
	RDMANetnsMode() (string, error)
	MoveRDMADevice(from *host.Netns, name string, to *host.Netns) error
}

// CDIClass is the CDI class of the claims' devices: their CDI kind is
// <driver>/vf (sluice.dev/vf) and their names <claim UID>-<DRA device>.
const CDIClass = "vf"

// EnvPrefix starts the variables a prepared VF sets in its containers:
// SLUICE_DRA_<REQUEST> lists the PCI addresses of the claim's VFs for that
// request (comma-separated, in device order) and SLUICE_DRA_<REQUEST>_RDMA
// their RDMA devices, when the pool hands them out. <REQUEST> is the
// request's name in upper case, with "-" and "/" as "_".
const EnvPrefix = "SLUICE_DRA_"

// claims is the driver's prepared claims: the checkpoints in memory.
type claims struct {
	store nodefiles.DRAClaims
	// prepared are the claims in state DRAClaimPrepared, by UID.
	prepared map[types.UID]nodefiles.DRAClaim
	// unfinished are claims whose Prepare failed or was cut short and
	// could not be undone (a VF refused its old settings back): they keep
	// their checkpoint and hold their VFs until a Prepare or Unprepare of
	// the claim undoes them.
	unfinished map[types.UID]nodefiles.DRAClaim
}

// holders are the claims holding VFs.
func (c *claims) holders() []nodefiles.DRAClaim {
	return append(slices.Collect(maps.Values(c.prepared)), slices.Collect(maps.Values(c.unfinished))...)
}

// loadClaims reads the checkpoints a previous run left: prepared claims
// keep their VFs; a claim whose Prepare was cut short gets its VFs back
// and its checkpoint removed (the kubelet, which got no answer, prepares
// it again); when that fails, the claim keeps holding them (unfinished). A
// checkpoint that cannot be parsed is left for a person and reported:
// which VFs it holds is unknown.
func (d *Driver) loadClaims() error {
	c := &claims{store: nodefiles.NewDRAClaims(d.opts.ClaimsDir),
		prepared: map[types.UID]nodefiles.DRAClaim{}, unfinished: map[types.UID]nodefiles.DRAClaim{}}
	d.claims = c
	if err := c.store.RemoveTemporaries(); err != nil {
		d.log.Error(err, "cannot remove the temporary files of interrupted checkpoint writes")
	}
	list, bad, err := c.store.List()
	if err != nil {
		return fmt.Errorf("read the DRA claim checkpoints: %w", err)
	}
	for _, u := range bad {
		d.log.Error(u.Err, "unreadable DRA claim checkpoint: the VFs it holds are unknown; if no pod uses claim "+u.UID+", delete the file", "path", u.Path)
	}
	for _, cl := range list {
		if cl.State == nodefiles.DRAClaimPrepared {
			c.prepared[types.UID(cl.UID)] = cl
			continue
		}
		d.log.Info("rolling back a Prepare that did not finish", "claim", cl.Namespace+"/"+cl.Name, "uid", cl.UID)
		if err := d.release(cl, cl.Devices, true); err != nil {
			d.log.Error(err, "cannot roll back the unfinished Prepare: its VFs stay held until the claim's next Prepare or Unprepare", "claim", cl.Namespace+"/"+cl.Name, "uid", cl.UID)
			c.unfinished[types.UID(cl.UID)] = cl
		}
	}
	d.syncHolds(bad)
	return nil
}

// PrepareResourceClaims prepares each claim on its own: one failing does
// not fail the others.
func (d *Driver) PrepareResourceClaims(ctx context.Context, cs []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	d.prepMu.Lock()
	defer d.prepMu.Unlock()
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(cs))
	for _, c := range cs {
		devs, err := d.prepare(ctx, c)
		if err != nil {
			err = fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
			d.log.Error(err, "prepare failed", "uid", c.UID)
		}
		out[c.UID] = kubeletplugin.PrepareResult{Devices: devs, Err: err}
	}
	return out, nil
}

// UnprepareResourceClaims restores each claim's VFs; a claim it does not
// know (never prepared here, or already unprepared) succeeds.
func (d *Driver) UnprepareResourceClaims(_ context.Context, cs []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	d.prepMu.Lock()
	defer d.prepMu.Unlock()
	out := make(map[types.UID]error, len(cs))
	for _, c := range cs {
		err := d.unprepare(c.UID)
		if err != nil {
			err = fmt.Errorf("claim %s: %w", c.NamespacedName, err)
			d.log.Error(err, "unprepare failed", "uid", c.UID)
		}
		out[c.UID] = err
	}
	return out, nil
}

// device is one VF of a claim being prepared.
type device struct {
	result resourceapi.DeviceRequestAllocationResult
	pool   *deviceplugin.PoolDevices
	dev    *deviceplugin.Device
	// cfg is the configuration that applies (nil: none) and cfgIndex its
	// index in the allocation's config; vfn is the VFNetwork it names,
	// whose settings cfg holds (vfnetwork.go).
	cfg      *dradevice.ClaimConfig
	cfgIndex int
	vfn      *sluicev1.VFNetwork
}

func (d *Driver) prepare(ctx context.Context, c *resourceapi.ResourceClaim) (_ []kubeletplugin.Device, err error) {
	if cl, ok := d.claims.prepared[c.UID]; ok {
		// Prepared already (the kubelet retries, or restarted): the same
		// answer, and the VFs are not touched again.
		return result(cl), nil
	}
	if cl, ok := d.claims.unfinished[c.UID]; ok {
		if err := d.release(cl, cl.Devices, true); err != nil {
			return nil, fmt.Errorf("an earlier Prepare of the claim could not be undone: %w", err)
		}
		delete(d.claims.unfinished, c.UID)
	}
	if c.Status.Allocation == nil {
		return nil, errors.New("not allocated: the scheduler has not allocated it yet")
	}
	devs, err := d.plan(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := d.nriReady(devs); err != nil {
		return nil, err
	}

	// Lock the VFs in address order (as one CNI command or the agent
	// would), then check that nobody holds them.
	for _, dv := range slices.SortedFunc(slices.Values(devs), func(a, b *device) int { return cmp.Compare(a.dev.PCIAddress, b.dev.PCIAddress) }) {
		lock, err := nodefiles.LockVF(d.opts.LockDir, dv.dev.PCIAddress, d.opts.LockTimeout)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", dv.result.Device, err)
		}
		defer lock.Unlock()
	}
	if err := d.checkFree(devs); err != nil {
		return nil, err
	}
	if err := d.checkHolds(c.UID, devs); err != nil {
		return nil, err
	}

	cl := nodefiles.DRAClaim{
		UID: string(c.UID), Namespace: c.Namespace, Name: c.Name, State: nodefiles.DRAClaimPreparing,
		CDISpec: nodefiles.DRAClaimCDISpecPath(d.opts.CDIDir, string(c.UID)), Created: time.Now().UTC(),
		PodUIDs: reservedPods(c),
	}
	for _, dv := range devs {
		vf, err := d.opts.Node.VF(dv.dev.PCIAddress)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", dv.result.Device, err)
		}
		if vf.PFName == "" {
			return nil, fmt.Errorf("device %s: the PF %s of VF %s has no netdev in the host namespace, so the VF's settings cannot be applied", dv.result.Device, vf.PFAddress, vf.PCIAddress)
		}
		cd := nodefiles.DRAClaimDevice{
			Request: dv.result.Request, Pool: dv.result.Pool, Device: dv.result.Device,
			PCIAddress: vf.PCIAddress, PFName: vf.PFName, VFIndex: vf.Index, Original: vf.Settings,
			Applied: vfConfig(dv.cfg), CDIDeviceIDs: []string{d.cdiID(c.UID, dv.result.Device)},
		}
		switch {
		case dv.vfn != nil:
			// The VFNetwork's settings, resolved: the NRI step and a
			// restart read them here.
			if cd.Config, err = json.Marshal(dv.cfg); err != nil {
				return nil, fmt.Errorf("device %s: record the settings of VFNetwork %s/%s: %w", dv.result.Device, dv.vfn.Namespace, dv.vfn.Name, err)
			}
		case dv.cfg != nil:
			cd.Config = c.Status.Allocation.Devices.Config[dv.cfgIndex].Opaque.Parameters.Raw
		}
		if dv.dev.RDMA != nil && dv.pool.Pool.RDMA {
			cd.RDMADevice = dv.dev.RDMA.Name
		}
		cl.Devices = append(cl.Devices, cd)
	}

	// The holds, then the checkpoint: from here on, a crash leaves what
	// restores the VFs, and the VFs are held, for the CNI and the agent
	// too.
	if err := d.putHolds(cl); err != nil {
		return nil, err
	}
	if err := d.claims.store.Put(cl); err != nil {
		return nil, d.dropCheckpoint(cl, err)
	}
	var configured []nodefiles.DRAClaimDevice
	defer func() {
		if err != nil {
			// The VFs' locks are still held (deferred before this).
			if rerr := d.release(cl, configured, false); rerr != nil {
				d.log.Error(rerr, "undo a failed Prepare", "claim", c.Namespace+"/"+c.Name)
				err = fmt.Errorf("%w; undoing it failed too, so the claim holds its VFs until its next Prepare or Unprepare: %v", err, rerr)
				d.claims.unfinished[c.UID] = cl
			}
		}
	}()
	for _, cd := range cl.Devices {
		if err := d.opts.Node.ConfigureVF(cd.PFName, cd.VFIndex, cd.Applied); err != nil {
			return nil, fmt.Errorf("device %s: configure VF %s: %w", cd.Device, cd.PCIAddress, err)
		}
		configured = append(configured, cd)
	}
	if _, err := nodefiles.WriteDRAClaimCDISpec(d.opts.CDIDir, string(c.UID), d.cdiKind(), d.cdiDevices(c.UID, devs)); err != nil {
		return nil, err
	}
	cl.State = nodefiles.DRAClaimPrepared
	if err := d.claims.store.Put(cl); err != nil {
		return nil, err
	}
	d.claims.prepared[c.UID] = cl
	d.log.Info("prepared claim", "claim", c.Namespace+"/"+c.Name, "uid", c.UID, "devices", len(cl.Devices))
	return result(cl), nil
}

// plan finds the claim's devices of this driver on this node in the
// latest scan, with the configuration that applies to each (a VFNetwork's
// resolved).
func (d *Driver) plan(ctx context.Context, c *resourceapi.ResourceClaim) ([]*device, error) {
	alloc := &c.Status.Allocation.Devices
	cfgs := make([]*dradevice.ClaimConfig, len(alloc.Config))
	vfns := make([]*sluicev1.VFNetwork, len(alloc.Config))
	for i, ac := range alloc.Config {
		if ac.Opaque == nil || ac.Opaque.Driver != d.opts.DriverName {
			continue
		}
		cfg, err := dradevice.DecodeClaimConfig(ac.Opaque.Parameters.Raw)
		if err != nil {
			return nil, fmt.Errorf("config of the %s (allocation config[%d], opaque parameters for %s): %w", source(ac.Source), i, d.opts.DriverName, err)
		}
		if cfg.VFNetwork != nil {
			if vfns[i], cfg, err = d.resolveVFNetwork(ctx, c.Namespace, cfg); err != nil {
				return nil, fmt.Errorf("config of the %s (allocation config[%d]): %w", source(ac.Source), i, err)
			}
		}
		cfgs[i] = cfg
	}
	d.mu.Lock()
	t := d.tree
	d.mu.Unlock()
	if t == nil {
		return nil, errors.New("the driver has not scanned the node yet: retry in a moment")
	}
	var devs []*device
	seen := map[string]bool{}
	for _, r := range alloc.Results {
		if r.Driver != d.opts.DriverName || r.Pool != d.opts.NodeName {
			continue
		}
		if seen[r.Device] {
			return nil, fmt.Errorf("device %s is allocated to the claim twice: one VF serves one request", r.Device)
		}
		seen[r.Device] = true
		pd, dev := findDevice(t, r.Device)
		if dev == nil {
			return nil, fmt.Errorf("device %s (request %s) is not a VF of this node's DRA pools in the latest scan: it was removed or reconfigured after the allocation; delete the pod so that the claim is allocated again", r.Device, r.Request)
		}
		dv := &device{result: r, pool: pd, dev: dev, cfgIndex: -1}
		// The last configuration for the request wins: the claim's come
		// after the class's.
		for i, ac := range alloc.Config {
			if cfgs[i] != nil && forRequest(ac.Requests, r.Request) {
				dv.cfg, dv.cfgIndex, dv.vfn = cfgs[i], i, vfns[i]
			}
		}
		if v := dv.vfn; v != nil && v.Spec.ResourceName != pd.Pool.Name {
			ac := alloc.Config[dv.cfgIndex]
			return nil, fmt.Errorf("config of the %s (allocation config[%d]): vfNetwork %s/%s serves pool %s (spec.resourceName), but device %s (request %s) is a VF of pool %s: name a VFNetwork whose resourceName is %s, or request the device from pool %s's DeviceClass",
				source(ac.Source), dv.cfgIndex, v.Namespace, v.Name, v.Spec.ResourceName, r.Device, r.Request, pd.Pool.Name, pd.Pool.Name, v.Spec.ResourceName)
		}
		devs = append(devs, dv)
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("no device of driver %s on node %s is allocated to it", d.opts.DriverName, d.opts.NodeName)
	}
	// A MAC or an interface name is one device's.
	for i, ac := range alloc.Config {
		if cfgs[i] == nil || (cfgs[i].MAC == "" && cfgs[i].IfName == "") {
			continue
		}
		var users []string
		for _, dv := range devs {
			if dv.cfgIndex == i {
				users = append(users, dv.result.Device)
			}
		}
		if len(users) > 1 {
			return nil, fmt.Errorf("config of the %s (allocation config[%d]) sets mac or ifName, which name one VF, and applies to %d devices (%s): give each request its own config (config.requests) with a count of 1",
				source(ac.Source), i, len(users), strings.Join(users, ", "))
		}
	}
	return devs, nil
}

// reservedPods are the UIDs of the pods the claim is reserved for: the
// sandboxes its VFs move into (nri.go).
func reservedPods(c *resourceapi.ResourceClaim) []string {
	var out []string
	for _, r := range c.Status.ReservedFor {
		if r.APIGroup == "" && r.Resource == "pods" && r.UID != "" {
			out = append(out, string(r.UID))
		}
	}
	return out
}

func source(s resourceapi.AllocationConfigSource) string {
	if s == resourceapi.AllocationConfigSourceClass {
		return "DeviceClass"
	}
	return "claim"
}

// forRequest: a config without requests applies to all; "req" applies to
// its subrequests "req/sub" too.
func forRequest(reqs []string, r string) bool {
	parent, _, _ := strings.Cut(r, "/")
	return len(reqs) == 0 || slices.Contains(reqs, r) || slices.Contains(reqs, parent)
}

func findDevice(t *deviceplugin.Tree, name string) (*deviceplugin.PoolDevices, *deviceplugin.Device) {
	for _, res := range slices.Sorted(maps.Keys(t.Pools)) {
		pd := t.Pools[res]
		if !pd.Pool.DRA {
			continue
		}
		for i := range pd.Devices {
			if DeviceName(pd.Devices[i].PCIAddress) == name {
				return pd, &pd.Devices[i]
			}
		}
	}
	return nil, nil
}

// checkFree refuses VFs another claim's checkpoint or a CNI attachment
// holds (their locks held).
func (d *Driver) checkFree(devs []*device) error {
	att := nodefiles.NewAttachments(d.opts.AttachmentsDir)
	for _, dv := range devs {
		pci := dv.dev.PCIAddress
		for _, other := range d.claims.holders() {
			for _, od := range other.Devices {
				if od.PCIAddress == pci {
					return fmt.Errorf("device %s: VF %s is held by claim %s/%s (uid %s), prepared on this node and not unprepared yet", dv.result.Device, pci, other.Namespace, other.Name, other.UID)
				}
			}
		}
		rec, ok, err := att.Get(pci)
		var unreadable *nodefiles.UnreadableError
		switch {
		case errors.As(err, &unreadable):
			return fmt.Errorf("device %s: VF %s has an unreadable CNI attachment record %s, so a pod may hold it: if none does, delete the file", dv.result.Device, pci, unreadable.Path)
		case err != nil:
			return fmt.Errorf("device %s: %w", dv.result.Device, err)
		case ok:
			return fmt.Errorf("device %s: VF %s is attached to pod %s through the device plugin and sluice-cni (as %s): it is in a device-plugin pool's use until that pod goes", dv.result.Device, pci, rec.Pod(), rec.IfName)
		}
	}
	return nil
}

// vfConfig is the PF-side part of a claim configuration.
func vfConfig(c *dradevice.ClaimConfig) host.VFConfig {
	var v host.VFConfig
	if c == nil {
		return v
	}
	if c.VLAN != nil {
		vlan := *c.VLAN
		v.VLAN, v.VLANProto = &vlan, host.VLANProto8021Q
		if c.VLANQoS != nil {
			v.QoS = *c.VLANQoS
		}
	}
	if c.MAC != "" {
		mac := c.MAC
		v.MAC = &mac
	}
	onOff := func(s string) *bool {
		if s == "" {
			return nil
		}
		b := s == "on"
		return &b
	}
	v.Trust, v.SpoofChk = onOff(c.Trust), onOff(c.SpoofChk)
	return v
}

func (d *Driver) cdiKind() string { return d.opts.DriverName + "/" + CDIClass }

func cdiName(uid types.UID, device string) string { return string(uid) + "-" + device }

func (d *Driver) cdiID(uid types.UID, device string) string {
	return d.cdiKind() + "=" + cdiName(uid, device)
}

// cdiDevices are the claim's CDI devices: each VF's device nodes (its
// RDMA char devices, the vfio group of a vfio-pci VF), and the variables
// naming the VFs of its request.
func (d *Driver) cdiDevices(uid types.UID, devs []*device) []cdispec.Device {
	addrs, rdma := map[string][]string{}, map[string][]string{}
	for _, dv := range devs {
		r := dv.result.Request
		addrs[r] = append(addrs[r], dv.dev.PCIAddress)
		if dv.dev.RDMA != nil && dv.pool.Pool.RDMA {
			rdma[r] = append(rdma[r], dv.dev.RDMA.Name)
		}
	}
	var out []cdispec.Device
	for _, dv := range devs {
		r := dv.result.Request
		env := []string{EnvPrefix + envName(r) + "=" + strings.Join(addrs[r], ",")}
		if len(rdma[r]) > 0 {
			env = append(env, EnvPrefix+envName(r)+"_RDMA="+strings.Join(rdma[r], ","))
		}
		nodes := dv.pool.DeviceNodes(dv.dev)
		for i := range nodes {
			nodes[i].HostPath = d.opts.Node.DevPath(nodes[i].HostPath)
		}
		out = append(out, nodefiles.NewCDIDevice(cdiName(uid, dv.result.Device), nodes, env))
	}
	return out
}

func envName(request string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, request)
}

// result is what the kubelet gets for a prepared claim.
func result(cl nodefiles.DRAClaim) []kubeletplugin.Device {
	out := make([]kubeletplugin.Device, 0, len(cl.Devices))
	for _, cd := range cl.Devices {
		out = append(out, kubeletplugin.Device{Requests: []string{cd.Request}, PoolName: cd.Pool, DeviceName: cd.Device, CDIDeviceIDs: cd.CDIDeviceIDs})
	}
	return out
}

func (d *Driver) unprepare(uid types.UID) error {
	cl, ok := d.claims.prepared[uid]
	if !ok {
		cl, ok = d.claims.unfinished[uid]
	}
	if !ok {
		// Not in memory: unknown, or a checkpoint that could not be read
		// at start, which no one can restore from.
		got, found, err := d.claims.store.Get(string(uid))
		var unreadable *nodefiles.UnreadableError
		switch {
		case errors.As(err, &unreadable):
			d.log.Error(err, "removing the unreadable checkpoint of an unprepared claim: its VFs keep the settings the claim gave them", "uid", uid)
			if err := d.claims.store.Delete(string(uid)); err != nil {
				return err
			}
			return d.removeHoldsOf(string(uid))
		case err != nil:
			return err
		case !found:
			return nil
		}
		cl = got
	}
	// A VF still in a pod (its sandbox's stop was not seen: the agent
	// was down, the runtime's NRI off) comes back first.
	if _, ok := d.claims.prepared[uid]; ok {
		if err := d.giveBackAll(context.Background(), uid, nil); err != nil {
			return err
		}
		cl = d.claims.prepared[uid]
	}
	if err := d.release(cl, cl.Devices, true); err != nil {
		return err
	}
	delete(d.claims.prepared, uid)
	delete(d.claims.unfinished, uid)
	d.log.Info("unprepared claim", "claim", cl.Namespace+"/"+cl.Name, "uid", uid)
	return nil
}

// release restores devs (the claim's VFs that Prepare may have changed)
// to their original settings, then removes the claim's CDI spec, its
// checkpoint, which stays when a VF cannot be restored (the kubelet
// retries Unprepare), and last its VFs' holds. A VF that is gone from the
// node has nothing to restore. lock takes each VF's lock; the caller holds
// them otherwise.
func (d *Driver) release(cl nodefiles.DRAClaim, devs []nodefiles.DRAClaimDevice, lock bool) error {
	var errs []error
	for _, cd := range devs {
		if err := d.restore(cd, lock); err != nil {
			errs = append(errs, fmt.Errorf("device %s: restore VF %s: %w", cd.Device, cd.PCIAddress, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := nodefiles.RemoveDRAClaimCDISpec(cl.CDISpec); err != nil {
		return err
	}
	if err := d.claims.store.Delete(cl.UID); err != nil {
		return err
	}
	return d.removeHolds(cl)
}

func (d *Driver) restore(cd nodefiles.DRAClaimDevice, lock bool) error {
	if lock {
		l, err := nodefiles.LockVF(d.opts.LockDir, cd.PCIAddress, d.opts.LockTimeout)
		if err != nil {
			return err
		}
		defer l.Unlock()
	}
	vf, err := d.opts.Node.VF(cd.PCIAddress)
	if errors.Is(err, host.ErrNotFound) {
		d.log.Info("VF is gone: nothing to restore", "pci", cd.PCIAddress)
		return nil
	}
	if err != nil {
		return err
	}
	if vf.PFName == "" {
		return fmt.Errorf("its PF %s has no netdev in the host namespace", vf.PFAddress)
	}
	return host.RestoreVF(d.opts.Node, vf.PFName, vf.Index, cd.Original)
}
