package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/sluice-net/sluice/cni/internal/standin"
	"github.com/sluice-net/sluice/host"
)

func TestAddMovesConfiguresAndDelRestores(t *testing.T) {
	e := newEnv(t, 2)
	pod := newNS(t)
	before := e.snapshot()
	conf := e.conf(vfAddr(0), map[string]any{
		"mtu": 1400, "mac": "02:11:22:33:44:55", "vlan": 100, "vlanQoS": 3, "vlanProto": "802.1ad",
		"spoofchk": "off", "trust": "on", "link_state": "enable", "min_tx_rate": 10, "max_tx_rate": 100,
	})
	args := cmdArgs(pod, "c1", "net1", conf)
	res := e.mustAdd(args)

	// The result: one interface in the pod, with the VF's PCI address.
	if len(res.Interfaces) != 1 || len(res.IPs) != 1 {
		t.Fatalf("result = %+v", res)
	}
	iface := res.Interfaces[0]
	if iface.Name != "net1" || iface.Sandbox != pod.Path() || iface.PciID != vfAddr(0) || iface.Mac != "02:11:22:33:44:55" || iface.Mtu != 1400 {
		t.Errorf("result interface = %+v", iface)
	}
	if res.IPs[0].Interface == nil || *res.IPs[0].Interface != 0 || !strings.HasPrefix(res.IPs[0].Address.String(), "10.77.0.") {
		t.Errorf("result IP = %+v", res.IPs[0])
	}

	// The netdev left the host and is net1 in the pod, configured.
	if _, ok := links(t, e.hostNS)[vfNetdev(0)]; ok {
		t.Errorf("%s still in the host namespace", vfNetdev(0))
	}
	got := podLinks(t, pod)["net1"]
	want := linkState{Name: "net1", MAC: "02:11:22:33:44:55", Alias: vfAddr(0), MTU: 1400, Up: true, Addrs: []string{res.IPs[0].Address.String()}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pod link = %+v, want %+v", got, want)
	}
	// PF side.
	s := e.state().VFs[vfAddr(0)].Settings
	wantS := host.VFSettings{MAC: "02:11:22:33:44:55", VLAN: 100, QoS: 3, VLANProto: host.VLANProto8021AD, SpoofChk: false, Trust: true,
		LinkState: "enable", MinTxRate: 10, MaxTxRate: 100}
	if s != wantS {
		t.Errorf("VF settings = %+v, want %+v", s, wantS)
	}
	// Records.
	rec, ok := e.record(vfAddr(0))
	if !ok || rec.ContainerID != "c1" || rec.IfName != "net1" || rec.HostIfName != vfNetdev(0) || rec.Network != network ||
		rec.PodNamespace != "ml" || rec.PodName != "pod-c1" || rec.Netns != pod.Path() {
		t.Errorf("attachment record = %+v %v", rec, ok)
	}
	if c := files(t, filepath.Join(e.dir, "cache")); len(c) != 1 {
		t.Errorf("cache = %v", c)
	}
	if l := e.ipamLeases(); len(l) != 1 {
		t.Errorf("IPAM leases = %v", l)
	}

	e.mustDel(args)
	e.requireSame(before, "ADD then DEL")
	if l := podLinks(t, pod); len(l) != 0 {
		t.Errorf("pod still has %v", l)
	}
}

func TestAddDefaultsKeepNetdevAndClearVLAN(t *testing.T) {
	e := newEnv(t, 1)
	// A VLAN left on the VF by a previous user is cleared (as sriov-cni does).
	ten := 10
	if err := e.node.ConfigureVF(pfName, 0, host.VFConfig{VLAN: &ten, VLANProto: host.VLANProto8021Q}); err != nil {
		t.Fatal(err)
	}
	pod := newNS(t)
	before := e.snapshot()
	args := cmdArgs(pod, "c1", "eth1", e.conf(vfAddr(0), map[string]any{"ipam": nil}))
	res := e.mustAdd(args)
	if len(res.IPs) != 0 || res.Interfaces[0].Mac != vfMAC(0) || res.Interfaces[0].Mtu != 1500 {
		t.Errorf("result = %+v %+v", res, res.Interfaces[0])
	}
	if l := podLinks(t, pod)["eth1"]; l.MAC != vfMAC(0) || l.MTU != 1500 || !l.Up {
		t.Errorf("pod link = %+v", l)
	}
	if s := e.state().VFs[vfAddr(0)].Settings; s.VLAN != 0 || !s.SpoofChk || s.Trust || s.LinkState != "auto" {
		t.Errorf("VF settings = %+v", s)
	}
	e.mustDel(args)
	e.requireSame(before, "ADD then DEL")
}

