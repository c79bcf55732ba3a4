package plugin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/cni/internal/standin"
	"github.com/sluice-net/sluice/cni/plugin"
	"github.com/sluice-net/sluice/host"
)

// binDir holds host-local, static, tuning, sluice-cni and
// sluice-cni-standin, built once, by the first test that needs them
// (requireNetns): the fuzz targets need none, and each fuzz worker
// process runs TestMain too.
var (
	binDir    string
	buildErr  error
	buildOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func buildBinaries() {
	dir, err := os.MkdirTemp("", "sluice-cni-bin-")
	if err != nil {
		buildErr = err
		return
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/containernetworking/plugins/plugins/ipam/host-local",
		"github.com/containernetworking/plugins/plugins/ipam/static",
		"github.com/containernetworking/plugins/plugins/meta/tuning",
		"github.com/sluice-net/sluice/cni",
		"github.com/sluice-net/sluice/cni/internal/standin/sluice-cni-standin")
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("build test binaries: %w\n%s", err, out)
	} else if err := os.Rename(filepath.Join(dir, "cni"), filepath.Join(dir, "sluice-cni")); err != nil {
		buildErr = err
	}
}

func requireNetns(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tests create network namespaces and veth links")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Skip("no network namespaces on this kernel: " + err.Error())
	}
	buildOnce.Do(buildBinaries)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

const (
	pfName    = "ens1f0"
	pfAddress = "0000:3b:00.0"
	network   = "sriov-net"
	subnet    = "10.77.0.0/24"
)

func vfAddr(i int) string   { return fmt.Sprintf("0000:3b:%02x.%d", 2+i/8, i%8) }
func vfNetdev(i int) string { return fmt.Sprintf("%sv%d", pfName, i) }
func vfMAC(i int) string    { return fmt.Sprintf("02:00:00:00:01:%02x", i) }

// env is a node in a network namespace of its own (hostNS), with VFs
// whose netdevs are veth ends named like VF netdevs (alias = PCI address,
// MTU 1500, up), and per-test cache, attachment, lock and IPAM directories.
type env struct {
	t      testing.TB
	hostNS ns.NetNS
	node   *standin.Node
	dir    string
	n      int
}

