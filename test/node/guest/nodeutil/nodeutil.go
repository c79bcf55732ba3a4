// Package nodeutil helps guest test suites (test/node/guest/<suite>) drive
// the emulated node: its PFs, VFs, network namespaces and commands, with
// bounded polls instead of sleeps. It only does something useful inside the
// VM booted by test/node (SLUICE_NODE=1); see docs/emulated-node.md.
package nodeutil

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Require skips the test unless it runs inside the emulated node.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv("SLUICE_NODE") != "1" {
		t.Skip("not inside the emulated node (SLUICE_NODE != 1): run go test ./test/node/")
	}
}

// HostIP is the address of the host's loopback as seen from the guest.
func HostIP() string {
	if ip := os.Getenv("SLUICE_NODE_HOST_IP"); ip != "" {
		return ip
	}
	return "10.0.2.2"
}

// OutDir is the directory where this suite's files reach the host
// (SLUICE_NODE_OUTDIR), created if needed.
func OutDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SLUICE_NODE_OUTDIR")
	if dir == "" {
		t.Fatal("SLUICE_NODE_OUTDIR is not set")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// RunDir is the run directory shared with the host (SLUICE_NODE_RUNDIR):
// host-provided files (Host.AddFile) are there.
func RunDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SLUICE_NODE_RUNDIR")
	if dir == "" {
		t.Fatal("SLUICE_NODE_RUNDIR is not set")
	}
	return dir
}

// Exec runs a command with a timeout and returns its combined output.
func Exec(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// Run runs a command (30 s timeout) and fails the test if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := Exec(30*time.Second, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Poll calls cond every interval until it returns true or timeout passes,
// then fails the test with what and the last error.
func Poll(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := PollErr(timeout, interval, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// PollErr is Poll returning an error instead of failing.
func PollErr(timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("not true after %s: %w", timeout, last)
			}
			return fmt.Errorf("not true after %s", timeout)
		}
		time.Sleep(interval)
	}
}

// ReadFile returns a (sysfs) file's content, trimmed.
func ReadFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// MustRead is ReadFile failing the test on error.
func MustRead(t testing.TB, path string) string {
	t.Helper()
	s, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Write writes a (sysfs) file.
func Write(path, value string) error {
	return os.WriteFile(path, []byte(value), 0o644)
}

// MustWrite is Write failing the test on error.
func MustWrite(t testing.TB, path, value string) {
	t.Helper()
	if err := Write(path, value); err != nil {
		t.Fatalf("write %q to %s: %v", value, path, err)
	}
}

// PF is an SR-IOV physical function of the emulated node.
type PF struct {
	Netdev string // e.g. eth0
	PCI    string // e.g. 0000:01:00.0
}

// Device is the PF's sysfs PCI device directory.
func (p PF) Device() string { return "/sys/bus/pci/devices/" + p.PCI }

// PFs returns the node's igb PFs in PCI order (SLUICE_NODE_PFS and
// SLUICE_NODE_PF_PCI, set by the node's init).
func PFs(t testing.TB) []PF {
	t.Helper()
	names := strings.Fields(os.Getenv("SLUICE_NODE_PFS"))
	pcis := strings.Fields(os.Getenv("SLUICE_NODE_PF_PCI"))
	if len(names) == 0 || len(names) != len(pcis) {
		t.Fatalf("SLUICE_NODE_PFS=%q SLUICE_NODE_PF_PCI=%q: no PFs", names, pcis)
	}
	pfs := make([]PF, len(names))
	for i := range names {
		pfs[i] = PF{Netdev: names[i], PCI: pcis[i]}
	}
	return pfs
}

// VF is a virtual function: its index on the PF, PCI address and netdev (empty
// when bound to a driver without one, e.g. vfio-pci).
type VF struct {
	Index  int
	PCI    string
	Netdev string
}

// Device is the VF's sysfs PCI device directory.
func (v VF) Device() string { return "/sys/bus/pci/devices/" + v.PCI }

// Driver returns the name of the driver bound to a PCI device ("" if none).
func Driver(pci string) string {
	l, err := os.Readlink("/sys/bus/pci/devices/" + pci + "/driver")
	if err != nil {
		return ""
	}
	return filepath.Base(l)
}

// ListVFs returns the PF's current VFs from its virtfnN links.
func ListVFs(pf PF) ([]VF, error) {
	links, err := filepath.Glob(pf.Device() + "/virtfn*")
	if err != nil {
		return nil, err
	}
	var vfs []VF
	for _, l := range links {
		idx, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(l), "virtfn"))
		if err != nil {
			continue
		}
		target, err := os.Readlink(l)
		if err != nil {
			return nil, err
		}
		vf := VF{Index: idx, PCI: filepath.Base(target)}
		if nets, _ := os.ReadDir(l + "/net"); len(nets) == 1 {
			vf.Netdev = nets[0].Name()
		}
		vfs = append(vfs, vf)
	}
	sort.Slice(vfs, func(i, j int) bool { return vfs[i].Index < vfs[j].Index })
	return vfs, nil
}

