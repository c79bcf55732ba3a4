package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-net/sluice/test/node/vm"
)

// Suite is what a guest suite (a package under test/node/guest with
// //go:build nodetest test files) needs from the host. Suites not listed in
// hostSuites run with the zero Suite (1 PF, no IOMMU, shared VM). Define one
// in a file of this package, e.g. test/node/<suite>_host_test.go, and add it
// to hostSuites:
//
//	func cniSuite() Suite {
//		return Suite{Name: "cni", PFs: 1, Setup: func(t *testing.T, h *Host) {
//			h.GoBuild(t, "sluice-cni", "./cni")
//			h.Setenv("SLUICE_API", h.GuestAddr(apiServerAddr))
//		}}
//	}
type Suite struct {
	// Name is the suite's directory under test/node/guest.
	Name string
	// PFs is the number of igb PFs the suite needs (1 or 2; 0 means 1).
	PFs int
	// IOMMU asks for the emulated IOMMU (vfio-pci binding).
	IOMMU bool
	// Isolated boots a VM for this suite alone instead of sharing one with
	// the other suites (the shared VM gets the most PFs any of them asks for
	// and an IOMMU if any asks). Use it for suites that change boot-time
	// state or need KernelArgs.
	Isolated bool
	// KernelArgs are added to the kernel command line (Isolated suites only).
	KernelArgs []string
	// First runs the suite before the other suites of its VM (in name
	// order otherwise). The probe suite uses it: it measures the node as
	// booted, before any other suite touched it.
	First bool
	// Timeout is the guest binary's -test.timeout (default 5 minutes).
	Timeout time.Duration
	// Setup runs on the host before the VM boots: start servers the guest
	// talks to (h.Listen, h.GuestAddr), put binaries in the run directory
	// (h.AddFile, h.GoBuild), set the suite's environment (h.Setenv).
	// Cleanups registered on t run after the VM is gone.
	Setup func(t *testing.T, h *Host)
	// Check runs on the host after the suite's guest tests were replayed,
	// as TestGuest/<suite>/HostCheck, e.g. to inspect the files the guest
	// wrote to h.OutDir() (h.GuestResult tells which guest tests ran).
	Check func(t *testing.T, h *Host)
}

// hostSuites are the suites with host-side needs, by name.
func hostSuites() (map[string]Suite, error) {
	m := map[string]Suite{}
	for _, s := range []Suite{probeSuite(), agentSuite(), cniSuite(), devicePluginSuite(), hostLayerSuite()} {
		if _, dup := m[s.Name]; dup {
			return nil, fmt.Errorf("suite %s defined twice", s.Name)
		}
		m[s.Name] = s
	}
	return m, nil
}

// Host is a suite's view of the host side of a run.
type Host struct {
	suite   string
	runDir  string
	root    string
	env     map[string]string
	results map[string]string
}

func newHost(suite, runDir, root string) *Host {
	return &Host{suite: suite, runDir: runDir, root: root, env: map[string]string{}}
}

// GuestResult is what a guest test of the suite did, for Check: "pass",
// "fail", "skip", or "" when it did not run (e.g. filtered out with -run).
func (h *Host) GuestResult(test string) string { return h.results[test] }

// Setenv sets an environment variable for the suite's guest test binary.
func (h *Host) Setenv(key, value string) { h.env[key] = value }

// RunDir is the run directory, at the same path on the host and in the guest.
func (h *Host) RunDir() string { return h.runDir }

// OutDir is where the suite's guest tests write files for the host
// (SLUICE_NODE_OUTDIR in the guest).
func (h *Host) OutDir() string { return filepath.Join(h.runDir, "out", h.suite) }

// Path is where a file named name goes for this suite in the run directory
// (the same path in the guest); its directory exists.
func (h *Host) Path(name string) string {
	dir := filepath.Join(h.runDir, "files", h.suite)
	_ = os.MkdirAll(dir, 0o755)
	return filepath.Join(dir, name)
}