func newEnv(t testing.TB, n int) *env {
	t.Helper()
	requireNetns(t)
	hostNS := newNS(t)
	e := &env{t: t, hostNS: hostNS, dir: t.TempDir(), n: n}
	e.node = standin.Open(filepath.Join(e.dir, "node.json"))
	err := hostNS.Do(func(ns.NetNS) error {
		cur, err := host.CurrentNetns()
		if err != nil {
			return err
		}
		defer cur.Close()
		id, err := standin.NetnsID(cur)
		if err != nil {
			return err
		}
		return e.node.Update(func(s *standin.State) error {
			s.HostNetns = id
			for i := 0; i < n; i++ {
				if err := addVethVF(i); err != nil {
					return err
				}
				s.VFs[vfAddr(i)] = &standin.VF{PFName: pfName, PFAddress: pfAddress, Index: i, Driver: "iavf",
					Settings: host.VFSettings{MAC: "00:00:00:00:00:00", SpoofChk: true, LinkState: "auto", VLANProto: host.VLANProto8021Q}}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func addVethVF(i int) error {
	mac, _ := net.ParseMAC(vfMAC(i))
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU, la.HardwareAddr = vfNetdev(i), 1500, mac
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: fmt.Sprintf("peer%d", i)}); err != nil {
		return fmt.Errorf("add veth %s: %w", la.Name, err)
	}
	l, err := netlink.LinkByName(la.Name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetAlias(l, vfAddr(i)); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

// newNS is a network namespace removed at the end of the test.
func newNS(t testing.TB) ns.NetNS {
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

func (e *env) dirs() map[string]any {
	return map[string]any{
		"cacheDir":       filepath.Join(e.dir, "cache"),
		"attachmentsDir": filepath.Join(e.dir, "attachments"),
		"lockDir":        filepath.Join(e.dir, "locks"),
		"statsDir":       filepath.Join(e.dir, "stats"),
		"draClaimsDir":   filepath.Join(e.dir, "dra", "claims"),
	}
}

// conf is a network configuration for VF pci; extra keys are set, nil
// values removed.
func (e *env) conf(pci string, extra map[string]any) []byte {
	m := map[string]any{
		"cniVersion": "1.1.0", "name": network, "type": "sluice-cni", "deviceID": pci,
		"ipam": map[string]any{"type": "host-local", "subnet": subnet, "dataDir": filepath.Join(e.dir, "ipam")},
	}
	for k, v := range e.dirs() {
		m[k] = v
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// plugin is a fresh Plugin on the stand-in node; stderr goes to the test log.
func (e *env) plugin(stdout *bytes.Buffer) *plugin.Plugin {
	p := plugin.New(e.node)
	p.Stdout, p.Stderr = stdout, logWriter{e.t}
	p.LockTimeout = 200 * time.Millisecond
	p.HolderWait = 200 * time.Millisecond
	return p
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func cmdArgs(pod ns.NetNS, cid, ifName string, conf []byte) *skel.CmdArgs {
	path := ""
	if pod != nil {
		path = pod.Path()
	}
	return &skel.CmdArgs{ContainerID: cid, Netns: path, IfName: ifName, StdinData: conf, Path: binDir,
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ml;K8S_POD_NAME=pod-" + cid}
}

// in runs f in the node's namespace, as the runtime runs the plugin.
func (e *env) in(f func() error) error {
	return e.hostNS.Do(func(ns.NetNS) error { return f() })
}

func (e *env) add(args *skel.CmdArgs) (*current.Result, error) {
	var out bytes.Buffer
	if err := e.in(func() error { return e.plugin(&out).CmdAdd(args) }); err != nil {
		return nil, err
	}
	r, err := current.NewResult(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("parse result %q: %w", out.String(), err)
	}
	return current.NewResultFromResult(r)
}

func (e *env) mustAdd(args *skel.CmdArgs) *current.Result {
	e.t.Helper()
	r, err := e.add(args)
	if err != nil {
		e.t.Fatalf("ADD %s/%s: %v", args.ContainerID, args.IfName, err)
	}
	return r
}

func (e *env) del(args *skel.CmdArgs) error {
	return e.in(func() error { return e.plugin(&bytes.Buffer{}).CmdDel(args) })
}

func (e *env) mustDel(args *skel.CmdArgs) {
	e.t.Helper()
	if err := e.del(args); err != nil {
		e.t.Fatalf("DEL %s/%s: %v", args.ContainerID, args.IfName, err)
	}
}

func (e *env) check(args *skel.CmdArgs) error {
	return e.in(func() error { return e.plugin(&bytes.Buffer{}).CmdCheck(args) })
}

// linkState is what the tests compare of a link.
type linkState struct {
	Name, MAC, Alias string
	MTU              int
	Up               bool
	Addrs            []string
}

// links lists the links of a namespace (loopback and veth peers aside).
func links(t testing.TB, n ns.NetNS) map[string]linkState {
	t.Helper()
	out := map[string]linkState{}
	err := n.Do(func(ns.NetNS) error {
		ls, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range ls {
			a := l.Attrs()
			if a.Name == "lo" || strings.HasPrefix(a.Name, "peer") {
				continue
			}
			st := linkState{Name: a.Name, MAC: a.HardwareAddr.String(), Alias: a.Alias, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			for _, ad := range addrs {
				st.Addrs = append(st.Addrs, ad.IPNet.String())
			}
			out[a.Name] = st
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// files lists the files under dir (relative paths), lock files aside.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// ipamLeases are host-local's reservations (files named by IP address).
func (e *env) ipamLeases() []string {
	var out []string
	for _, f := range files(e.t, filepath.Join(e.dir, "ipam")) {
		if net.ParseIP(filepath.Base(f)) != nil {
			out = append(out, f)
		}
	}
	return out
}

func (e *env) state() standin.State {
	e.t.Helper()
	s, err := e.node.Read()
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// snapshot is everything an operation may change.
type snapshot struct {
	Host                       map[string]linkState
	Cache, Attachments, Leases []string
	VFs                        map[string]standin.VF
	// CDI are the CDI spec files, SoftRoCE the soft-RoCE devices.
	CDI      []string
	SoftRoCE []string
}

func (e *env) snapshot() snapshot {
	s := snapshot{Host: links(e.t, e.hostNS), Cache: files(e.t, filepath.Join(e.dir, "cache")),
		Attachments: files(e.t, filepath.Join(e.dir, "attachments")), Leases: e.ipamLeases(), VFs: map[string]standin.VF{}}
	st := e.state()
	for k, v := range st.VFs {
		s.VFs[k] = *v
	}
	s.CDI = files(e.t, filepath.Join(e.dir, "cdi"))
	for name := range st.SoftRoCE {
		s.SoftRoCE = append(s.SoftRoCE, name)
	}
	sort.Strings(s.SoftRoCE)
	return s
}

func (e *env) requireSame(before snapshot, what string) {
	e.t.Helper()
	after := e.snapshot()
	a, _ := json.MarshalIndent(before, "", " ")
	b, _ := json.MarshalIndent(after, "", " ")
	if !bytes.Equal(a, b) {
		e.t.Fatalf("%s changed the node:\nbefore %s\nafter  %s", what, a, b)
	}
}

func (e *env) record(pci string) (nodefiles.Record, bool) {
	r, ok, err := nodefiles.NewAttachments(filepath.Join(e.dir, "attachments")).Get(pci)
	if err != nil {
		e.t.Fatal(err)
	}
	return r, ok
}

func cniCode(err error) uint {
	var ce *types.Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// podLinks is links of a pod namespace.
func podLinks(t testing.TB, pod ns.NetNS) map[string]linkState { return links(t, pod) }