// SetNumVFs writes sriov_numvfs (through 0 when changing a non-zero count)
// and waits until exactly n VFs exist, each with a netdev when n > 0.
func SetNumVFs(t testing.TB, pf PF, n int) []VF {
	t.Helper()
	path := pf.Device() + "/sriov_numvfs"
	cur, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cur != "0" && cur != strconv.Itoa(n) {
		MustWrite(t, path, "0")
	}
	if cur != strconv.Itoa(n) {
		MustWrite(t, path, strconv.Itoa(n))
	}
	var vfs []VF
	Poll(t, 60*time.Second, 100*time.Millisecond, fmt.Sprintf("%d VFs with netdevs on %s", n, pf.Netdev), func() (bool, error) {
		var err error
		vfs, err = ListVFs(pf)
		if err != nil || len(vfs) != n {
			return false, fmt.Errorf("%d VFs (%v)", len(vfs), err)
		}
		for _, vf := range vfs {
			if vf.Netdev == "" {
				return false, fmt.Errorf("VF %d (%s) has no netdev yet", vf.Index, vf.PCI)
			}
		}
		return true, nil
	})
	return vfs
}

// VFs creates n VFs on pf and removes them (sriov_numvfs=0) when the test
// ends.
func VFs(t testing.TB, pf PF, n int) []VF {
	t.Helper()
	t.Cleanup(func() {
		if err := Write(pf.Device()+"/sriov_numvfs", "0"); err != nil {
			t.Errorf("cleanup: sriov_numvfs=0 on %s: %v", pf.Netdev, err)
		}
	})
	return SetNumVFs(t, pf, n)
}

