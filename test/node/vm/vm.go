// Package vm boots an emulated sluice node: a QEMU virtual machine (software
// emulation, TCG) running Debian's backports kernel with one or two emulated
// Intel 82576 NICs ("igb", SR-IOV capable: 7 VFs each) and the host's root
// file system shared read-only over 9p, so the guest runs the host's
// binaries and tools (ip, rdma, perftest, test binaries built on the host)
// against a real kernel with SR-IOV, soft-RoCE (rdma_rxe), VFIO and network
// namespaces.
//
// Run writes the caller's script into a run directory that the guest mounts
// read-write at the same path as on the host, boots the VM, runs the script
// as root once the node is up and returns its exit code together with the
// serial console. See docs/emulated-node.md.
package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultModules returns the modules loaded in the guest before the script runs, as udev and
// rdma-core would on a real node: the PF and VF drivers (so VFs bind to igbvf
// as soon as they exist), the management NIC's driver and the RDMA user-space
// interfaces (/dev/infiniband/uverbsN, rdma_cm). rdma_rxe is left to the
// kernel's module auto-loading ("rdma link add ... type rxe").
func DefaultModules() []string {
	return []string{"igb", "igbvf", "virtio_net", "ib_uverbs", "rdma_ucm"}
}

// HostIP is the address at which the guest reaches the host's loopback
// (QEMU user networking on the management NIC).
const HostIP = "10.0.2.2"

// Options configure one VM run.
type Options struct {
	// Script is the POSIX shell script the guest runs as root once the node
	// is up, with the run directory as working directory, stdin from
	// /dev/null and stdout/stderr on the serial console. Its exit status is
	// Result.ExitCode. Required.
	Script string
	// Env is exported to Script, on top of the SLUICE_NODE_* variables (see
	// the package documentation in docs/emulated-node.md). Names must be
	// shell identifiers.
	Env map[string]string
	// RunDir is the host directory the guest mounts read-write at the same
	// path (not under /tmp: the guest's /tmp is its own tmpfs). Put guest
	// binaries and inputs there; the guest writes its outputs there. Empty
	// means a new directory under <CacheDir>/runs, returned in
	// Result.RunDir; the caller removes it.
	RunDir string
	// HostDirs are host directories the guest needs at the same path, such
	// as the package directory a test binary runs in. Everything outside
	// /tmp is visible already through the shared root; a directory under
	// /tmp (a fresh tmpfs in the guest) is bound back from the host's /tmp,
	// so that a clone under /tmp works too.
	HostDirs []string
	// Files are copied into RunDir before boot: run-directory-relative
	// destination -> host source path. File modes are kept.
	Files map[string]string
	// PFs is the number of emulated igb NICs (SR-IOV PFs, 7 VFs each): 1
	// (the default) or 2. All PFs hang off one emulated hub, so VFs of
	// different PFs reach each other like ports on one switch.
	PFs int
	// SplitRoots puts each PF under a PCIe root complex of its own (the
	// second behind a pxb-pcie expander bridge, root bus 0x80), as on a
	// server whose NICs hang off different host bridges or sockets: their
	// VFs then differ in resource.kubernetes.io/pcieRoot. Otherwise every
	// PF sits behind a root port of the one root complex.
	SplitRoots bool
	// IOMMU adds QEMU's emulated Intel IOMMU and boots with intel_iommu=on:
	// PCI devices get IOMMU groups and VFs can bind to vfio-pci. (The kernel
	// has no VFIO no-IOMMU mode, so without it vfio-pci refuses to probe.)
	IOMMU bool
	// CPUs and MemoryMB size the VM: 2 and 2048 by default. Stay below
	// 2816 MiB: from there on (RAM above 4 GiB in q35's layout) QEMU 10's
	// igb stops raising its PF's mailbox interrupt, so VFs never get
	// carrier (measured: 2560 works, 2816, 3072 and 4096 do not).
	CPUs     int
	MemoryMB int
	// MultiThreadTCG runs each vCPU on its own host thread. Off by default:
	// QEMU 10's multi-threaded TCG can abort (iotlb_to_section assertion)
	// when the guest changes the PCI memory map, as destroying VFs does,
	// while another vCPU thread is in an MMIO access. One thread is ~20%
	// slower and has not aborted.
	MultiThreadTCG bool
	// Modules are loaded (modprobe) before Script runs; nil means
	// DefaultModules(). Use an empty non-nil slice to load none.
	Modules []string
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string
	// Timeout bounds the whole run (boot included); 10 minutes by default.
	// The context's deadline applies too.
	Timeout time.Duration
	// Console, when set, receives the serial console as it arrives.
	Console io.Writer
	// CacheDir holds the initrd cache and default run directories;
	// DefaultCacheDir() when empty.
	CacheDir string
	// Kernel is the guest kernel; ChooseKernel() when nil.
	Kernel *Kernel
	// QEMU is the emulator binary; qemu-system-x86_64 when empty.
	QEMU string
	// Forwards are TCP ports on the host's loopback forwarded to the
	// guest's management address (QEMU user networking's hostfwd), so that
	// the host reaches servers in a running guest (the real-cluster node's
	// kubelet and its exec server).
	Forwards []Forward
	// Disk is a raw disk image attached as the guest's /dev/vda
	// (virtio-blk): state that persists across runs of the same node, as a
	// real node's /var does across reboots. Empty: none.
	Disk string
}

