package dra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-net/sluice/api/dradevice"
	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// The NRI plugin: the container runtime (containerd 2.x with NRI enabled)
// tells it when a pod sandbox is created and stopped. At sandbox creation
// it moves the netdev of each VF of the pod's prepared claims into the
// sandbox's network namespace, under the config's ifName (else the VF's
// own name), with its MTU, up; in exclusive RDMA mode the VF's RDMA device
// goes along, and the config's IPAM plugin gives it addresses. Each step
// is recorded in the claim's checkpoint (DRAClaimDevice.Attachment) before
// it is taken. At sandbox stop (or removal, or when the runtime's state
// shows the sandbox gone, or at Unprepare) the VF comes back to the host
// namespace as it was.

// DefaultNRISocket is the runtime's NRI socket.
const DefaultNRISocket = api.DefaultSocketPath

// NRIPluginName and NRIPluginIndex register the plugin with the runtime
// (plugins are called in index order).
const (
	NRIPluginName  = "sluice-dra"
	NRIPluginIndex = "50"
)

// nriPlugin is what the NRI stub calls; its methods choose the events.
type nriPlugin struct{ d *Driver }

// RunPodSandbox moves the pod's VFs in; an error fails the sandbox.
func (p nriPlugin) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return p.d.RunPodSandbox(ctx, pod)
}

// CreateContainer moves in what RunPodSandbox did not: a sandbox created
// while the driver was not connected to the runtime (the runtime runs
// without plugins that are gone). A container is then created only with
// its pod's VFs in place; an error fails its creation, which the kubelet
// retries.
func (p nriPlugin) CreateContainer(ctx context.Context, pod *api.PodSandbox, _ *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	return nil, nil, p.d.RunPodSandbox(ctx, pod)
}

// StopPodSandbox gives the pod's VFs back.
func (p nriPlugin) StopPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return p.d.StopPodSandbox(ctx, pod)
}

// RemovePodSandbox gives back what StopPodSandbox could not.
func (p nriPlugin) RemovePodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return p.d.StopPodSandbox(ctx, pod)
}

// Synchronize reconciles the attachments with the runtime's sandboxes.
func (p nriPlugin) Synchronize(ctx context.Context, pods []*api.PodSandbox, _ []*api.Container) ([]*api.ContainerUpdate, error) {
	p.d.Synchronize(ctx, pods)
	return nil, nil
}

// nriConn is the driver's connection to the runtime: connected again
// whenever the runtime closes it (a runtime restart, a request that ran
// past the runtime's timeout) or could not be reached.
type nriConn struct {
	mu   sync.Mutex
	stub stub.Stub
	// enabled: StartNRI ran; connected: the runtime took the plugin in;
	// lastErr: why not, when not.
	enabled, connected, stopped bool
	lastErr                     error
	sock                        string
	closed                      chan struct{}
}

func newNRIConn() *nriConn { return &nriConn{closed: make(chan struct{}, 1)} }

func (c *nriConn) signal() {
	select {
	case c.closed <- struct{}{}:
	default:
	}
}

// StartNRI connects the driver to the runtime's NRI socket and keeps it
// connected until ctx ends or StopNRI. A runtime that cannot be reached
// (no socket: NRI off, or not mounted) does not stop the agent: the driver
// logs why and what to do, tries again every 30 s at most, and until it is
// connected fails the Prepare of claims whose VFs have a netdev, with the
// same reason, so that no pod starts without its interface.
func (d *Driver) StartNRI(ctx context.Context) error {
	sock := d.opts.NRISocket
	if sock == "" {
		sock = DefaultNRISocket
	}
	c := d.nri
	c.mu.Lock()
	c.enabled, c.sock = true, sock
	c.mu.Unlock()
	d.statusWorker(ctx)
	if err := d.connectNRI(ctx, sock); err != nil {
		d.log.Error(err, "cannot connect to the runtime's NRI socket: retrying; until then, claims whose VFs have a netdev fail Prepare")
		c.signal()
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				d.StopNRI()
				return
			case <-c.closed:
			}
			for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
				c.mu.Lock()
				stopped := c.stopped
				c.mu.Unlock()
				if stopped {
					return
				}
				err := d.connectNRI(ctx, sock)
				if err == nil {
					d.log.Info("connected to the runtime's NRI socket", "socket", sock)
					break
				}
				d.log.Error(err, "cannot connect to the runtime's NRI socket; retrying", "in", delay)
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
			}
		}
	}()
	return nil
}