// Netns creates a network namespace ("ip netns add") with lo up and deletes
// it when the test ends. Netdevs in it return to the initial namespace
// (physical devices and VFs do) when it is deleted.
func Netns(t testing.TB, name string) string {
	t.Helper()
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := Exec(30*time.Second, "ip", "netns", "del", name); err != nil {
			t.Errorf("cleanup: %v: %s", err, out)
		}
	})
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// NetnsExec runs a command inside a network namespace.
func NetnsExec(timeout time.Duration, ns, name string, args ...string) (string, error) {
	return Exec(timeout, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// IBDevices lists /sys/class/infiniband as seen from the calling namespace.
func IBDevices() []string {
	entries, _ := os.ReadDir("/sys/class/infiniband")
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// AddRXE creates a soft-RoCE device on netdev ("rdma link add NAME type rxe
// netdev NETDEV", optionally from inside a network namespace) and deletes it
// when the test ends if it still exists.
func AddRXE(t testing.TB, netns, name, netdev string) {
	t.Helper()
	args := []string{"link", "add", name, "type", "rxe", "netdev", netdev}
	var err error
	var out string
	if netns == "" {
		out, err = Exec(30*time.Second, "rdma", args...)
	} else {
		out, err = NetnsExec(30*time.Second, netns, "rdma", args...)
	}
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { DeleteRXE(name) })
}

// DeleteRXE removes a soft-RoCE device if it exists (from the initial
// namespace, where rxe devices live).
func DeleteRXE(name string) {
	if _, err := os.Stat("/sys/class/infiniband/" + name); err == nil {
		_, _ = Exec(30*time.Second, "rdma", "link", "delete", name)
	}
}

// WaitRDMAActive waits until port 1 of an RDMA device is ACTIVE (an rxe
// port follows its netdev's carrier, which takes a moment after "up").
func WaitRDMAActive(t testing.TB, dev string) {
	t.Helper()
	Poll(t, 30*time.Second, 100*time.Millisecond, dev+" port 1 ACTIVE", func() (bool, error) {
		s, err := ReadFile("/sys/class/infiniband/" + dev + "/ports/1/state")
		return strings.HasSuffix(s, "ACTIVE"), fmt.Errorf("state %q (%v)", s, err)
	})
}

// GIDIndex waits for the RoCE v2 GID of an IPv4 address on port 1 of an RDMA
// device and returns its index (the GID table fills in asynchronously after
// an address is added).
func GIDIndex(t testing.TB, dev, ipv4 string) int {
	t.Helper()
	idx, err := GIDIndexErr(dev, ipv4, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// GIDIndexErr is GIDIndex returning an error instead of failing a test.
func GIDIndexErr(dev, ipv4 string, timeout time.Duration) (int, error) {
	want, err := ipv4GID(ipv4)
	if err != nil {
		return -1, err
	}
	idx := -1
	err = PollErr(timeout, 100*time.Millisecond, func() (bool, error) {
		files, err := filepath.Glob("/sys/class/infiniband/" + dev + "/ports/1/gids/*")
		if err != nil || len(files) == 0 {
			return false, fmt.Errorf("no gids: %v", err)
		}
		for _, f := range files {
			if g, err := ReadFile(f); err == nil && g == want {
				idx, err = strconv.Atoi(filepath.Base(f))
				return err == nil, err
			}
		}
		return false, fmt.Errorf("no GID %s on %s yet", want, dev)
	})
	if err != nil {
		return -1, fmt.Errorf("GID of %s on %s: %w", ipv4, dev, err)
	}
	return idx, nil
}

func ipv4GID(ip string) (string, error) {
	parts := strings.Split(ip, ".")
	if len(parts) != 4 {
		return "", fmt.Errorf("not an IPv4 address: %q", ip)
	}
	var b [4]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return "", fmt.Errorf("not an IPv4 address: %q", ip)
		}
		b[i] = n
	}
	return fmt.Sprintf("0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x", b[0], b[1], b[2], b[3]), nil
}

// WaitTCPListen waits until something listens on TCP port in the network
// namespace netns ("" for the initial one), reading /proc/net/tcp{,6}.
func WaitTCPListen(t testing.TB, netns string, port int) {
	t.Helper()
	if err := WaitTCPListenErr(netns, port, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// WaitTCPListenErr is WaitTCPListen returning an error.
func WaitTCPListenErr(netns string, port int, timeout time.Duration) error {
	hexPort := fmt.Sprintf(":%04X", port)
	err := PollErr(timeout, 100*time.Millisecond, func() (bool, error) {
		var out string
		var err error
		if netns == "" {
			out, err = Exec(10*time.Second, "cat", "/proc/net/tcp", "/proc/net/tcp6")
		} else {
			out, err = NetnsExec(10*time.Second, netns, "cat", "/proc/net/tcp", "/proc/net/tcp6")
		}
		if err != nil {
			return false, err
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			// sl local_address rem_address st ...; st 0A is LISTEN.
			if len(f) > 3 && strings.HasSuffix(f[1], hexPort) && f[3] == "0A" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("listener on TCP port %d: %w", port, err)
	}
	return nil
}

// Proc is a command running in the background.
type Proc struct {
	name   string
	args   []string
	out    bytes.Buffer
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start starts a command in the background, killed after timeout.
func Start(timeout time.Duration, name string, args ...string) *Proc {
	p := &Proc{name: name, args: args, done: make(chan struct{})}
	p.ctx, p.cancel = context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(p.ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		p.err = err
		close(p.done)
		return p
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// Wait waits for the command and returns its combined output and error.
func (p *Proc) Wait() (string, error) {
	<-p.done
	p.cancel()
	err := p.err
	if err != nil && p.ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out: %w", err)
	}
	if err != nil {
		err = fmt.Errorf("%s %s: %w", p.name, strings.Join(p.args, " "), err)
	}
	return p.out.String(), err
}

// WaitOrKill waits up to grace for the command to exit on its own, then
// kills it, and returns like Wait.
func (p *Proc) WaitOrKill(grace time.Duration) (string, error) {
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cancel()
	}
	return p.Wait()
}