// Forward is one host loopback port forwarded to a guest port.
type Forward struct {
	HostPort, GuestPort int
}

// Result is what a run produced.
type Result struct {
	// ExitCode is the script's exit status (125: the node failed to come up).
	ExitCode int
	// Console is the whole serial console.
	Console string
	// RunDir is the run directory (with whatever the guest wrote there).
	RunDir string
	// Boot is the time from starting QEMU to the node being ready (just
	// before the script starts); Duration the time to QEMU's exit.
	Boot, Duration time.Duration
	// Command is the QEMU command line.
	Command []string
	// Kernel is the kernel the guest booted, with why it was chosen.
	Kernel *Kernel
}

// DefaultCacheDir is ${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}/node.
func DefaultCacheDir() string {
	base := os.Getenv("SLUICE_CACHE")
	if base == "" {
		xdg := os.Getenv("XDG_CACHE_HOME")
		if xdg == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				home = "/var/tmp"
			}
			xdg = filepath.Join(home, ".cache")
		}
		base = filepath.Join(xdg, "sluice")
	}
	return filepath.Join(base, "node")
}

// NewRunDir creates a fresh run directory under <cacheDir>/runs (cacheDir
// empty: DefaultCacheDir()) and removes run directories there older than a
// day, left behind by failed runs.
func NewRunDir(cacheDir string) (string, error) {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	runs := filepath.Join(cacheDir, "runs")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		return "", err
	}
	if entries, err := os.ReadDir(runs); err == nil {
		for _, e := range entries {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
				_ = os.RemoveAll(filepath.Join(runs, e.Name()))
			}
		}
	}
	return os.MkdirTemp(runs, time.Now().Format("20060102-150405-"))
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// exitMarker is printed by stage 2 with the script's exit status.
var exitMarker = regexp.MustCompile(`(?m)SLUICE_NODE_EXIT=(\d+)`)

const readyMarker = "sluice-node: ready at "

// panicLine finds a guest kernel panic on the console.
var panicLine = regexp.MustCompile(`Kernel panic - not syncing: .*`)