func (d *Driver) connectNRI(ctx context.Context, sock string) (err error) {
	c := d.nri
	defer func() {
		c.mu.Lock()
		c.connected, c.lastErr = err == nil, err
		c.mu.Unlock()
	}()
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("NRI socket %s: %w: the runtime must serve NRI (containerd 2.x does unless [plugins.\"io.containerd.nri.v1.nri\"] disable = true; CRI-O is not supported), and the agent needs the socket's directory mounted (the operator's --node-dra mounts /var/run/nri); or point the agent's --dra-nri-socket at it", sock, err)
	}
	opts := []stub.Option{stub.WithPluginName(NRIPluginName), stub.WithPluginIdx(NRIPluginIndex),
		stub.WithSocketPath(sock), stub.WithOnClose(func() {
			c.mu.Lock()
			c.connected, c.lastErr = false, fmt.Errorf("the runtime closed the NRI connection on %s: connecting again", sock)
			c.mu.Unlock()
			d.log.Info("NRI connection closed by the runtime: connecting again", "socket", sock)
			c.signal()
		})}
	if d.nriDial != nil {
		opts = append(opts, stub.WithDialer(d.nriDial))
	}
	s, err := stub.New(nriPlugin{d}, opts...)
	if err != nil {
		return fmt.Errorf("NRI plugin: %w", err)
	}
	if err := s.Start(ctx); err != nil {
		return fmt.Errorf("connect to the runtime's NRI socket %s: %w (is NRI enabled in containerd 2.x?)", sock, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		s.Stop()
		return errors.New("NRI plugin stopped")
	}
	c.stub = s
	return nil
}

// StopNRI disconnects from the runtime.
func (d *Driver) StopNRI() {
	c := d.nri
	c.mu.Lock()
	c.stopped = true
	s := c.stub
	c.mu.Unlock()
	if s != nil {
		s.Stop()
	}
}

// nriReady refuses to prepare a claim whose VFs have a netdev while the
// NRI plugin runs and is not connected: nothing would move the netdev
// into the pod.
func (d *Driver) nriReady(devs []*device) error {
	c := d.nri
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enabled || c.connected {
		return nil
	}
	for _, dv := range devs {
		if dv.dev.Driver != host.VfioPci {
			return fmt.Errorf("device %s: its netdev could not be moved into the pod: the driver is not connected to the runtime's NRI socket (%v)", dv.result.Device, c.lastErr)
		}
	}
	return nil
}

// podNetns is the path of the sandbox's network namespace; "" for a pod
// on the host's network (or whose namespace the runtime dropped as gone).
func podNetns(pod *api.PodSandbox) string {
	for _, ns := range pod.GetLinux().GetNamespaces() {
		if ns.GetType() == "network" {
			return ns.GetPath()
		}
	}
	return ""
}

func podName(pod *api.PodSandbox) string { return pod.GetNamespace() + "/" + pod.GetName() }

// RunPodSandbox moves the VFs of the pod's prepared claims into its
// network namespace. All or nothing: on a failure every VF this event
// moved is given back, and the error names the claim, the device and the
// fix.
func (d *Driver) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	d.prepMu.Lock()
	defer d.prepMu.Unlock()
	return d.attachPod(ctx, pod)
}

