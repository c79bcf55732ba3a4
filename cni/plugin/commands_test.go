package plugin_test

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/cni/internal/standin"
	"github.com/sluice-net/sluice/host"
)

// withPrevResult adds ADD's result to a configuration, as the runtime does
// for CHECK.
func withPrevResult(t *testing.T, conf []byte, res *current.Result) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	var prev map[string]any
	_ = json.Unmarshal(b, &prev)
	m["prevResult"] = prev
	out, _ := json.Marshal(m)
	return out
}

func TestCheck(t *testing.T) {
	e := newEnv(t, 1)
	pod := newNS(t)
	conf := e.conf(vfAddr(0), map[string]any{"mtu": 1400, "mac": "02:11:00:00:00:01", "vlan": 20})
	args := cmdArgs(pod, "c1", "net1", conf)
	res := e.mustAdd(args)
	check := cmdArgs(pod, "c1", "net1", withPrevResult(t, conf, res))
	if err := e.check(check); err != nil {
		t.Fatalf("CHECK of a good attachment: %v", err)
	}

	inPod := func(f func(l netlink.Link) error) {
		t.Helper()
		if err := pod.Do(func(ns.NetNS) error {
			l, err := netlink.LinkByName("net1")
			if err != nil {
				return err
			}
			return f(l)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name        string
		break_, fix func()
		want        string
	}{
		{"MAC changed",
			func() {
				inPod(func(l netlink.Link) error {
					m, _ := net.ParseMAC("02:99:00:00:00:01")
					return netlink.LinkSetHardwareAddr(l, m)
				})
			},
			func() {
				inPod(func(l netlink.Link) error {
					m, _ := net.ParseMAC("02:11:00:00:00:01")
					return netlink.LinkSetHardwareAddr(l, m)
				})
			},
			"MAC is 02:99:00:00:00:01"},
		{"MTU changed",
			func() { inPod(func(l netlink.Link) error { return netlink.LinkSetMTU(l, 1300) }) },
			func() { inPod(func(l netlink.Link) error { return netlink.LinkSetMTU(l, 1400) }) },
			"MTU is 1300"},
		{"address removed",
			func() {
				inPod(func(l netlink.Link) error { return netlink.AddrDel(l, &netlink.Addr{IPNet: &res.IPs[0].Address}) })
			},
			func() {
				inPod(func(l netlink.Link) error { return netlink.AddrAdd(l, &netlink.Addr{IPNet: &res.IPs[0].Address}) })
			},
			"Failed to match addr"},
		{"VF VLAN changed on the PF",
			func() {
				v := 21
				_ = e.node.ConfigureVF(pfName, 0, host.VFConfig{VLAN: &v, VLANProto: host.VLANProto8021Q})
			},
			func() {
				v := 20
				_ = e.node.ConfigureVF(pfName, 0, host.VFConfig{VLAN: &v, VLANProto: host.VLANProto8021Q})
			},
			"VF VLAN is 21"},
		{"interface gone",
			func() { inPod(func(l netlink.Link) error { return netlink.LinkSetName(l, "other") }) },
			func() {
				_ = pod.Do(func(ns.NetNS) error {
					l, err := netlink.LinkByName("other")
					if err != nil {
						return err
					}
					return netlink.LinkSetName(l, "net1")
				})
				inPod(func(l netlink.Link) error { return netlink.LinkSetUp(l) })
			},
			"missing from the pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.break_()
			err := e.check(check)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CHECK = %v, want an error with %q", err, tc.want)
			}
			tc.fix()
			if err := e.check(check); err != nil {
				t.Errorf("CHECK after the fix: %v", err)
			}
		})
	}
	// Unknown attachment.
	if err := e.check(cmdArgs(pod, "c9", "net1", withPrevResult(t, conf, res))); cniCode(err) != types.ErrUnknownContainer {
		t.Errorf("CHECK of an unknown container = %v", err)
	}
	e.mustDel(args)
}

