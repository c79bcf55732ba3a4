package plugin_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
)

// A pod's requested MAC and addresses reach the VF as Multus passes them
// for the "mac" and "ips" capabilities: runtimeConfig.mac is set on the
// VF, runtimeConfig.ips is assigned by the static IPAM plugin.
func TestRuntimeConfigMACAndIPs(t *testing.T) {
	e := newEnv(t, 1)
	pod := newNS(t)
	before := e.snapshot()
	conf := e.conf(vfAddr(0), map[string]any{
		"capabilities":  map[string]bool{"mac": true, "ips": true},
		"runtimeConfig": map[string]any{"mac": "02:aa:bb:cc:dd:01", "ips": []string{"10.78.0.42/24", "fd00:78::42/64"}},
		"ipam":          map[string]any{"type": "static"},
	})
	args := cmdArgs(pod, "c1", "net1", conf)
	res := e.mustAdd(args)
	if len(res.IPs) != 2 || res.IPs[0].Address.String() != "10.78.0.42/24" || res.IPs[1].Address.String() != "fd00:78::42/64" || res.Interfaces[0].Mac != "02:aa:bb:cc:dd:01" {
		t.Errorf("result = %+v, interface %+v", res, res.Interfaces[0])
	}
	l := podLinks(t, pod)["net1"]
	if l.MAC != "02:aa:bb:cc:dd:01" || len(l.Addrs) != 1 || l.Addrs[0] != "10.78.0.42/24" || !l.Up {
		t.Errorf("pod link = %+v", l)
	}
	if s := e.state().VFs[vfAddr(0)].Settings; s.MAC != "02:aa:bb:cc:dd:01" {
		t.Errorf("VF MAC on the PF = %s", s.MAC)
	}
	e.mustDel(args)
	e.requireSame(before, "ADD then DEL")
}