// attachPod is RunPodSandbox with prepMu held.
func (d *Driver) attachPod(ctx context.Context, pod *api.PodSandbox) (err error) {
	uids := d.claimsOfPod(pod.GetUid())
	if len(uids) == 0 {
		return nil
	}
	netns := podNetns(pod)
	type ref struct {
		uid types.UID
		i   int
	}
	var done []ref
	defer func() {
		if err == nil {
			return
		}
		for _, r := range slices.Backward(done) {
			if gerr := d.giveBack(ctx, r.uid, r.i); gerr != nil {
				d.log.Error(gerr, "undo: give a VF back after a failed sandbox creation", "pod", podName(pod))
				err = fmt.Errorf("%w; undo: %v", err, gerr)
			}
		}
	}()
	for _, uid := range uids {
		cl := d.claims.prepared[uid]
		for i, cd := range cl.Devices {
			if a := cd.Attachment; a != nil {
				switch {
				case a.SandboxID == pod.GetId() && a.State == nodefiles.DRAAttachmentAttached:
					continue // a repeated event
				case a.PodUID != pod.GetUid():
					return fmt.Errorf("claim %s/%s, device %s: VF %s is in the network namespace of pod %s/%s: one VF's netdev can be in one pod only; give each pod its own claim (a ResourceClaimTemplate)",
						cl.Namespace, cl.Name, cd.Device, cd.PCIAddress, a.PodNamespace, a.PodName)
				}
				// An earlier sandbox of the pod that was never stopped, or
				// a move cut short: give it back first.
				if err := d.giveBack(ctx, uid, i); err != nil {
					return fmt.Errorf("claim %s/%s, device %s: give VF %s back from the pod's earlier sandbox %s first: %w", cl.Namespace, cl.Name, cd.Device, cd.PCIAddress, a.SandboxID, err)
				}
			}
			moved, err := d.attach(ctx, uid, i, pod, netns)
			if err != nil {
				return fmt.Errorf("claim %s/%s, device %s: %w", cl.Namespace, cl.Name, cd.Device, err)
			}
			if moved {
				done = append(done, ref{uid, i})
			}
		}
	}
	for _, uid := range uids {
		d.queueStatus(d.claims.prepared[uid])
	}
	return nil
}

// claimsOfPod are the prepared claims reserved for the pod, by UID.
func (d *Driver) claimsOfPod(podUID string) []types.UID {
	var out []types.UID
	for uid, cl := range d.claims.prepared {
		if podUID != "" && slices.Contains(cl.PodUIDs, podUID) {
			out = append(out, uid)
		}
	}
	slices.Sort(out)
	return out
}

// setAttachment writes device i's attachment record (nil: none) to the
// claim's checkpoint, then keeps it in memory.
func (d *Driver) setAttachment(uid types.UID, i int, a *nodefiles.DRAAttachment) error {
	cl, ok := d.claims.prepared[uid]
	if !ok {
		return fmt.Errorf("claim %s is not prepared", uid)
	}
	cl.Devices = slices.Clone(cl.Devices)
	if a != nil {
		c := *a
		c.IPs = slices.Clone(a.IPs)
		a = &c
	}
	cl.Devices[i].Attachment = a
	if err := d.claims.store.Put(cl); err != nil {
		return err
	}
	d.claims.prepared[uid] = cl
	return nil
}