func TestAddIntoPodWithSameNamedInterface(t *testing.T) {
	// The pod has a link named like the VF's host netdev: the move goes
	// through a temporary name, so it does not collide.
	e := newEnv(t, 1)
	pod := newNS(t)
	if err := pod.Do(func(ns.NetNS) error {
		la := netlink.NewLinkAttrs()
		la.Name = vfNetdev(0)
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "peerpod"})
	}); err != nil {
		t.Fatal(err)
	}
	args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), nil))
	e.mustAdd(args)
	if l := podLinks(t, pod); l["net1"].Alias != vfAddr(0) || l[vfNetdev(0)].Alias != "" {
		t.Errorf("pod links = %+v", l)
	}
	e.mustDel(args)
	if l := links(t, e.hostNS)[vfNetdev(0)]; l.Alias != vfAddr(0) {
		t.Errorf("VF netdev not back: %+v", links(t, e.hostNS))
	}
}

func TestDelTwice(t *testing.T) {
	e := newEnv(t, 1)
	pod := newNS(t)
	before := e.snapshot()
	args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), map[string]any{"mtu": 1300}))
	e.mustAdd(args)
	e.mustDel(args)
	e.mustDel(args)
	e.requireSame(before, "ADD, DEL, DEL")
}

func TestDelNeverAdded(t *testing.T) {
	e := newEnv(t, 1)
	pod := newNS(t)
	before := e.snapshot()
	e.mustDel(cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), nil)))
	e.mustDel(cmdArgs(nil, "c1", "net1", e.conf("", nil)))
	e.requireSame(before, "DEL without ADD")
}

// refund does what the kernel does to a physical netdev when its namespace
// is destroyed: it returns to the initial namespace (here the env's), under
// its current name. A veth end would be destroyed instead, so the test
// moves it back itself, then deletes the namespace.
func refund(t *testing.T, e *env, pod ns.NetNS, ifName, hostName string) {
	t.Helper()
	err := pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetDown(l); err != nil {
			return err
		}
		if hostName != ifName {
			if err := netlink.LinkSetName(l, hostName); err != nil {
				return err
			}
		}
		return netlink.LinkSetNsFd(l, int(e.hostNS.Fd()))
	})
	if err != nil {
		t.Fatal(err)
	}
	pod.Close()
	if err := testutils.UnmountNS(pod); err != nil {
		t.Fatal(err)
	}
}

func TestDelAfterNetnsDeleted(t *testing.T) {
	for _, tc := range []struct {
		name, refundName string
		passNetns        bool
	}{
		{"returned under pod name", "net1", true},
		{"returned as devN (name taken)", "dev7", true},
		{"no CNI_NETNS", "net1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1)
			pod := newNS(t)
			before := e.snapshot()
			args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), map[string]any{"mtu": 1280, "mac": "02:aa:00:00:00:01"}))
			e.mustAdd(args)
			refund(t, e, pod, "net1", tc.refundName)
			if _, err := os.Stat(args.Netns); !os.IsNotExist(err) {
				t.Fatalf("pod namespace still there: %v", err)
			}
			if !tc.passNetns {
				args.Netns = ""
			}
			e.mustDel(args)
			e.requireSame(before, "ADD, netns deletion, DEL")
		})
	}
}