// Run boots the VM, runs opts.Script in it and returns when the VM has
// powered off. The error is non-nil when the VM could not start or did not
// report an exit code (timeout, crash); Result is then still returned when
// QEMU ran, for its console. A script exiting non-zero is not an error:
// check Result.ExitCode.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Script == "" {
		return nil, errors.New("vm: Options.Script is empty")
	}
	if opts.PFs == 0 {
		opts.PFs = 1
	}
	if opts.PFs < 1 || opts.PFs > 2 {
		return nil, fmt.Errorf("vm: PFs must be 1 or 2, not %d", opts.PFs)
	}
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 2048
	}
	if opts.Modules == nil {
		opts.Modules = DefaultModules()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	if opts.QEMU == "" {
		opts.QEMU = "qemu-system-x86_64"
	}
	if opts.Kernel == nil {
		k, err := ChooseKernel()
		if err != nil {
			return nil, err
		}
		opts.Kernel = k
	}
	for k := range opts.Env {
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("vm: environment variable name %q is not a shell identifier", k)
		}
	}
	if opts.RunDir == "" {
		dir, err := NewRunDir(opts.CacheDir)
		if err != nil {
			return nil, err
		}
		opts.RunDir = dir
	}
	runDir, err := filepath.Abs(opts.RunDir)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(runDir, " \t\n,'\"\\") {
		return nil, fmt.Errorf("vm: run directory %q: spaces, commas, quotes and backslashes are not supported", runDir)
	}
	if runDir == "/tmp" || strings.HasPrefix(runDir, "/tmp/") {
		return nil, fmt.Errorf("vm: run directory %q is under /tmp, which is a fresh tmpfs in the guest", runDir)
	}
	for _, d := range opts.HostDirs {
		if !filepath.IsAbs(d) || strings.ContainsAny(d, " \t\n,'\"\\") {
			return nil, fmt.Errorf("vm: host directory %q: give an absolute path without spaces, commas, quotes or backslashes", d)
		}
	}
	if strings.ContainsAny(opts.Disk, " \t\n,'\"\\") {
		return nil, fmt.Errorf("vm: disk image %q: spaces, commas, quotes and backslashes are not supported", opts.Disk)
	}
	for _, f := range opts.Forwards {
		if f.HostPort <= 0 || f.HostPort > 65535 || f.GuestPort <= 0 || f.GuestPort > 65535 {
			return nil, fmt.Errorf("vm: forward %d->%d: ports must be 1..65535", f.HostPort, f.GuestPort)
		}
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	for dst, src := range opts.Files {
		if err := CopyFile(src, filepath.Join(runDir, dst)); err != nil {
			return nil, fmt.Errorf("vm: copy %s into the run directory: %w", src, err)
		}
	}
	if err := os.WriteFile(filepath.Join(runDir, ".guest.sh"), []byte(opts.Script), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(runDir, ".node.env"), []byte(nodeEnv(runDir, opts)), 0o644); err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(runDir, ".exit-code"))

	initrd, err := Initrd(opts.CacheDir, opts.Kernel)
	if err != nil {
		return nil, fmt.Errorf("vm: initrd: %w", err)
	}
	args := qemuArgs(opts, initrd, runDir)

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	res := &Result{RunDir: runDir, Command: append([]string{opts.QEMU}, args...), ExitCode: -1, Kernel: opts.Kernel}
	if opts.Console != nil {
		why := opts.Kernel.Why
		if why == "" {
			why = "given by the caller"
		}
		fmt.Fprintf(opts.Console, "sluice-node: harness: booting kernel %s (%s)\n", opts.Kernel.Version, why)
	}
	start := time.Now()
	var runErr error
	var earlier []string
	// Multi-threaded TCG in QEMU 10.0 rarely aborts early in boot
	// ("iotlb_to_section: Assertion ... failed"). Nothing has run in the
	// guest before the node is ready, so such a run is retried.
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, opts.QEMU, args...)
		cmd.Stdin = nil
		cmd.WaitDelay = 5 * time.Second
		con := &console{start: time.Now()}
		var out io.Writer = con
		if opts.Console != nil {
			out = io.MultiWriter(con, opts.Console)
		}
		cmd.Stdout, cmd.Stderr = out, out
		runErr = cmd.Run()
		res.Console = con.String()
		res.Boot = con.bootTime()
		if runErr == nil || res.Boot != 0 || ctx.Err() != nil || attempt == 3 {
			break
		}
		earlier = append(earlier, fmt.Sprintf("attempt %d: %v: %s", attempt, runErr, Tail(res.Console, 3)))
		if opts.Console != nil {
			fmt.Fprintf(opts.Console, "\nsluice-node: QEMU failed before the node was ready (%v); booting again\n", runErr)
		}
	}
	res.Duration = time.Since(start)
	if len(earlier) > 0 {
		res.Console = "[" + strings.Join(earlier, "]\n[") + "]\n" + res.Console
	}

	code, haveCode := -1, false
	if b, err := os.ReadFile(filepath.Join(runDir, ".exit-code")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			code, haveCode = n, true
		}
	}
	if !haveCode {
		if m := exitMarker.FindAllStringSubmatch(res.Console, -1); len(m) > 0 {
			code, _ = strconv.Atoi(m[len(m)-1][1])
			haveCode = true
		}
	}
	res.ExitCode = code
	if !haveCode {
		if m := panicLine.FindString(res.Console); m != "" {
			return res, fmt.Errorf("vm: the guest kernel panicked: %s", strings.TrimSpace(m))
		}
	}
	switch {
	case ctx.Err() != nil && !haveCode:
		return res, fmt.Errorf("vm: no result after %s (timeout %s): %w", res.Duration.Round(time.Second), opts.Timeout, ctx.Err())
	case !haveCode && runErr != nil:
		return res, fmt.Errorf("vm: %s: %w (no exit code reported; see the console)", opts.QEMU, runErr)
	case !haveCode:
		return res, errors.New("vm: the guest powered off without reporting an exit code; see the console")
	}
	return res, nil
}