// attach moves device i of the claim into the sandbox. moved is false
// when there was nothing to move: a VF without netdev (vfio-pci), a pod on
// the host's network.
func (d *Driver) attach(ctx context.Context, uid types.UID, i int, pod *api.PodSandbox, netns string) (moved bool, err error) {
	cd := d.claims.prepared[uid].Devices[i]
	var cfg dradevice.ClaimConfig
	if len(cd.Config) > 0 {
		c, err := dradevice.DecodeClaimConfig(cd.Config)
		if err != nil {
			return false, fmt.Errorf("the checkpointed config: %w", err)
		}
		cfg = *c
	}
	lock, err := nodefiles.LockVF(d.opts.LockDir, cd.PCIAddress, d.opts.LockTimeout)
	if err != nil {
		return false, err
	}
	defer lock.Unlock()
	vf, err := d.opts.Node.VF(cd.PCIAddress)
	if err != nil {
		return false, fmt.Errorf("look up VF %s: %w", cd.PCIAddress, err)
	}
	if vf.Driver == host.VfioPci {
		return false, nil
	}
	if netns == "" {
		d.log.Info("the pod uses the host's network namespace: its VF's netdev stays there", "pod", podName(pod), "pci", cd.PCIAddress, "netdev", vf.Netdev)
		return false, nil
	}
	if vf.Netdev == "" {
		return false, fmt.Errorf("VF %s (driver %q) has no netdev in the host namespace: its driver is not bound, or something else moved it; bind a netdev driver or delete the pod so the claim is allocated another VF", cd.PCIAddress, vf.Driver)
	}
	a := &nodefiles.DRAAttachment{
		State: nodefiles.DRAAttachmentAttaching, PodUID: pod.GetUid(), PodNamespace: pod.GetNamespace(), PodName: pod.GetName(),
		SandboxID: pod.GetId(), Netns: netns, IfName: orName(cfg.IfName, vf.Netdev),
		Original: host.NetdevState{Name: vf.Netdev, MAC: vf.MAC, MTU: vf.MTU, Up: vf.Up}, MAC: vf.MAC, Created: time.Now().UTC(),
	}
	if cd.RDMADevice != "" {
		mode, err := d.opts.Node.RDMANetnsMode()
		if err != nil {
			return false, fmt.Errorf("RDMA device %s: %w", cd.RDMADevice, err)
		}
		if mode == "exclusive" {
			a.RDMADevice = cd.RDMADevice
		}
	}
	if len(cfg.IPAM) > 0 {
		a.IPAMType, a.IPAMNetwork = ipamType(cfg.IPAM), ipamNetwork(cfg.IPAM)
	}

	// The record first: a crash from here on leaves what gives the VF
	// back. An undo that fails keeps it, for the sandbox's stop (which
	// the runtime sends after a failed creation), the next sync or
	// Unprepare to finish.
	if err := d.setAttachment(uid, i, a); err != nil {
		return false, err
	}
	undoFailed := false
	defer func() {
		if err == nil {
			return
		}
		if undoFailed {
			err = fmt.Errorf("%w; undoing it failed too (logged): VF %s stays recorded as in the pod until the sandbox's stop or the claim's Unprepare gives it back", err, cd.PCIAddress)
			return
		}
		if cerr := d.setAttachment(uid, i, nil); cerr != nil {
			d.log.Error(cerr, "undo: clear the attachment record", "pci", cd.PCIAddress)
		}
	}()
	hostNS, err := d.hostNetns()
	if err != nil {
		return false, err
	}
	defer hostNS.Close()
	podNS, err := host.OpenNetns(netns)
	if errors.Is(err, host.ErrNotFound) {
		return false, fmt.Errorf("the pod's network namespace: %w: the agent must see the runtime's network namespaces at the same path (the operator mounts /var/run/netns; with containerd's netns_mounts_under_state_dir, mount that directory too)", err)
	}
	if err != nil {
		return false, fmt.Errorf("the pod's network namespace: %w", err)
	}
	defer podNS.Close()

	set := host.NetdevSettings{Name: a.IfName, Up: true}
	if cfg.MTU != nil {
		set.MTU = *cfg.MTU
	}
	if err := host.AttachNetdev(hostNS, vf.Netdev, podNS, set); err != nil {
		// AttachNetdev undoes itself; if that failed too, the netdev is
		// not back on the host, and the record stays.
		if back, lerr := d.opts.Node.VF(cd.PCIAddress); lerr == nil && back.Netdev == "" {
			undoFailed = true
		}
		if errors.Is(err, host.ErrNameInUse) {
			return false, fmt.Errorf("the pod already has an interface called %s (%w): set another ifName in the claim's VFClaimConfig", a.IfName, err)
		}
		return false, fmt.Errorf("move VF %s's netdev %s into the pod: %w", cd.PCIAddress, vf.Netdev, err)
	}
	defer func() {
		if err != nil {
			if berr := d.netdevBack(hostNS, podNS, cd.PCIAddress, a); berr != nil {
				d.log.Error(berr, "undo: move the netdev back", "pci", cd.PCIAddress)
				undoFailed = true
			}
		}
	}()
	if a.RDMADevice != "" {
		if err := d.opts.Node.MoveRDMADevice(hostNS, a.RDMADevice, podNS); err != nil {
			return false, fmt.Errorf("move RDMA device %s into the pod: %w", a.RDMADevice, err)
		}
		defer func() {
			if err != nil {
				if merr := d.opts.Node.MoveRDMADevice(podNS, a.RDMADevice, hostNS); merr != nil {
					d.log.Error(merr, "undo: move the RDMA device back", "rdma", a.RDMADevice)
					undoFailed = true
				}
			}
		}()
	}
	if a.IPAMType != "" {
		ips, err := d.ipamAdd(ctx, podNS, cfg.IPAM, a)
		if err != nil {
			return false, err
		}
		a.IPs = ips
		defer func() {
			if err != nil {
				if derr := d.ipamDel(ctx, cfg.IPAM, a); derr != nil {
					d.log.Error(derr, "undo: release the IPAM address", "pci", cd.PCIAddress)
					undoFailed = true
				}
			}
		}()
	}
	a.State = nodefiles.DRAAttachmentAttached
	if err := d.setAttachment(uid, i, a); err != nil {
		return false, err
	}
	d.log.Info("moved VF into pod", "pod", podName(pod), "sandbox", pod.GetId(), "pci", cd.PCIAddress, "ifName", a.IfName, "ips", a.IPs)
	return true, nil
}