// Requested addresses the network cannot assign are refused before the
// node changes: nothing silently drops them.
func TestRuntimeConfigIPsRefused(t *testing.T) {
	e := newEnv(t, 1)
	pod := newNS(t)
	before := e.snapshot()
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"no ipam", map[string]any{"ipam": nil, "runtimeConfig": map[string]any{"ips": []string{"10.78.0.42/24"}}},
			`runtimeConfig.ips asks for 10.78.0.42/24 but the network has no ipam to assign them: set ipam to {"type": "static"}`},
		{"not an address", map[string]any{"ipam": map[string]any{"type": "static"}, "runtimeConfig": map[string]any{"ips": []string{"10.78.0.42/24", "ten.0.0.1"}}},
			`runtimeConfig.ips entry 1, "ten.0.0.1", is not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.add(cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), tc.extra)))
			if cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want code 7 with %q", err, tc.want)
			}
			e.requireSame(before, "refused ADD")
		})
	}
}

// logLevel and logFile as sriov-cni takes them: lines at or below the
// level go to the file, nothing to it when no line is at the level.
func TestLogLevelAndFile(t *testing.T) {
	e := newEnv(t, 1)
	pod := newNS(t)
	dir := t.TempDir()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return string(b)
	}

	// debug: every step, the outcome, any case of the level's name.
	args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), map[string]any{"logLevel": "DEBUG", "logFile": filepath.Join(dir, "sub", "debug.log")}))
	e.mustAdd(args)
	e.mustDel(args)
	log := read(filepath.Join("sub", "debug.log"))
	for _, want := range []string{
		"[debug] sluice-cni ADD c1/net1: netns " + pod.Path(),
		`[debug] sluice-cni ADD c1/net1: step "configure VF" done`,
		"[debug] sluice-cni ADD c1/net1: VF " + vfAddr(0) + " is VF 0 of " + pfName,
		"[info] sluice-cni ADD c1/net1: VF " + vfAddr(0) + " is net1 in the pod (MAC " + vfMAC(0) + ", addresses [10.77.0.",
		"[info] sluice-cni ADD c1/net1: ADD succeeded",
		"[info] sluice-cni DEL c1/net1: DEL succeeded",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("debug log does not have %q:\n%s", want, log)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "sub", "debug.log")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("log file: %v %v", st, err)
	}

	// error: a successful ADD writes nothing, so no file; a failed one
	// writes its error only.
	errLog := filepath.Join(dir, "error.log")
	args = cmdArgs(pod, "c2", "net1", e.conf(vfAddr(0), map[string]any{"logLevel": "error", "logFile": errLog}))
	e.mustAdd(args)
	if got := read("error.log"); got != "" {
		t.Errorf("level error wrote for a successful ADD:\n%s", got)
	}
	if _, err := e.add(cmdArgs(pod, "c3", "net2", e.conf(vfAddr(0), map[string]any{"logLevel": "error", "logFile": errLog}))); cniCode(err) != 100 {
		t.Fatalf("second ADD of the VF: %v", err)
	}
	got := read("error.log")
	if lines := strings.Split(strings.TrimSpace(got), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "[error] sluice-cni ADD c3/net2: ADD failed: VF "+vfAddr(0)+" is already attached to pod ml/pod-c2") {
		t.Errorf("error log = %q", got)
	}
	e.mustDel(args)

	// Refused before anything runs, naming the field.
	for _, tc := range []struct {
		extra map[string]any
		want  string
	}{
		{map[string]any{"logLevel": "verbose"}, `logLevel "verbose" is not a level: use panic, error, warning, info or debug`},
		{map[string]any{"logFile": "sriov.log"}, `logFile "sriov.log" is not an absolute path`},
	} {
		if _, err := e.add(cmdArgs(pod, "c4", "net1", e.conf(vfAddr(0), tc.extra))); cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.extra, err, tc.want)
		}
	}
}

// A NetworkAttachmentDefinition of "type": "sriov" runs sluice-cni when
// it is installed under that name (install-cni --sriov-alias): the
// runtime executes the binary the type names, and sluice-cni takes the
// configuration whatever its type, sriov-cni's logLevel and logFile too.
func TestTypeSriovRunsSluiceCNI(t *testing.T) {
	e := newEnv(t, 1)
	pod := newNS(t)
	before := e.snapshot()
	dir := t.TempDir()
	// install-cni's alias is a symbolic link to the plugin.
	if err := os.Symlink(filepath.Join(binDir, "sluice-cni-standin"), filepath.Join(dir, "sriov")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"host-local"} {
		if err := os.Symlink(filepath.Join(binDir, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	logFile := filepath.Join(dir, "sriov.log")
	m := map[string]any{}
	if err := json.Unmarshal(e.conf(vfAddr(0), map[string]any{"type": "sriov", "vlan": 42, "logLevel": "info", "logFile": logFile}), &m); err != nil {
		t.Fatal(err)
	}
	conf, _ := json.Marshal(m)
	cfg := libcni.NewCNIConfigWithCacheDir([]string{dir}, t.TempDir(), nil)
	net, err := libcni.ConfFromBytes(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_STANDIN_NODE", e.node.Path())
	rt := &libcni.RuntimeConf{ContainerID: "c1", NetNS: pod.Path(), IfName: "net1", Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "ml"}, {"K8S_POD_NAME", "p"}}}
	var res types.Result
	if err := e.in(func() (err error) { res, err = cfg.AddNetwork(context.Background(), net, rt); return err }); err != nil {
		t.Fatalf("ADD of type sriov: %v", err)
	}
	r, _ := current.NewResultFromResult(res)
	if l := podLinks(t, pod)["net1"]; l.Alias != vfAddr(0) || len(r.IPs) != 1 {
		t.Errorf("pod link = %+v, result %+v", l, r)
	}
	if s := e.state().VFs[vfAddr(0)].Settings; s.VLAN != 42 {
		t.Errorf("VF VLAN = %d", s.VLAN)
	}
	if err := e.in(func() error { return cfg.DelNetwork(context.Background(), net, rt) }); err != nil {
		t.Fatalf("DEL of type sriov: %v", err)
	}
	e.requireSame(before, "ADD then DEL of type sriov")
	b, _ := os.ReadFile(logFile)
	if !strings.Contains(string(b), "[info] sluice-cni ADD c1/net1: ADD succeeded") || strings.Contains(string(b), "[debug]") {
		t.Errorf("log file at level info:\n%s", b)
	}
}

// A VFNetwork with capabilities and metaPlugins renders a configuration
// list, sluice-cni first (as the operator writes it; the operator's
// tests compare it). Run by libcni as Multus runs it, with the pod's
// requested MAC and addresses as capability arguments, the pod's
// interface has them, and the chained tuning plugin's sysctl.
func TestConfListWithMetaPlugins(t *testing.T) {
	e := newEnv(t, 1)
	pod := newNS(t)
	before := e.snapshot()
	first := map[string]any{}
	if err := json.Unmarshal(e.conf(vfAddr(0), map[string]any{
		// binDir's sluice-cni runs on the real node.
		"cniVersion": nil, "name": nil, "type": "sluice-cni-standin", "vlan": 7,
		"capabilities": map[string]bool{"mac": true, "ips": true}, "ipam": map[string]any{"type": "static"},
	}), &first); err != nil {
		t.Fatal(err)
	}
	list, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": network,
		"plugins": []any{first, map[string]any{"type": "tuning", "sysctl": map[string]string{"net.ipv4.conf.IFNAME.arp_notify": "1"}}},
	})
	cl, err := libcni.ConfListFromBytes(list)
	if err != nil {
		t.Fatal(err)
	}
	cfg := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil)
	t.Setenv("SLUICE_STANDIN_NODE", e.node.Path())
	rt := &libcni.RuntimeConf{ContainerID: "c1", NetNS: pod.Path(), IfName: "net1",
		Args:           [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "ml"}, {"K8S_POD_NAME", "p"}},
		CapabilityArgs: map[string]any{"mac": "02:aa:bb:cc:dd:07", "ips": []string{"10.78.0.7/24"}}}
	var res types.Result
	if err := e.in(func() (err error) { res, err = cfg.AddNetworkList(context.Background(), cl, rt); return err }); err != nil {
		t.Fatalf("ADD of the list: %v", err)
	}
	r, _ := current.NewResultFromResult(res)
	l := podLinks(t, pod)["net1"]
	if l.Alias != vfAddr(0) || l.MAC != "02:aa:bb:cc:dd:07" || len(l.Addrs) != 1 || l.Addrs[0] != "10.78.0.7/24" || len(r.IPs) != 1 {
		t.Errorf("pod link = %+v, result %+v", l, r)
	}
	var arpNotify []byte
	if err := pod.Do(func(ns.NetNS) (err error) {
		arpNotify, err = os.ReadFile("/proc/sys/net/ipv4/conf/net1/arp_notify")
		return err
	}); err != nil || strings.TrimSpace(string(arpNotify)) != "1" {
		t.Errorf("tuning's sysctl in the pod: %q %v", arpNotify, err)
	}
	if s := e.state().VFs[vfAddr(0)].Settings; s.VLAN != 7 || s.MAC != "02:aa:bb:cc:dd:07" {
		t.Errorf("VF settings = %+v", s)
	}
	if err := e.in(func() error { return cfg.DelNetworkList(context.Background(), cl, rt) }); err != nil {
		t.Fatalf("DEL of the list: %v", err)
	}
	e.requireSame(before, "ADD then DEL of the list")
}