func (e *env) gc(conf []byte, valid ...[2]string) error {
	var m map[string]any
	_ = json.Unmarshal(conf, &m)
	var list []map[string]string
	for _, v := range valid {
		list = append(list, map[string]string{"containerID": v[0], "ifname": v[1]})
	}
	m["cni.dev/valid-attachments"] = list
	b, _ := json.Marshal(m)
	return e.in(func() error { return e.plugin(&bytes.Buffer{}).CmdGC(&skel.CmdArgs{StdinData: b, Path: binDir}) })
}

func TestGC(t *testing.T) {
	e := newEnv(t, 3)
	before := e.snapshot()
	pods := []ns.NetNS{newNS(t), newNS(t), newNS(t)}
	conf := func(i int) []byte { return e.conf(vfAddr(i), map[string]any{"vlan": 40}) }
	for i, cid := range []string{"keep", "stale", "stale-no-cache"} {
		e.mustAdd(cmdArgs(pods[i], cid, "net1", conf(i)))
	}
	if err := os.Remove(filepath.Join(e.dir, "cache", "stale-no-cache_net1.json")); err != nil {
		t.Fatal(err)
	}
	if err := e.gc(e.conf("", nil), [2]string{"keep", "net1"}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	hostLinks := links(t, e.hostNS)
	if hostLinks[vfNetdev(1)].Alias != vfAddr(1) || hostLinks[vfNetdev(2)].Alias != vfAddr(2) {
		t.Errorf("stale VFs not back in the host: %+v", hostLinks)
	}
	if _, ok := hostLinks[vfNetdev(0)]; ok {
		t.Error("GC released a valid attachment")
	}
	if s := e.state().VFs[vfAddr(1)].Settings; s.VLAN != 0 {
		t.Errorf("stale VF settings not restored: %+v", s)
	}
	if c := files(t, filepath.Join(e.dir, "cache")); len(c) != 1 || c[0] != "keep_net1.json" {
		t.Errorf("cache after GC = %v", c)
	}
	if a := files(t, filepath.Join(e.dir, "attachments")); len(a) != 1 || a[0] != vfAddr(0)+".json" {
		t.Errorf("attachments after GC = %v", a)
	}
	if l := e.ipamLeases(); len(l) != 1 {
		t.Errorf("leases after GC = %v", l)
	}
	// A GC of another network leaves this one's attachments alone.
	if err := e.gc(e.conf("", map[string]any{"name": "other-net"})); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.record(vfAddr(0)); !ok {
		t.Error("GC of another network released this network's attachment")
	}
	e.mustDel(cmdArgs(pods[0], "keep", "net1", conf(0)))
	// The VF whose cache entry was gone got its settings (VLAN 40 off) and
	// its netdev's state back from the attachment record.
	e.requireSame(before, "ADDs, GC, DEL")
}

func TestStatus(t *testing.T) {
	e := newEnv(t, 0)
	status := func(extra map[string]any) error {
		return e.plugin(&bytes.Buffer{}).CmdStatus(&skel.CmdArgs{StdinData: e.conf("", extra), Path: binDir})
	}
	if err := status(nil); err != nil {
		t.Fatalf("STATUS with usable directories: %v", err)
	}
	blocker := filepath.Join(e.dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"cacheDir", "attachmentsDir", "lockDir"} {
		bad := filepath.Join(blocker, field)
		err := status(map[string]any{field: bad})
		if cniCode(err) != types.ErrPluginNotAvailable || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), bad) {
			t.Errorf("STATUS with %s unusable = %v, want code 50 naming the field and %s", field, err, bad)
		}
	}
}

func TestRDMA(t *testing.T) {
	for _, mode := range []string{"exclusive", "shared"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, 1)
			if err := e.node.Update(func(s *standin.State) error {
				s.RDMAMode = mode
				s.VFs[vfAddr(0)].RDMA, s.VFs[vfAddr(0)].RDMANetns = "mlx5_7", s.HostNetns
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			pod := newNS(t)
			before := e.snapshot()
			args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), map[string]any{"rdma": true}))
			e.mustAdd(args)
			rec, _ := e.record(vfAddr(0))
			where := e.state().VFs[vfAddr(0)].RDMANetns
			podID := nsID(t, pod)
			if mode == "exclusive" {
				if where != podID || rec.RDMADevice != "mlx5_7" || rec.SharedRDMADevice != "" {
					t.Errorf("exclusive: RDMA device in %s (pod %s), record %+v", where, podID, rec)
				}
			} else if where != e.state().HostNetns || rec.RDMADevice != "" || rec.SharedRDMADevice != "mlx5_7" {
				t.Errorf("shared: RDMA device in %s, record %+v", where, rec)
			}
			e.mustDel(args)
			e.requireSame(before, "RDMA ADD then DEL")
		})
	}
}