func TestDelWithoutCacheEntry(t *testing.T) {
	e := newEnv(t, 1)
	before := e.snapshot()
	pod := newNS(t)
	args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), map[string]any{"vlan": 30, "trust": "on", "mac": "02:00:00:00:00:42", "mtu": 1400}))
	e.mustAdd(args)
	if err := os.RemoveAll(filepath.Join(e.dir, "cache")); err != nil {
		t.Fatal(err)
	}
	e.mustDel(args)
	// The record gave back the host name, the netdev's MAC, MTU and state
	// and the VF's settings; the address is released.
	e.requireSame(before, "ADD, cache removed, DEL")
	if l := links(t, e.hostNS)[vfNetdev(0)]; l.Alias != vfAddr(0) {
		t.Errorf("VF netdev not back under its name: %+v", links(t, e.hostNS))
	}
	if _, ok := e.record(vfAddr(0)); ok {
		t.Error("attachment record left")
	}
	if l := e.ipamLeases(); len(l) != 0 {
		t.Errorf("IPAM leases left: %v", l)
	}
	if l := podLinks(t, pod); len(l) != 0 {
		t.Errorf("pod still has %v", l)
	}
	// And with neither cache entry nor record, DEL still succeeds.
	e.mustDel(args)
}

func TestDelWithoutCacheAndNetns(t *testing.T) {
	e := newEnv(t, 1)
	before := e.snapshot()
	pod := newNS(t)
	args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), map[string]any{"vlan": 12, "spoofchk": "off", "mtu": 1300}))
	e.mustAdd(args)
	if err := os.RemoveAll(filepath.Join(e.dir, "cache")); err != nil {
		t.Fatal(err)
	}
	refund(t, e, pod, "net1", "net1")
	e.mustDel(args)
	e.requireSame(before, "ADD, cache removed, netns gone, DEL")
}

func TestIPReleasedAndReused(t *testing.T) {
	// host-local hands out addresses round-robin; with a /30 there is one
	// usable address, so a second ADD gets it only if DEL released it.
	e := newEnv(t, 1)
	pod := newNS(t)
	ipamConf := map[string]any{"type": "host-local", "subnet": "10.78.0.0/30", "dataDir": filepath.Join(e.dir, "ipam")}
	args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), map[string]any{"ipam": ipamConf}))
	first := e.mustAdd(args)
	e.mustDel(args)
	args.ContainerID = "c2"
	second := e.mustAdd(args)
	if first.IPs[0].Address.String() != second.IPs[0].Address.String() {
		t.Errorf("second ADD got %s, first %s", second.IPs[0].Address.String(), first.IPs[0].Address.String())
	}
	e.mustDel(args)
}

func TestAddUndoesOnLaterFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra map[string]any
		fail  string
		want  string
	}{
		{"IPAM plugin fails", map[string]any{"ipam": map[string]any{"type": "host-local"}}, "", "host-local"},
		{"IPAM plugin missing", map[string]any{"ipam": map[string]any{"type": "no-such-ipam"}}, "", "no-such-ipam"},
		{"RDMA move fails", map[string]any{"rdma": true}, "MoveRDMADevice", "rdma"},
		{"PF refuses a setting", map[string]any{"vlan": 5}, "ConfigureVF", "configure VF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1)
			if err := e.node.Update(func(s *standin.State) error {
				s.RDMAMode = "exclusive"
				s.VFs[vfAddr(0)].RDMA, s.VFs[vfAddr(0)].RDMANetns = "mlx5_4", s.HostNetns
				if tc.fail != "" {
					s.Fail = map[string]string{tc.fail: "injected failure"}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			pod := newNS(t)
			before := e.snapshot()
			extra := map[string]any{"mtu": 1400, "mac": "02:bb:00:00:00:01", "vlan": 7, "trust": "on"}
			for k, v := range tc.extra {
				extra[k] = v
			}
			_, err := e.add(cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), extra)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ADD error = %v, want one naming %q", err, tc.want)
			}
			e.requireSame(before, "failed ADD")
			if l := podLinks(t, pod); len(l) != 0 {
				t.Errorf("pod has %v after a failed ADD", l)
			}
		})
	}
}

