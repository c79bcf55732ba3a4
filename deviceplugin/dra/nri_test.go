package dra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/go-logr/logr/testr"
	"github.com/vishvananda/netlink"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// The NRI tests run the driver against an NRI runtime hosted in the test
// (package adaptation, the code containerd runs), over a socket in a temp
// dir: the sandbox events reach the driver as they would from containerd.
// The node is the fake one of prepare_test.go for the PF side; the VFs'
// netdevs are veth ends in a network namespace standing for the host's,
// found by PCI address through their alias, and the pods are network
// namespaces of their own. They need root.

// hostLocal is the host-local IPAM plugin, built once per test binary.
var hostLocal = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "h17-dra-cni-")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "github.com/containernetworking/plugins/plugins/ipam/host-local").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build host-local: %w\n%s", err, out)
	}
	return dir, nil
})

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test creates network namespaces and links")
	}
}

func newNetns(t *testing.T) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		n.Close()
		_ = testutils.UnmountNS(n)
	})
	return n
}

// netnsNode is the fake node whose VF netdevs are the links of hostNS
// aliased with their PCI address; its RDMA mode is mode, and it records
// the RDMA devices it moves.
type netnsNode struct {
	*host.Host
	hostNS ns.NetNS
	mu     sync.Mutex
	mode   string
	moves  []string
}

func (n *netnsNode) VF(pci string) (*host.VF, error) {
	vf, err := n.Host.VF(pci)
	if err != nil {
		return nil, err
	}
	vf.Netdev, vf.MAC, vf.MTU, vf.Up = "", "", 0, false
	err = n.hostNS.Do(func(ns.NetNS) error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if a := l.Attrs(); a.Alias == pci {
				vf.Netdev, vf.MAC, vf.MTU, vf.Up = a.Name, a.HardwareAddr.String(), a.MTU, a.Flags&net.FlagUp != 0
			}
		}
		return nil
	})
	return vf, err
}

func (n *netnsNode) RDMANetnsMode() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mode, nil
}

func (n *netnsNode) MoveRDMADevice(from *host.Netns, name string, to *host.Netns) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.moves = append(n.moves, name+" to "+to.Path())
	return nil
}

// nriEnv is a prepare env whose driver is connected to an in-test NRI
// runtime, with one dummy netdev per VF of ens1f0 in hostNS.
type nriEnv struct {
	*env
	node    *netnsNode
	hostNS  ns.NetNS
	runtime *adaptation.Adaptation
	// pods are what the first runtime reports at a plugin's sync.
	mu   sync.Mutex
	pods []*adaptation.PodSandbox
	// conns are the driver's connections to the runtimes.
	conns sync.Map
}

func vfMAC(i int) string { return fmt.Sprintf("02:00:00:00:01:%02x", i) }

// newNRIEnvWithoutRuntime is the env before a runtime serves its socket
// and the driver connects.
func newNRIEnvWithoutRuntime(t *testing.T) *nriEnv {
	t.Helper()
	requireRoot(t)
	cniDir, err := hostLocal()
	if err != nil {
		t.Fatal(err)
	}
	e := &nriEnv{env: newPrepareEnv(t, config), hostNS: newNetns(t)}
	e.node = &netnsNode{Host: e.h, hostNS: e.hostNS, mode: "shared"}
	for i := range 2 {
		pci := e.n.VFAddress(cx0, i)
		if err := e.hostNS.Do(func(ns.NetNS) error {
			mac, _ := net.ParseMAC(vfMAC(i))
			la := netlink.NewLinkAttrs()
			la.Name, la.MTU, la.HardwareAddr = e.n.Netdev(pci), 1500, mac
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: fmt.Sprintf("peer%d", i)}); err != nil {
				return fmt.Errorf("add veth %s: %w", la.Name, err)
			}
			l, err := netlink.LinkByName(la.Name)
			if err != nil {
				return err
			}
			return netlink.LinkSetAlias(l, pci)
		}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	e.opts.Node, e.opts.HostNetns, e.opts.CNIPath = e.node, e.hostNS.Path(), cniDir
	e.opts.NRISocket = filepath.Join(dir, "nri.sock")
	e.opts.Log = testr.New(t)
	e.restart()
	e.d.nriDial = func(path string) (net.Conn, error) {
		c, err := net.Dial("unix", path)
		if err == nil {
			e.conns.Store(c, true)
		}
		return c, err
	}

	adaptation.SetPluginRequestTimeout(time.Minute)
	return e
}