// AddFile copies a host file into the run directory and returns its path
// (valid in the guest too).
func (h *Host) AddFile(t *testing.T, name, src string) string {
	t.Helper()
	dst := h.Path(name)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("add %s: %v", src, err)
	}
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	return dst
}

// GoBuild builds a main package of this module (e.g. "./cni") into the run
// directory as name and returns its path (valid in the guest too).
func (h *Host) GoBuild(t *testing.T, name, pkg string, env ...string) string {
	t.Helper()
	dst := h.Path(name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin(), "build", "-o", dst, pkg)
	cmd.Dir = h.root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -o %s %s: %v\n%s", dst, pkg, err, out)
	}
	return dst
}

// Listen opens a TCP listener on the host's loopback and returns it with
// the address the guest dials to reach it (10.0.2.2:port). It is closed when
// the test ends.
func (h *Host) Listen(t *testing.T) (net.Listener, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, h.GuestAddr(l.Addr().String())
}

// GuestAddr turns a host loopback address (127.0.0.1:port, e.g. an envtest
// API server) into the address the guest dials.
func (h *Host) GuestAddr(hostAddr string) string {
	_, port, err := net.SplitHostPort(hostAddr)
	if err != nil {
		return hostAddr
	}
	return net.JoinHostPort(vm.HostIP, port)
}

// guestSuite is a discovered guest package.
type guestSuite struct {
	Suite
	ImportPath string
	Dir        string
	host       *Host
}

// discoverSuites lists the packages with test files under test/node/guest.
func discoverSuites(ctx context.Context, root string) ([]*guestSuite, error) {
	cmd := exec.CommandContext(ctx, goBin(), "list", "-tags", "nodetest",
		"-f", "{{.ImportPath}}|{{.Dir}}|{{len .TestGoFiles}}|{{len .XTestGoFiles}}", "./test/node/guest/...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("go list ./test/node/guest/...: %w: %s", err, ee.Stderr)
		}
		return nil, err
	}
	registry, err := hostSuites()
	if err != nil {
		return nil, err
	}
	var suites []*guestSuite
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 || (f[2] == "0" && f[3] == "0") {
			continue
		}
		name := filepath.Base(f[1])
		s := registry[name]
		s.Name = name
		suites = append(suites, &guestSuite{Suite: s, ImportPath: f[0], Dir: f[1]})
	}
	sort.Slice(suites, func(i, j int) bool {
		if suites[i].First != suites[j].First {
			return suites[i].First
		}
		return suites[i].Name < suites[j].Name
	})
	for name := range registry {
		found := false
		for _, s := range suites {
			found = found || s.Name == name
		}
		if !found {
			return nil, fmt.Errorf("suite %q is registered but test/node/guest/%s has no nodetest test files", name, name)
		}
	}
	return suites, nil
}

// vmGroup is a set of suites run one after another in one VM.
type vmGroup struct {
	name   string
	opts   vm.Options
	suites []*guestSuite
}

// groupSuites puts every non-isolated suite in one shared VM sized for all
// of them, and each isolated suite in a VM of its own.
func groupSuites(suites []*guestSuite) []*vmGroup {
	shared := &vmGroup{name: "shared", opts: vm.Options{PFs: 1}}
	var groups []*vmGroup
	for _, s := range suites {
		pfs := s.PFs
		if pfs == 0 {
			pfs = 1
		}
		if s.Isolated {
			groups = append(groups, &vmGroup{name: s.Name,
				opts:   vm.Options{PFs: pfs, IOMMU: s.IOMMU, KernelArgs: s.KernelArgs},
				suites: []*guestSuite{s}})
			continue
		}
		shared.suites = append(shared.suites, s)
		shared.opts.PFs = max(shared.opts.PFs, pfs)
		shared.opts.IOMMU = shared.opts.IOMMU || s.IOMMU
	}
	if len(shared.suites) > 0 {
		groups = append([]*vmGroup{shared}, groups...)
	}
	return groups
}