func nsID(t *testing.T, n ns.NetNS) string {
	t.Helper()
	h, err := host.OpenNetns(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	id, err := standin.NetnsID(h)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestBadInput: every bad request is a CNI error with the right code and a
// message naming the field, and changes nothing on the node.
func TestBadInput(t *testing.T) {
	e := newEnv(t, 2)
	if err := e.node.Update(func(s *standin.State) error { s.VFs[vfAddr(1)].Driver = "iavf"; return nil }); err != nil {
		t.Fatal(err)
	}
	pod := newNS(t)
	// VF 1 is attached to another pod (its record only; the netdev stays).
	if err := nodefiles.NewAttachments(filepath.Join(e.dir, "attachments")).Put(nodefiles.Record{PCIAddress: vfAddr(1), ContainerID: "other", IfName: "net1", PodNamespace: "ml", PodName: "holder"}); err != nil {
		t.Fatal(err)
	}
	// Another command holds VF 0's lock.
	lockBusy := func() func() {
		os.MkdirAll(filepath.Join(e.dir, "locks"), 0o755)
		f, err := os.OpenFile(filepath.Join(e.dir, "locks", vfAddr(0)+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		return func() { f.Close() }
	}
	vf := vfAddr(0)
	for _, tc := range []struct {
		name   string
		conf   []byte
		ifName string
		cniArg string
		netns  string
		before func() func()
		code   uint
		want   string
	}{
		{name: "malformed JSON", conf: []byte(`{"cniVersion":"1.1.0","name":"x",`), code: types.ErrDecodingFailure, want: "not valid JSON"},
		{name: "no deviceID", conf: e.conf("", nil), code: types.ErrInvalidNetworkConfig, want: "deviceID is missing"},
		{name: "deviceID format", conf: e.conf("03:02.3", nil), code: types.ErrInvalidNetworkConfig, want: "deviceID \"03:02.3\" is not a PCI address"},
		{name: "VF not on node", conf: e.conf("0000:99:00.1", nil), code: types.ErrInvalidNetworkConfig, want: "not a VF on this node"},
		{name: "vlan too big", conf: e.conf(vf, map[string]any{"vlan": 4095}), code: types.ErrInvalidNetworkConfig, want: "vlan 4095 is out of range"},
		{name: "vlan negative", conf: e.conf(vf, map[string]any{"vlan": -1}), code: types.ErrInvalidNetworkConfig, want: "vlan -1"},
		{name: "vlan a string", conf: e.conf(vf, map[string]any{"vlan": "100"}), code: types.ErrInvalidNetworkConfig, want: `field "vlan"`},
		{name: "vlanQoS without vlan", conf: e.conf(vf, map[string]any{"vlanQoS": 3}), code: types.ErrInvalidNetworkConfig, want: "vlanQoS 3 needs a vlan"},
		{name: "vlanQoS too big", conf: e.conf(vf, map[string]any{"vlan": 3, "vlanQoS": 8}), code: types.ErrInvalidNetworkConfig, want: "vlanQoS 8"},
		{name: "vlanProto unknown", conf: e.conf(vf, map[string]any{"vlan": 3, "vlanProto": "802.1x"}), code: types.ErrInvalidNetworkConfig, want: "vlanProto"},
		{name: "802.1ad without vlan", conf: e.conf(vf, map[string]any{"vlanProto": "802.1ad"}), code: types.ErrInvalidNetworkConfig, want: "vlanProto \"802.1ad\" needs a vlan"},
		{name: "bad mac", conf: e.conf(vf, map[string]any{"mac": "02:zz:00:00:00:01"}), code: types.ErrInvalidNetworkConfig, want: "mac \"02:zz:00:00:00:01\""},
		{name: "multicast mac", conf: e.conf(vf, map[string]any{"mac": "01:00:5e:00:00:01"}), code: types.ErrInvalidNetworkConfig, want: "multicast"},
		{name: "bad runtimeConfig mac", conf: e.conf(vf, map[string]any{"runtimeConfig": map[string]any{"mac": "nope"}}), code: types.ErrInvalidNetworkConfig, want: "runtimeConfig.mac"},
		{name: "bad CNI_ARGS MAC", conf: e.conf(vf, nil), cniArg: "IgnoreUnknown=1;MAC=nope", code: types.ErrInvalidEnvironmentVariables, want: "CNI_ARGS MAC"},
		{name: "min above max rate", conf: e.conf(vf, map[string]any{"min_tx_rate": 200, "max_tx_rate": 100}), code: types.ErrInvalidNetworkConfig, want: "min_tx_rate 200 is above max_tx_rate 100"},
		{name: "negative rate", conf: e.conf(vf, map[string]any{"max_tx_rate": -1}), code: types.ErrInvalidNetworkConfig, want: "max_tx_rate -1"},
		{name: "link_state", conf: e.conf(vf, map[string]any{"link_state": "up"}), code: types.ErrInvalidNetworkConfig, want: "link_state \"up\""},
		{name: "spoofchk", conf: e.conf(vf, map[string]any{"spoofchk": "yes"}), code: types.ErrInvalidNetworkConfig, want: "spoofchk \"yes\""},
		{name: "trust", conf: e.conf(vf, map[string]any{"trust": "true"}), code: types.ErrInvalidNetworkConfig, want: "trust \"true\""},
		{name: "mtu", conf: e.conf(vf, map[string]any{"mtu": 10}), code: types.ErrInvalidNetworkConfig, want: "mtu 10"},
		{name: "rdma without device", conf: e.conf(vf, map[string]any{"rdma": true}), code: types.ErrInvalidNetworkConfig, want: "rdma is true"},
		{name: "ifname too long", conf: e.conf(vf, nil), ifName: "abcdefghijklmnop", code: types.ErrInvalidEnvironmentVariables, want: "at most 15"},
		{name: "ifname slash", conf: e.conf(vf, nil), ifName: "net/1", code: types.ErrInvalidEnvironmentVariables, want: "CNI_IFNAME"},
		{name: "ifname colon", conf: e.conf(vf, nil), ifName: "net:1", code: types.ErrInvalidEnvironmentVariables, want: "CNI_IFNAME"},
		{name: "ifname space", conf: e.conf(vf, nil), ifName: "net 1", code: types.ErrInvalidEnvironmentVariables, want: "CNI_IFNAME"},
		{name: "ifname taken in pod", conf: e.conf(vf, nil), ifName: "lo", code: types.ErrInvalidEnvironmentVariables, want: "already has an interface"},
		{name: "netns missing", conf: e.conf(vf, nil), netns: "/var/run/netns/no-such-sluice-ns", code: types.ErrInvalidEnvironmentVariables, want: "does not exist"},
		{name: "VF attached elsewhere", conf: e.conf(vfAddr(1), nil), code: 100, want: "already attached to pod ml/holder"},
		{name: "VF locked", conf: e.conf(vf, nil), before: lockBusy, code: types.ErrTryAgainLater, want: "is busy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				defer tc.before()()
			}
			before := e.snapshot()
			podBefore := podLinks(t, pod)
			args := cmdArgs(pod, "c1", "net1", tc.conf)
			if tc.ifName != "" {
				args.IfName = tc.ifName
			}
			if tc.cniArg != "" {
				args.Args = tc.cniArg
			}
			if tc.netns != "" {
				args.Netns = tc.netns
			}
			_, err := e.add(args)
			if cniCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ADD = %v (code %d), want code %d and %q", err, cniCode(err), tc.code, tc.want)
			}
			e.requireSame(before, "a bad ADD")
			if after := podLinks(t, pod); len(after) != len(podBefore) {
				t.Errorf("pod links changed: %v -> %v", podBefore, after)
			}
		})
	}
}