func orName(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (d *Driver) hostNetns() (*host.Netns, error) {
	if d.opts.HostNetns != "" {
		return host.OpenNetns(d.opts.HostNetns)
	}
	return host.CurrentNetns()
}

// netdevBack moves the attachment's netdev from the pod's namespace (nil:
// gone) back to the host and restores its name, MAC, MTU and state. A
// netdev of the pod's called IfName is the VF's only when its MAC is the
// VF's; otherwise, or when the namespace is gone (the kernel has put the
// VF's netdev back in the initial namespace, under its pod name or devN),
// the VF's netdev is found in the host namespace by PCI address.
func (d *Driver) netdevBack(hostNS, podNS *host.Netns, pci string, a *nodefiles.DRAAttachment) error {
	cur := ""
	if podNS != nil {
		if st, err := podNS.Netdev(a.IfName); err == nil && (a.MAC == "" || st.MAC == a.MAC) {
			name, err := host.MoveNetdev(podNS, a.IfName, hostNS, a.Original.Name)
			if errors.Is(err, host.ErrNameInUse) {
				d.log.Info("the VF's host name is taken: leaving it under a temporary name", "pci", pci, "name", a.Original.Name)
				name, err = host.MoveNetdev(podNS, a.IfName, hostNS, "")
			}
			if err != nil {
				return fmt.Errorf("move %s back from the pod's network namespace %s: %w", a.IfName, a.Netns, err)
			}
			cur = name
		}
	}
	if cur == "" {
		vf, err := d.opts.Node.VF(pci)
		switch {
		case errors.Is(err, host.ErrNotFound):
			d.log.Info("VF is gone: no netdev to give back", "pci", pci)
			return nil
		case err != nil:
			return err
		case vf.Netdev == "":
			if podNS != nil {
				return fmt.Errorf("VF %s's netdev is neither %s in the pod's network namespace %s nor in the host namespace", pci, a.IfName, a.Netns)
			}
			d.log.Info("VF has no netdev in the host namespace: nothing to restore", "pci", pci)
			return nil
		}
		cur = vf.Netdev
	}
	return hostNS.RestoreNetdev(cur, a.Original)
}

// giveBack undoes device i's attachment, whatever part of it was done:
// the RDMA device and the netdev back to the host namespace, the netdev's
// name, MAC, MTU and state back, the IPAM address released; then the
// record is cleared. Each step tolerates having been done already; on a
// failure the record stays, for the next try.
func (d *Driver) giveBack(ctx context.Context, uid types.UID, i int) error {
	cl := d.claims.prepared[uid]
	cd := cl.Devices[i]
	a := cd.Attachment
	if a == nil {
		return nil
	}
	lock, err := nodefiles.LockVF(d.opts.LockDir, cd.PCIAddress, d.opts.LockTimeout)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	hostNS, err := d.hostNetns()
	if err != nil {
		return err
	}
	defer hostNS.Close()
	podNS, err := host.OpenNetns(a.Netns)
	if err != nil {
		if !errors.Is(err, host.ErrNotFound) {
			return fmt.Errorf("the pod's network namespace: %w", err)
		}
		podNS = nil
	} else {
		defer podNS.Close()
	}
	var errs []error
	// An RDMA device in a namespace being destroyed goes back to the
	// initial namespace by itself.
	if a.RDMADevice != "" && podNS != nil {
		if err := d.opts.Node.MoveRDMADevice(podNS, a.RDMADevice, hostNS); err != nil && !errors.Is(err, host.ErrNotFound) {
			errs = append(errs, fmt.Errorf("move RDMA device %s back: %w", a.RDMADevice, err))
		}
	}
	if err := d.netdevBack(hostNS, podNS, cd.PCIAddress, a); err != nil {
		errs = append(errs, err)
	}
	if a.IPAMType != "" {
		var cfg dradevice.ClaimConfig
		if c, err := dradevice.DecodeClaimConfig(cd.Config); err == nil {
			cfg = *c
		}
		if err := d.ipamDel(ctx, cfg.IPAM, a); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("give VF %s back from pod %s/%s: %w", cd.PCIAddress, a.PodNamespace, a.PodName, err)
	}
	if err := d.setAttachment(uid, i, nil); err != nil {
		return err
	}
	d.log.Info("gave VF back from pod", "pod", a.PodNamespace+"/"+a.PodName, "sandbox", a.SandboxID, "pci", cd.PCIAddress, "netdev", a.Original.Name)
	return nil
}

// giveBackAll gives back every attached device of the claim.
func (d *Driver) giveBackAll(ctx context.Context, uid types.UID, match func(*nodefiles.DRAAttachment) bool) error {
	cl, ok := d.claims.prepared[uid]
	if !ok {
		return nil
	}
	var errs []error
	touched := false
	for i, cd := range cl.Devices {
		if cd.Attachment == nil || (match != nil && !match(cd.Attachment)) {
			continue
		}
		touched = true
		if err := d.giveBack(ctx, uid, i); err != nil {
			errs = append(errs, fmt.Errorf("claim %s/%s, device %s: %w", cl.Namespace, cl.Name, cd.Device, err))
		}
	}
	if touched {
		d.queueStatus(d.claims.prepared[uid])
	}
	return errors.Join(errs...)
}

// StopPodSandbox gives back the VFs moved into the sandbox. It is
// idempotent: RemovePodSandbox calls it again.
func (d *Driver) StopPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	d.prepMu.Lock()
	defer d.prepMu.Unlock()
	var errs []error
	for _, uid := range d.sortedPrepared() {
		errs = append(errs, d.giveBackAll(ctx, uid, func(a *nodefiles.DRAAttachment) bool {
			return a.SandboxID == pod.GetId() || (a.PodUID == pod.GetUid() && pod.GetId() == "")
		}))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sandbox %s of pod %s: %w: the VF stays recorded and is given back at the sandbox's removal, the agent's next sync with the runtime, or the claim's Unprepare", pod.GetId(), podName(pod), err)
	}
	return nil
}