func TestConcurrentAddsOnOnePF(t *testing.T) {
	const n = 6
	e := newEnv(t, n)
	before := e.snapshot()
	pods := make([]ns.NetNS, n)
	for i := range pods {
		pods[i] = newNS(t)
	}
	run := func(f func(i int) error) {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = f(i)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("VF %d: %v", i, err)
			}
		}
	}
	args := func(i int) []byte {
		return e.conf(vfAddr(i), map[string]any{"vlan": 100 + i, "mac": fmt.Sprintf("02:cc:00:00:00:%02x", i)})
	}
	run(func(i int) error {
		_, err := e.add(cmdArgs(pods[i], fmt.Sprintf("c%d", i), "net1", args(i)))
		return err
	})
	st := e.state()
	for i := 0; i < n; i++ {
		if l := podLinks(t, pods[i])["net1"]; l.Alias != vfAddr(i) || l.MAC != fmt.Sprintf("02:cc:00:00:00:%02x", i) {
			t.Errorf("pod %d link = %+v", i, l)
		}
		if s := st.VFs[vfAddr(i)].Settings; s.VLAN != 100+i {
			t.Errorf("VF %d VLAN = %d", i, s.VLAN)
		}
	}
	if l := e.ipamLeases(); len(l) != n {
		t.Errorf("leases = %v", l)
	}
	run(func(i int) error { return e.del(cmdArgs(pods[i], fmt.Sprintf("c%d", i), "net1", args(i))) })
	e.requireSame(before, "concurrent ADDs and DELs")
}

func TestVfioVF(t *testing.T) {
	e := newEnv(t, 0)
	const pci = "0000:3b:02.5"
	if err := e.node.Update(func(s *standin.State) error {
		s.VFs[pci] = &standin.VF{PFName: pfName, PFAddress: pfAddress, Index: 5, Driver: host.VfioPci,
			Settings: host.VFSettings{MAC: "00:00:00:00:00:00", SpoofChk: true, LinkState: "auto", VLANProto: host.VLANProto8021Q}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pod := newNS(t)
	before := e.snapshot()
	args := cmdArgs(pod, "c1", "net1", e.conf(pci, map[string]any{"vlan": 300, "mac": "02:dd:00:00:00:01"}))
	res := e.mustAdd(args)
	if len(res.Interfaces) != 1 || res.Interfaces[0].Sandbox != "" || res.Interfaces[0].PciID != pci || len(res.IPs) != 1 {
		t.Errorf("result = %+v %+v", res, res.Interfaces)
	}
	if l := podLinks(t, pod); len(l) != 0 {
		t.Errorf("pod has links %v for a vfio-pci VF", l)
	}
	if s := e.state().VFs[pci].Settings; s.VLAN != 300 || s.MAC != "02:dd:00:00:00:01" {
		t.Errorf("VF settings = %+v", s)
	}
	if r, ok := e.record(pci); !ok || r.HostIfName != "" {
		t.Errorf("record = %+v %v", r, ok)
	}
	e.mustDel(args)
	e.requireSame(before, "vfio ADD then DEL")
}

// A reboot leaves the attachment record and cache entry of a pod whose
// namespace is gone, and its VF back on the host: the next ADD of that VF
// takes the record over instead of refusing the VF forever. While the
// namespace lives, the VF stays refused.
func TestAddTakesOverStaleRecord(t *testing.T) {
	e := newEnv(t, 1)
	before := e.snapshot()
	old := newNS(t)
	oldArgs := cmdArgs(old, "c-before-reboot", "net1", e.conf(vfAddr(0), nil))
	e.mustAdd(oldArgs)

	live := newNS(t)
	if _, err := e.add(cmdArgs(live, "c-second", "net1", e.conf(vfAddr(0), nil))); cniCode(err) != 100 {
		t.Fatalf("ADD of a VF attached to a live namespace = %v, want code 100 (VF unavailable)", err)
	}

	// The "reboot": the namespace goes, the netdev comes back, no DEL.
	refund(t, e, old, "net1", vfNetdev(0))
	// A rebooted node's VF comes up as the one before did.
	if err := e.hostNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(vfNetdev(0))
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.record(vfAddr(0)); !ok {
		t.Fatal("the stale record is gone before the test could use it")
	}
	args := cmdArgs(live, "c-after-reboot", "net1", e.conf(vfAddr(0), nil))
	e.mustAdd(args)
	rec, ok := e.record(vfAddr(0))
	if !ok || rec.ContainerID != "c-after-reboot" {
		t.Fatalf("record after the takeover: %+v (present %v), want container c-after-reboot", rec, ok)
	}
	if l := podLinks(t, live); len(l) != 1 {
		t.Errorf("the new pod has %v, want its VF as net1", l)
	}
	e.mustDel(args)
	// The old container's cache entry went with its record: its DEL,
	// should the runtime still send one, finds nothing to do.
	e.mustDel(oldArgs)
	e.requireSame(before, "ADD, reboot, ADD over the stale record, DEL")
}