func newNRIEnv(t *testing.T) *nriEnv {
	t.Helper()
	e := newNRIEnvWithoutRuntime(t)
	e.connect(func() []*adaptation.PodSandbox {
		e.mu.Lock()
		defer e.mu.Unlock()
		return slices.Clone(e.pods)
	})
	return e
}

// connect starts a runtime on the env's NRI socket whose sandboxes are
// pods(), connects the driver to it, and waits until the runtime synced
// the driver and took it in.
func (e *nriEnv) connect(pods func() []*adaptation.PodSandbox) {
	e.t.Helper()
	e.startRuntime(pods, true)
}

func (e *nriEnv) startRuntime(pods func() []*adaptation.PodSandbox, connect bool) {
	t := e.t
	t.Helper()
	synced := make(chan struct{}, 2)
	syncFn := func(ctx context.Context, cb adaptation.SyncCB) error {
		_, err := cb(ctx, pods(), nil)
		synced <- struct{}{}
		return err
	}
	updateFn := func(context.Context, []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error) {
		return nil, nil
	}
	r, err := adaptation.New("h17-test-runtime", "0.0.1", syncFn, updateFn, adaptation.WithSocketPath(e.opts.NRISocket),
		adaptation.WithPluginPath(t.TempDir()), adaptation.WithPluginConfigPath(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	<-synced // Start syncs the runtime's own (no) plugins
	e.runtime = r
	if connect {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		if err := e.d.StartNRI(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.d.StopNRI)
	}
	e.waitSync(synced)
}

// connectRuntime starts a runtime on the env's socket that the driver,
// already started, connects to by itself.
func (e *nriEnv) connectRuntime(pods func() []*adaptation.PodSandbox) {
	e.t.Helper()
	e.startRuntime(pods, false)
}

// waitSync waits until the runtime synced the plugin and took it in.
func (e *nriEnv) waitSync(synced chan struct{}) {
	e.t.Helper()
	select {
	case <-synced:
	case <-time.After(30 * time.Second):
		e.t.Fatal("the runtime did not sync the plugin")
	}
	// The runtime adds the plugin after the sync, under the lock that
	// BlockPluginSync waits for.
	e.runtime.BlockPluginSync().Unblock()
}

// vf is the PCI address and host netdev of VF i of ens1f0.
func (e *nriEnv) vf(i int) (string, string) {
	pci := e.n.VFAddress(cx0, i)
	return pci, e.n.Netdev(pci)
}

// pod is a sandbox in its own network namespace.
func (e *nriEnv) pod(uid, id string) (*adaptation.PodSandbox, ns.NetNS) {
	netns := newNetns(e.t)
	return &adaptation.PodSandbox{Id: id, Name: "pod-" + id, Namespace: "ml", Uid: uid,
		Linux: &adaptation.LinuxPodSandbox{Namespaces: []*adaptation.LinuxNamespace{{Type: "network", Path: netns.Path()}}}}, netns
}

func (e *nriEnv) run(pod *adaptation.PodSandbox) error {
	return e.runtime.RunPodSandbox(context.Background(), &adaptation.RunPodSandboxRequest{Pod: pod})
}

func (e *nriEnv) stop(pod *adaptation.PodSandbox) error {
	return e.runtime.StopPodSandbox(context.Background(), &adaptation.StopPodSandboxRequest{Pod: pod})
}

// reservedClaim is a claim of VF i for pod podUID with config params
// (JSON fields after the header; "" for none).
func (e *nriEnv) reservedClaim(uid string, i int, podUID, params string) *resourceapi.ResourceClaim {
	pci, _ := e.vf(i)
	var cfgs []resourceapi.DeviceAllocationConfiguration
	if params != "" {
		cfgs = append(cfgs, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, `+params+`}`))
	}
	c := claim(uid, []alloc{{"vf", DeviceName(pci)}}, cfgs...)
	c.Status.ReservedFor = []resourceapi.ResourceClaimConsumerReference{{Resource: "pods", Name: "pod", UID: types.UID(podUID)}}
	return c
}

type linkInfo struct {
	Name, MAC, Alias string
	MTU              int
	Up               bool
	Addrs            []string
}

func linksOf(t *testing.T, n ns.NetNS) map[string]linkInfo {
	t.Helper()
	out := map[string]linkInfo{}
	if err := n.Do(func(ns.NetNS) error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			a := l.Attrs()
			if a.Name == "lo" {
				continue
			}
			li := linkInfo{Name: a.Name, MAC: a.HardwareAddr.String(), Alias: a.Alias, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			for _, ad := range addrs {
				li.Addrs = append(li.Addrs, ad.IPNet.String())
			}
			out[a.Name] = li
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	pod1 = "9a1d0c3e-0001-4c5e-9e55-7d2f0c1a2b3c"
	pod2 = "9a1d0c3e-0002-4c5e-9e55-7d2f0c1a2b3c"
)

// TestNRIMovesVFIntoPodAndBack: a prepared claim reserved for the pod has
// its VF's netdev moved into the sandbox's namespace at RunPodSandbox,
// under ifName, with the config's MTU, up, with a host-local address; the
// checkpoint records it and the claim's status shows it. StopPodSandbox
// gives it back with its name, MTU, MAC and state, and releases the
// address (the next pod gets the same one); a second Stop and the
// sandbox's removal do nothing more.
func TestNRIMovesVFIntoPodAndBack(t *testing.T) {
	e := newNRIEnv(t)
	pci, netdev := e.vf(0)
	before := linksOf(t, e.hostNS)[netdev]
	leases := t.TempDir()
	c := e.reservedClaim(uid1, 0, pod1, `"ifName": "net1", "mtu": 1400, "ipam": {"type": "host-local", "subnet": "10.66.0.0/24", "dataDir": "`+leases+`"}`)
	if _, err := e.opts.KubeClient.ResourceV1().ResourceClaims("ml").Create(context.Background(), c, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := e.prepare(c); r.Err != nil {
		t.Fatal(r.Err)
	}
	if cp, _ := e.checkpoint(uid1); !slices.Equal(cp.PodUIDs, []string{pod1}) {
		t.Errorf("checkpoint pod UIDs = %v, want [%s]", cp.PodUIDs, pod1)
	}
	pod, podNS := e.pod(pod1, "sandbox-1")
	if err := e.run(pod); err != nil {
		t.Fatal(err)
	}
	got, ok := linksOf(t, podNS)["net1"]
	if !ok || got.Alias != pci || got.MTU != 1400 || !got.Up || got.MAC != vfMAC(0) || len(got.Addrs) != 1 || !strings.HasPrefix(got.Addrs[0], "10.66.0.") {
		t.Fatalf("pod links = %+v, want net1 (the VF) with MTU 1400, up, an address of 10.66.0.0/24", linksOf(t, podNS))
	}
	if _, ok := linksOf(t, e.hostNS)[netdev]; ok {
		t.Errorf("%s still in the host namespace", netdev)
	}
	cp, _ := e.checkpoint(uid1)
	a := cp.Devices[0].Attachment
	if a == nil || a.State != nodefiles.DRAAttachmentAttached || a.PodUID != pod1 || a.SandboxID != "sandbox-1" || a.Netns != podNS.Path() ||
		a.IfName != "net1" || a.Original.Name != netdev || a.Original.MTU != 1500 || a.MAC != vfMAC(0) || !slices.Equal(a.IPs, got.Addrs) || a.IPAMType != "host-local" {
		t.Errorf("attachment = %+v", a)
	}

	// The claim's status, written in the background.
	var st []resourceapi.AllocatedDeviceStatus
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		cl, err := e.opts.KubeClient.ResourceV1().ResourceClaims("ml").Get(context.Background(), c.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st = cl.Status.Devices; len(st) > 0 {
			break
		}
	}
	if len(st) != 1 || st[0].Driver != "sluice.dev" || st[0].Device != DeviceName(pci) || st[0].NetworkData == nil ||
		st[0].NetworkData.InterfaceName != "net1" || !slices.Equal(st[0].NetworkData.IPs, got.Addrs) || st[0].NetworkData.HardwareAddress != vfMAC(0) ||
		len(st[0].Conditions) != 1 || st[0].Conditions[0].Type != "Ready" || st[0].Conditions[0].Status != metav1.ConditionTrue {
		t.Errorf("claim status devices = %+v", st)
	}

	// Again (a repeated event): nothing changes.
	if err := e.run(pod); err != nil {
		t.Errorf("repeated RunPodSandbox: %v", err)
	}

	if err := e.stop(pod); err != nil {
		t.Fatal(err)
	}
	if l := linksOf(t, e.hostNS)[netdev]; fmt.Sprint(l) != fmt.Sprint(before) {
		t.Errorf("after Stop: host netdev = %+v, want %+v", l, before)
	}
	if l := linksOf(t, podNS); len(l) != 0 {
		t.Errorf("after Stop: pod still has %v", l)
	}
	if cp, _ := e.checkpoint(uid1); cp.Devices[0].Attachment != nil {
		t.Errorf("after Stop: attachment %+v left", cp.Devices[0].Attachment)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		cl, _ := e.opts.KubeClient.ResourceV1().ResourceClaims("ml").Get(context.Background(), c.Name, metav1.GetOptions{})
		if st = cl.Status.Devices; len(st) == 0 {
			break
		}
	}
	if len(st) != 0 {
		t.Errorf("after Stop: claim status devices = %+v, want none", st)
	}
	if err := e.stop(pod); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := e.runtime.RemovePodSandbox(context.Background(), &adaptation.RemovePodSandboxRequest{Pod: pod}); err != nil {
		t.Errorf("Remove after Stop: %v", err)
	}

	// The address was released: host-local's lease file is gone.
	ip, _, _ := strings.Cut(got.Addrs[0], "/")
	if _, err := os.Stat(filepath.Join(leases, a.IPAMNetwork, ip)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Stop: lease of %s: %v, want it released", ip, err)
	}
	pod2, pod2NS := e.pod(pod1, "sandbox-2")
	if err := e.run(pod2); err != nil {
		t.Fatal(err)
	}
	if l := linksOf(t, pod2NS)["net1"]; len(l.Addrs) != 1 {
		t.Errorf("next sandbox's addresses %v", l.Addrs)
	}
	if err := e.unprepare(uid1); err != nil {
		t.Fatal(err)
	}
	if l := linksOf(t, e.hostNS)[netdev]; fmt.Sprint(l) != fmt.Sprint(before) {
		t.Errorf("after Unprepare: host netdev = %+v, want %+v", l, before)
	}
}

// TestNRIFailureLeavesVFInHost: when a step fails midway (the pod already
// has an interface called ifName; the IPAM plugin fails after the move),
// the sandbox fails with an error naming the claim, the device and the
// fix, and the VF's netdev is in the host namespace with its name, MTU,
// MAC and state; no attachment is recorded. A second VF moved by the same
// event goes back too.
func TestNRIFailureLeavesVFInHost(t *testing.T) {
	e := newNRIEnv(t)
	_, netdev0 := e.vf(0)
	_, netdev1 := e.vf(1)
	before := linksOf(t, e.hostNS)
	// uid1 sorts first: its VF moves, then uid2's fails.
	if r := e.prepare(e.reservedClaim(uid1, 0, pod1, `"mtu": 1300`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := e.prepare(e.reservedClaim(uid2, 1, pod1, `"ifName": "taken", "mtu": 1400`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	pod, podNS := e.pod(pod1, "sandbox-1")
	if err := podNS.Do(func(ns.NetNS) error {
		la := netlink.NewLinkAttrs()
		la.Name = "taken"
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "takenpeer"})
	}); err != nil {
		t.Fatal(err)
	}
	err := e.run(pod)
	if err == nil || !strings.Contains(err.Error(), "claim ml/claim-0b6e, device "+DeviceName(e.n.VFAddress(cx0, 1))) ||
		!strings.Contains(err.Error(), "already has an interface called taken") || !strings.Contains(err.Error(), "set another ifName") {
		t.Fatalf("RunPodSandbox = %v, want the taken name, the claim, the device and the fix", err)
	}
	check := func(step string) {
		t.Helper()
		after := linksOf(t, e.hostNS)
		for _, n := range []string{netdev0, netdev1} {
			if fmt.Sprint(after[n]) != fmt.Sprint(before[n]) {
				t.Errorf("%s: host netdev %s = %+v, want %+v", step, n, after[n], before[n])
			}
		}
		if l := linksOf(t, podNS); len(l) != 2 {
			t.Errorf("%s: pod links %v, want only its own", step, l)
		}
		for _, uid := range []string{uid1, uid2} {
			if cp, _ := e.checkpoint(uid); cp.Devices[0].Attachment != nil {
				t.Errorf("%s: claim %s keeps attachment %+v", step, uid, cp.Devices[0].Attachment)
			}
		}
	}
	check("name taken")

	// An IPAM plugin that fails after the move.
	if err := e.unprepare(uid2); err != nil {
		t.Fatal(err)
	}
	if r := e.prepare(e.reservedClaim(uid2, 1, pod1, `"ifName": "net2", "ipam": {"type": "host-local", "subnet": "not-a-subnet"}`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	if err := e.run(pod); err == nil || !strings.Contains(err.Error(), "IPAM plugin host-local") {
		t.Fatalf("RunPodSandbox = %v, want the IPAM failure", err)
	}
	check("IPAM failed")
}

// TestNRICheckpointBeforeMove: the attachment is in the checkpoint, in
// state Attaching, before the netdev moves: a move that cannot happen
// (the VF's host netdev is held elsewhere) finds the record written.
func TestNRICheckpointBeforeMove(t *testing.T) {
	e := newNRIEnv(t)
	if r := e.prepare(e.reservedClaim(uid1, 0, pod1, `"ifName": "net1"`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	var seen *nodefiles.DRAAttachment
	e.node.mu.Lock()
	e.node.mode = "exclusive" // RDMA devices move: the hook sees the checkpoint
	e.node.mu.Unlock()
	e.d.opts.Node = &hookNode{netnsNode: e.node, onMove: func() {
		cp, _, _ := nodefiles.NewDRAClaims(e.opts.ClaimsDir).Get(uid1)
		seen = cp.Devices[0].Attachment
	}}
	pod, podNS := e.pod(pod1, "sandbox-1")
	if err := e.run(pod); err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.State != nodefiles.DRAAttachmentAttaching || seen.Netns != podNS.Path() || seen.RDMADevice != e.n.RDMADevice(e.n.VFAddress(cx0, 0)) {
		t.Errorf("checkpoint at the RDMA move = %+v, want the Attaching record", seen)
	}
	if !slices.Equal(e.node.moves, []string{seen.RDMADevice + " to " + podNS.Path()}) {
		t.Errorf("RDMA moves %v, want the VF's device into the pod", e.node.moves)
	}
	if cp, _ := e.checkpoint(uid1); cp.Devices[0].Attachment == nil || cp.Devices[0].Attachment.State != nodefiles.DRAAttachmentAttached {
		t.Errorf("checkpoint after = %+v", cp.Devices[0].Attachment)
	}
	if err := e.stop(pod); err != nil {
		t.Fatal(err)
	}
	if len(e.node.moves) != 2 || !strings.HasSuffix(e.node.moves[1], " to "+e.hostNS.Path()) {
		t.Errorf("RDMA moves %v, want it back to the host", e.node.moves)
	}
}

// hookNode calls onMove when an RDMA device moves.
type hookNode struct {
	*netnsNode
	onMove func()
}

func (h *hookNode) MoveRDMADevice(from *host.Netns, name string, to *host.Netns) error {
	if h.onMove != nil {
		h.onMove()
		h.onMove = nil
	}
	return h.netnsNode.MoveRDMADevice(from, name, to)
}

// TestNRINetnsGoneThenUnprepare: the pod's namespace is deleted before any
// Stop (the kernel returns a physical VF's netdev to the initial namespace
// under its pod name): Unprepare finds it by PCI address and gives it its
// name, MTU and state back.
func TestNRINetnsGoneThenUnprepare(t *testing.T) {
	e := newNRIEnv(t)
	_, netdev := e.vf(0)
	before := linksOf(t, e.hostNS)[netdev]
	if r := e.prepare(e.reservedClaim(uid1, 0, pod1, `"ifName": "net1", "mtu": 1400`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	pod, podNS := e.pod(pod1, "sandbox-1")
	if err := e.run(pod); err != nil {
		t.Fatal(err)
	}
	// What the kernel does with a physical netdev when the namespace goes
	// (a veth would be destroyed): back to the host under its pod name.
	if err := podNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("net1")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetDown(l); err != nil {
			return err
		}
		f, err := os.Open(e.hostNS.Path())
		if err != nil {
			return err
		}
		defer f.Close()
		return netlink.LinkSetNsFd(l, int(f.Fd()))
	}); err != nil {
		t.Fatal(err)
	}
	podNS.Close()
	if err := testutils.UnmountNS(podNS); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(podNS.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("netns still there: %v", err)
	}
	if err := e.unprepare(uid1); err != nil {
		t.Fatal(err)
	}
	if l := linksOf(t, e.hostNS)[netdev]; fmt.Sprint(l) != fmt.Sprint(before) {
		t.Errorf("after Unprepare: host netdev = %+v, want %+v (links %v)", l, before, linksOf(t, e.hostNS))
	}
	if _, ok := e.checkpoint(uid1); ok {
		t.Error("checkpoint left")
	}
}

// TestNRIPodWithoutClaim: a sandbox of a pod no prepared claim is
// reserved for is left alone, and so is every VF.
func TestNRIPodWithoutClaim(t *testing.T) {
	e := newNRIEnv(t)
	before := linksOf(t, e.hostNS)
	if r := e.prepare(e.reservedClaim(uid1, 0, pod1, `"ifName": "net1"`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	pod, podNS := e.pod(pod2, "sandbox-2")
	if err := e.run(pod); err != nil {
		t.Fatal(err)
	}
	if l := linksOf(t, podNS); len(l) != 0 {
		t.Errorf("pod got %v", l)
	}
	if after := linksOf(t, e.hostNS); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("host links %v, want %v", after, before)
	}
	if err := e.stop(pod); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if cp, _ := e.checkpoint(uid1); cp.Devices[0].Attachment != nil {
		t.Errorf("attachment %+v", cp.Devices[0].Attachment)
	}
}

// TestNRISyncGivesBackVFsOfGoneSandboxes: when the plugin connects again
// (the agent restarted), the runtime's sandboxes are compared with the
// checkpoint: a VF attached to a sandbox the runtime no longer runs is
// given back; one whose sandbox runs stays.
func TestNRISyncGivesBackVFsOfGoneSandboxes(t *testing.T) {
	e := newNRIEnv(t)
	_, netdev0 := e.vf(0)
	before := linksOf(t, e.hostNS)[netdev0]
	if r := e.prepare(e.reservedClaim(uid1, 0, pod1, `"ifName": "net1"`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := e.prepare(e.reservedClaim(uid2, 1, pod2, `"ifName": "net1"`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	gone, _ := e.pod(pod1, "sandbox-1")
	kept, keptNS := e.pod(pod2, "sandbox-2")
	for _, p := range []*adaptation.PodSandbox{gone, kept} {
		if err := e.run(p); err != nil {
			t.Fatal(err)
		}
	}
	// The agent restarts; the runtime runs only the second sandbox.
	e.d.StopNRI()
	e.runtime.Stop()
	e.restart()
	e.connect(func() []*adaptation.PodSandbox { return []*adaptation.PodSandbox{kept} })

	if l := linksOf(t, e.hostNS)[netdev0]; fmt.Sprint(l) != fmt.Sprint(before) {
		t.Errorf("the gone sandbox's VF: host netdev = %+v, want %+v", l, before)
	}
	if cp, _ := e.checkpoint(uid1); cp.Devices[0].Attachment != nil {
		t.Errorf("the gone sandbox's attachment %+v left", cp.Devices[0].Attachment)
	}
	if _, ok := linksOf(t, keptNS)["net1"]; !ok {
		t.Errorf("the running sandbox lost its VF: %v", linksOf(t, keptNS))
	}
	if cp, _ := e.checkpoint(uid2); cp.Devices[0].Attachment == nil {
		t.Error("the running sandbox's attachment was cleared")
	}
}

// TestNRIReconnects: when the runtime goes away (a containerd restart),
// the driver connects again to the runtime that comes back on the same
// socket, and its sandbox events move VFs again.
func TestNRIReconnects(t *testing.T) {
	e := newNRIEnv(t)
	if r := e.prepare(e.reservedClaim(uid1, 0, pod1, `"ifName": "net1"`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	// The runtime dies: its end of the connection closes.
	e.runtime.Stop()
	e.conns.Range(func(c, _ any) bool {
		c.(net.Conn).Close()
		return true
	})
	e.connectRuntime(func() []*adaptation.PodSandbox { return nil })
	pod, podNS := e.pod(pod1, "sandbox-1")
	if err := e.run(pod); err != nil {
		t.Fatal(err)
	}
	if _, ok := linksOf(t, podNS)["net1"]; !ok {
		t.Errorf("after the runtime came back: pod links %v, want net1", linksOf(t, podNS))
	}
}

// TestNRIRecoversCutShortMove: the agent died after the netdev moved and
// before the attachment was marked Attached (the runtime gave up on the
// event and runs the sandbox without it): at the next connection, the VF
// is given back from the running sandbox, by the checkpoint alone, and
// moved in again whole.
func TestNRIRecoversCutShortMove(t *testing.T) {
	e := newNRIEnv(t)
	_, netdev := e.vf(0)
	before := linksOf(t, e.hostNS)[netdev]
	if r := e.prepare(e.reservedClaim(uid1, 0, pod1, `"ifName": "net1", "mtu": 1400`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	pod, podNS := e.pod(pod1, "sandbox-1")
	if err := e.run(pod); err != nil {
		t.Fatal(err)
	}
	cp, _ := e.checkpoint(uid1)
	cp.Devices[0].Attachment.State = nodefiles.DRAAttachmentAttaching
	if err := nodefiles.NewDRAClaims(e.opts.ClaimsDir).Put(cp); err != nil {
		t.Fatal(err)
	}
	e.d.StopNRI()
	e.runtime.Stop()
	e.restart()
	e.connect(func() []*adaptation.PodSandbox { return []*adaptation.PodSandbox{pod} })
	if _, ok := linksOf(t, e.hostNS)[netdev]; ok {
		t.Errorf("host still has %s (was %+v)", netdev, before)
	}
	if l, ok := linksOf(t, podNS)["net1"]; !ok || l.MTU != 1400 {
		t.Errorf("pod links %v, want net1 at MTU 1400", linksOf(t, podNS))
	}
	if cp, _ := e.checkpoint(uid1); cp.Devices[0].Attachment == nil || cp.Devices[0].Attachment.State != nodefiles.DRAAttachmentAttached {
		t.Errorf("attachment %+v, want Attached", cp.Devices[0].Attachment)
	}
}

// TestNRISandboxCreatedWhileDisconnected: the runtime created a pod's
// sandbox while the driver was not connected (the agent restarting after
// Prepare): the driver moves the VF in at its next connection.
func TestNRISandboxCreatedWhileDisconnected(t *testing.T) {
	e := newNRIEnv(t)
	if r := e.prepare(e.reservedClaim(uid1, 0, pod1, `"ifName": "net1"`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	e.d.StopNRI()
	e.runtime.Stop()
	pod, podNS := e.pod(pod1, "sandbox-1") // created meanwhile, without the plugin
	e.restart()
	e.connect(func() []*adaptation.PodSandbox { return []*adaptation.PodSandbox{pod} })
	if _, ok := linksOf(t, podNS)["net1"]; !ok {
		t.Errorf("pod links %v, want net1", linksOf(t, podNS))
	}
}

// TestNRICreateContainerMovesMissingVF: a container of a pod whose VF is
// not in its sandbox (the claim prepared after the sandbox's event) is
// created only once the VF is moved in.
func TestNRICreateContainerMovesMissingVF(t *testing.T) {
	e := newNRIEnv(t)
	pod, podNS := e.pod(pod1, "sandbox-1")
	if err := e.run(pod); err != nil {
		t.Fatal(err)
	}
	if r := e.prepare(e.reservedClaim(uid1, 0, pod1, `"ifName": "net1"`)); r.Err != nil {
		t.Fatal(r.Err)
	}
	if _, ok := linksOf(t, podNS)["net1"]; ok {
		t.Fatal("net1 in the pod before any event: the test would prove nothing")
	}
	_, err := e.runtime.CreateContainer(context.Background(), &adaptation.CreateContainerRequest{Pod: pod,
		Container: &adaptation.Container{Id: "c1", PodSandboxId: pod.Id, Name: "app"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := linksOf(t, podNS)["net1"]; !ok {
		t.Errorf("after CreateContainer: pod links %v, want net1", linksOf(t, podNS))
	}
}

// TestNRISocketAbsent: without the runtime's NRI socket the driver starts
// (the agent keeps serving its other pools), and a claim whose VF has a
// netdev fails Prepare with what to do, until the runtime appears and
// the driver connects by itself.
func TestNRISocketAbsent(t *testing.T) {
	e := newNRIEnvWithoutRuntime(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := e.d.StartNRI(ctx); err != nil {
		t.Fatalf("StartNRI without a socket = %v, want it to keep trying", err)
	}
	t.Cleanup(e.d.StopNRI)
	c := e.reservedClaim(uid1, 0, pod1, `"ifName": "net1"`)
	r := e.prepare(c)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "not connected to the runtime's NRI socket") || !strings.Contains(r.Err.Error(), "containerd 2.x") ||
		!strings.Contains(r.Err.Error(), e.opts.NRISocket) {
		t.Fatalf("Prepare without NRI = %v, want the socket, the reason and what to do", r.Err)
	}
	if _, ok := e.checkpoint(uid1); ok {
		t.Error("a refused claim was checkpointed")
	}
	e.connectRuntime(func() []*adaptation.PodSandbox { return nil })
	if r := e.prepare(c); r.Err != nil {
		t.Fatalf("Prepare once connected: %v", r.Err)
	}
	pod, podNS := e.pod(pod1, "sandbox-1")
	if err := e.run(pod); err != nil {
		t.Fatal(err)
	}
	if _, ok := linksOf(t, podNS)["net1"]; !ok {
		t.Errorf("pod links %v, want net1", linksOf(t, podNS))
	}
}