func (d *Driver) sortedPrepared() []types.UID {
	var out []types.UID
	for uid := range d.claims.prepared {
		out = append(out, uid)
	}
	slices.Sort(out)
	return out
}

// Synchronize reconciles the attachments with the sandboxes the runtime
// runs (at every connection): a VF attached to a sandbox that is gone, or
// whose move was cut short, is given back; a running sandbox with a
// prepared claim and no attachment is logged (it runs without its VF:
// delete the pod to get it).
func (d *Driver) Synchronize(ctx context.Context, pods []*api.PodSandbox) {
	d.prepMu.Lock()
	defer d.prepMu.Unlock()
	running := map[string]*api.PodSandbox{}
	for _, p := range pods {
		running[p.GetId()] = p
	}
	for _, uid := range d.sortedPrepared() {
		err := d.giveBackAll(ctx, uid, func(a *nodefiles.DRAAttachment) bool {
			if running[a.SandboxID] == nil {
				return true
			}
			if a.State != nodefiles.DRAAttachmentAttached {
				d.log.Error(nil, "the move of a VF into a running pod was cut short: giving it back; the pod runs without it until it is deleted", "pod", a.PodNamespace+"/"+a.PodName, "sandbox", a.SandboxID)
				return true
			}
			return false
		})
		if err != nil {
			d.log.Error(err, "cannot give a VF back at the sync with the runtime; retried at the next sync or the claim's Unprepare")
		}
	}
	// A sandbox created while the driver was not connected: its VFs go in
	// now, into the running pod (containers created from here on find
	// them in place, see CreateContainer).
	for _, p := range pods {
		missing := false
		for _, uid := range d.claimsOfPod(p.GetUid()) {
			for _, cd := range d.claims.prepared[uid].Devices {
				missing = missing || (cd.Attachment == nil && podNetns(p) != "")
			}
		}
		if !missing {
			continue
		}
		if err := d.attachPod(ctx, p); err != nil {
			d.log.Error(err, "cannot move the VFs of a pod whose sandbox was created while the driver was not connected to the runtime; retried when its next container is created", "pod", podName(p))
			continue
		}
		d.log.Info("moved the VFs of a running pod whose sandbox was created while the driver was not connected to the runtime", "pod", podName(p))
	}
}

// podArgs are the CNI_ARGS the IPAM plugin gets, as from a runtime.
func podArgs(a *nodefiles.DRAAttachment) string {
	return strings.Join([]string{"IgnoreUnknown=1", "K8S_POD_NAMESPACE=" + a.PodNamespace, "K8S_POD_NAME=" + a.PodName,
		"K8S_POD_INFRA_CONTAINER_ID=" + a.SandboxID, "K8S_POD_UID=" + a.PodUID}, ";")
}