// nodeEnv is the shell fragment stage 2 sources before running the script.
func nodeEnv(runDir string, opts Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "export SLUICE_NODE=1\n")
	fmt.Fprintf(&b, "export SLUICE_NODE_RUNDIR=%s\n", ShellQuote(runDir))
	fmt.Fprintf(&b, "export SLUICE_NODE_MODULES=%s\n", ShellQuote(strings.Join(opts.Modules, " ")))
	iommu := "0"
	if opts.IOMMU {
		iommu = "1"
	}
	fmt.Fprintf(&b, "export SLUICE_NODE_IOMMU=%s\n", iommu)
	fmt.Fprintf(&b, "export SLUICE_NODE_PF_COUNT=%d\n", opts.PFs)
	if opts.Kernel != nil {
		fmt.Fprintf(&b, "export SLUICE_NODE_KERNEL_MODULES=%s\n", ShellQuote(opts.Kernel.ModulesDir))
	}
	var tmpDirs []string
	for _, d := range opts.HostDirs {
		if d = filepath.Clean(d); strings.HasPrefix(d, "/tmp/") && !slices.Contains(tmpDirs, d) {
			tmpDirs = append(tmpDirs, d)
		}
	}
	fmt.Fprintf(&b, "export SLUICE_NODE_HOST_TMP_DIRS=%s\n", ShellQuote(strings.Join(tmpDirs, " ")))
	keys := make([]string, 0, len(opts.Env))
	for k := range opts.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, ShellQuote(opts.Env[k]))
	}
	return b.String()
}

// qemuArgs is the emulator command line: TCG (KVM cannot run a stock kernel
// on these machines), q35 for PCIe, the host root read-only and the run
// directory read-write over 9p, a virtio-net management NIC on QEMU user
// networking, and opts.PFs igb NICs behind PCIe root ports on one hub with
// its own user-networking uplink.
func qemuArgs(opts Options, initrd, runDir string) []string {
	cmdline := []string{"console=ttyS0", "quiet", "loglevel=4", "panic=-1", "random.trust_cpu=on",
		"sluice.rundir=" + runDir}
	thread := "single"
	if opts.MultiThreadTCG {
		thread = "multi"
	}
	args := []string{
		"-machine", "q35", "-accel", "tcg,thread=" + thread, "-cpu", "max",
		"-smp", strconv.Itoa(opts.CPUs), "-m", strconv.Itoa(opts.MemoryMB),
		"-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-monitor", "none",
		"-no-reboot",
	}
	if opts.IOMMU {
		// The IOMMU must come before the devices it translates for.
		args = append(args, "-device", "intel-iommu,intremap=off")
		// iommu=pt as SR-IOV nodes run (the sriov-network-operator sets
		// both): host drivers (igb, igbvf) map DMA one to one, devices
		// bound to vfio-pci are translated.
		cmdline = append(cmdline, "intel_iommu=on", "iommu=pt")
	}
	args = append(args,
		"-kernel", opts.Kernel.Image, "-initrd", initrd,
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-virtfs", "local,path="+runDir+",mount_tag=rundir,security_model=none,multidevs=remap",
		"-netdev", "user,id=mgmt"+hostForwards(opts.Forwards), "-device", "virtio-net-pci,netdev=mgmt,romfile=",
		"-netdev", "user,id=uplink,net=10.0.3.0/24", "-netdev", "hubport,id=hub0up,hubid=0,netdev=uplink",
	)
	for i := 0; i < opts.PFs; i++ {
		bus := ""
		if opts.SplitRoots && i > 0 {
			bus = fmt.Sprintf(",bus=pxb%d", i)
			args = append(args, "-device", fmt.Sprintf("pxb-pcie,id=pxb%d,bus_nr=%#x,bus=pcie.0", i, 0x80*i))
		}
		args = append(args,
			"-device", fmt.Sprintf("pcie-root-port,id=rp%d,slot=%d,chassis=%d%s", i+1, i+1, i+1, bus),
			"-netdev", fmt.Sprintf("hubport,id=pf%d,hubid=0", i),
			"-device", fmt.Sprintf("igb,bus=rp%d,netdev=pf%d,romfile=", i+1, i),
		)
	}
	if opts.Disk != "" {
		// On the root bus explicitly: QEMU would pick the last bus, a
		// pxb-pcie expander with SplitRoots, which takes only bridges.
		args = append(args, "-drive", "file="+opts.Disk+",if=none,id=disk0,format=raw,cache=unsafe,discard=unmap",
			"-device", "virtio-blk-pci,drive=disk0,bus=pcie.0,romfile=")
	}
	cmdline = append(cmdline, opts.KernelArgs...)
	return append(args, "-append", strings.Join(cmdline, " "))
}

// hostForwards is the hostfwd part of the management NIC's -netdev user.
func hostForwards(fw []Forward) string {
	var b strings.Builder
	for _, f := range fw {
		fmt.Fprintf(&b, ",hostfwd=tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort)
	}
	return b.String()
}

// console collects the serial output and notes when the node became ready.
type console struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	start time.Time
	ready time.Duration
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if c.ready == 0 && bytes.Contains(c.buf.Bytes(), []byte(readyMarker)) {
		c.ready = time.Since(c.start)
	}
	return len(p), nil
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *console) bootTime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CopyFile copies src to dst with src's permission bits, creating dst's
// directory.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, st.Mode().Perm())
}
