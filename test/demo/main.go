// Command demo is `make demo`: the whole of sluice on one machine.
//
// It installs what it needs (QEMU with the emulated igb NIC and a kernel
// with SR-IOV and soft-RoCE, envtest binaries built from source), starts a
// control plane (kube-apiserver + etcd), runs the operator against it,
// boots an emulated node (QEMU, igb SR-IOV NIC, soft-RoCE), and in the node
// runs the agent with its device plugin, a stand-in kubelet and the CNI
// plugin: a NetworkNodePolicy becomes VFs, advertised resources, two
// attached "pods" (network namespaces) that ping each other, and RDMA
// devices. Then it tears everything down and prints a summary.
//
// The node side is test/demo/node; it prints "demo|" lines on the serial
// console, which this program shows as they come.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/sluice-net/sluice/test/node/vm"
	"github.com/sluice-net/sluice/test/testenv"
)

// nodeName is the emulated node's Kubernetes name.
const nodeName = "emunode"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// envtest logs through controller-runtime; the demo reports itself.
	ctrl.SetLogger(logr.Discard())
	d := &demo{out: os.Stdout, start: time.Now(), root: testenv.RepoRoot()}
	err := d.run(ctx)
	d.printSummary(err)
	if err != nil {
		os.Exit(1)
	}
}

type demo struct {
	out    io.Writer
	start  time.Time
	root   string
	runDir string

	mu      sync.Mutex
	step    string
	stepAt  time.Time
	results []string
	node    map[string]any
}

func (d *demo) run(ctx context.Context) error {
	var err error
	fmt.Fprintf(d.out, "sluice demo: SR-IOV VFs and RDMA devices for pods, on one machine (%d cores)\n\n", runtime.NumCPU())

	d.begin("Installing what the demo needs (QEMU igb, backports kernel, envtest binaries; cached after the first run)")
	// apt (QEMU, the kernel) and the kube-apiserver build are independent:
	// run them together. (Building sluice at the same time is slower: two
	// builds compile the same k8s.io packages twice before either caches
	// them.)
	var assets string
	var assetsErr error
	built := make(chan struct{})
	go func() {
		defer close(built)
		assets, assetsErr = testenv.Assets()
	}()
	depsErr := vm.EnsureDeps(ctx, filepath.Join(d.root, "hack", "node-deps.sh"))
	<-built
	if err := errors.Join(depsErr, assetsErr); err != nil {
		return err
	}
	k, err := vm.FindKernel("", "")
	if err != nil {
		return err
	}
	d.done("QEMU with igb, guest kernel %s; envtest binaries in %s", k.Version, assets)

	d.begin("Building sluice, sluice-cni, host-local IPAM and the node driver")
	if d.runDir, err = vm.NewRunDir(""); err != nil {
		return err
	}
	bin := filepath.Join(d.runDir, "bin")
	if err := d.buildAll(ctx, bin); err != nil {
		return err
	}
	d.done("into %s", bin)

	d.begin("Starting a control plane (kube-apiserver v1.37 + etcd, sluice CRDs)")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	hostKC := filepath.Join(d.runDir, "host.kubeconfig")
	guestKC := filepath.Join(d.runDir, "node.kubeconfig")
	if err := env.WriteKubeconfig(hostKC, ""); err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(env.HostPort())
	if err := env.WriteKubeconfig(guestKC, "https://"+vm.HostIP+":"+port); err != nil {
		return err
	}
	for _, ns := range []string{"sluice-system", "demo"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{
		"sluice.dev/emulated": "true", "kubernetes.io/hostname": nodeName,
	}}}
	if err := env.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("create node %s: %w", nodeName, err)
	}
	d.done("API server at %s (the node reaches it at %s:%s); Node %s labelled sluice.dev/emulated=true", env.Config.Host, vm.HostIP, port, nodeName)

	d.begin("Starting the operator (sluice operator)")
	stopOperator, err := d.startOperator(ctx, filepath.Join(bin, "sluice"), hostKC)
	if err != nil {
		return err
	}
	defer stopOperator()
	d.done("ready; log in %s", filepath.Join(d.runDir, "operator.log"))

	d.begin("Booting the emulated node (QEMU TCG, igb SR-IOV NIC, Debian 6.12 kernel with soft-RoCE)")
	console, err := os.Create(filepath.Join(d.runDir, "console.log"))
	if err != nil {
		return err
	}
	defer console.Close()
	if err := os.MkdirAll(filepath.Join(d.runDir, "out"), 0o755); err != nil {
		return err
	}
	lines := &lineFilter{prefix: "demo|", emit: d.nodeLine}
	res, err := vm.Run(ctx, vm.Options{
		Script: "exec " + vm.ShellQuote(filepath.Join(bin, "demo-node")),
		Env: map[string]string{
			"SLUICE_DEMO_KUBECONFIG": guestKC,
			"SLUICE_DEMO_BIN":        bin,
			"SLUICE_DEMO_REPO":       d.root,
			"SLUICE_DEMO_OUT":        filepath.Join(d.runDir, "out"),
			"SLUICE_DEMO_NODE":       nodeName,
		},
		RunDir:   d.runDir,
		HostDirs: []string{d.root}, // the samples; a clone under /tmp is bound into the guest
		PFs:      1,
		Timeout:  8 * time.Minute,
		Console:  io.MultiWriter(console, lines),
	})
	lines.flush()
	if err != nil {
		return fmt.Errorf("emulated node: %w (console in %s)", err, console.Name())
	}
	if b, err := os.ReadFile(filepath.Join(d.runDir, "out", "summary.json")); err == nil {
		_ = json.Unmarshal(b, &d.node)
		// make bench collects the figures of several runs.
		if path := os.Getenv("SLUICE_DEMO_FIGURES"); path != "" {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return fmt.Errorf("SLUICE_DEMO_FIGURES: %w", err)
			}
		}
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("the node's demo exited %d; console in %s, agent log in %s", res.ExitCode, console.Name(), filepath.Join(d.runDir, "out", "agent.log"))
	}
	d.begin("Tearing down (node powered off after %s, boot %s)", res.Duration.Round(time.Second), res.Boot.Round(100*time.Millisecond))
	return nil
}

// buildAll builds the binaries the demo runs: sluice (the operator on the
// host, the agent in the node), sluice-cni, host-local and the node driver.
func (d *demo) buildAll(ctx context.Context, bin string) error {
	builds := []struct{ out, pkg string }{
		{"sluice", "."},
		{"sluice-cni", "./cni"},
		{"host-local", "github.com/containernetworking/plugins/plugins/ipam/host-local"},
		{"demo-node", "./test/demo/node"},
	}
	for _, b := range builds {
		if err := d.goBuild(ctx, filepath.Join(bin, b.out), b.pkg); err != nil {
			return err
		}
	}
	return nil
}

// goBuild builds one binary of this module (or of a module it requires).
func (d *demo) goBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = d.root
	// The flags of hack/envtest-bins.sh and the Makefile, so the packages
	// compiled for one are reused by the others.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false -trimpath", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// startOperator runs 'sluice operator' against the control plane and waits
// for its readiness probe.
func (d *demo) startOperator(ctx context.Context, sluice, kubeconfig string) (func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	probe := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(d.runDir, "operator.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(sluice, "operator", "--kubeconfig", kubeconfig, "--namespace", "sluice-system",
		"--node-image", "sluice:demo", "--metrics-bind-address", "0", "--health-probe-bind-address", probe)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start the operator: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		select {
		case err := <-exited:
			logf.Close()
			return nil, fmt.Errorf("the operator exited: %v (log in %s)", err, logf.Name())
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("the operator was not ready within 60s (log in %s)", logf.Name())
		}
	}
}

// begin starts a host step; the previous one, if still open, is done.
func (d *demo) begin(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.step, d.stepAt = fmt.Sprintf(format, a...), time.Now()
	fmt.Fprintf(d.out, "%s ▶ %s\n", d.clock(), d.step)
}

// done reports the current host step's result.
func (d *demo) done(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintf(d.out, "%s   ✔ %s (%s)\n", d.clock(), msg, time.Since(d.stepAt).Round(100*time.Millisecond))
}

func (d *demo) clock() string {
	e := time.Since(d.start).Round(time.Second)
	return fmt.Sprintf("[%02d:%02d]", int(e.Minutes()), int(e.Seconds())%60)
}

// nodeLine shows one "demo|KIND text" line from the node: STEP starts a
// step, OK and INFO report, WARN and FAIL stand out, RESULT goes to the
// summary.
func (d *demo) nodeLine(line string) {
	kind, text, _ := strings.Cut(line, " ")
	d.mu.Lock()
	defer d.mu.Unlock()
	switch kind {
	case "STEP":
		d.step, d.stepAt = text, time.Now()
		fmt.Fprintf(d.out, "%s ▶ [node] %s\n", d.clock(), text)
	case "OK":
		fmt.Fprintf(d.out, "%s   ✔ %s\n", d.clock(), text)
	case "INFO":
		fmt.Fprintf(d.out, "          %s\n", text)
	case "WARN":
		fmt.Fprintf(d.out, "%s   ! %s\n", d.clock(), text)
	case "FAIL":
		fmt.Fprintf(d.out, "%s   ✘ %s\n", d.clock(), text)
	case "RESULT":
		d.results = append(d.results, text)
	}
}

func (d *demo) printSummary(err error) {
	w := d.out
	fmt.Fprintf(w, "\n──────────────────────────── summary ────────────────────────────\n")
	for _, r := range d.results {
		fmt.Fprintf(w, "  %s\n", r)
	}
	if len(d.node) > 0 {
		keys := make([]string, 0, len(d.node))
		for k := range d.node {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var figs []string
		for _, k := range keys {
			figs = append(figs, fmt.Sprintf("%s=%v", k, d.node[k]))
		}
		fmt.Fprintf(w, "  figures: %s\n", strings.Join(figs, ", "))
	}
	if err != nil {
		fmt.Fprintf(w, "  FAILED during %q: %v\n", d.step, err)
		if d.runDir != "" {
			fmt.Fprintf(w, "  everything the demo wrote is kept in %s\n", d.runDir)
		}
	} else {
		fmt.Fprintf(w, "  demo complete in %s; control plane, operator and node stopped\n", time.Since(d.start).Round(time.Second))
		if d.runDir != "" && os.Getenv("SLUICE_DEMO_KEEP") == "" {
			_ = os.RemoveAll(d.runDir)
		} else if d.runDir != "" {
			fmt.Fprintf(w, "  kept %s (SLUICE_DEMO_KEEP)\n", d.runDir)
		}
	}
	fmt.Fprintf(w, "─────────────────────────────────────────────────────────────────\n")
}

// lineFilter passes the console's lines that start with prefix (after any
// carriage return) to emit, without the prefix.
type lineFilter struct {
	prefix string
	emit   func(string)
	buf    []byte
}

func (f *lineFilter) Write(p []byte) (int, error) {
	f.buf = append(f.buf, p...)
	for {
		i := strings.IndexByte(string(f.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		f.line(string(f.buf[:i]))
		f.buf = f.buf[i+1:]
	}
}

func (f *lineFilter) line(l string) {
	l = strings.TrimRight(l, "\r")
	if i := strings.LastIndexByte(l, '\r'); i >= 0 {
		l = l[i+1:]
	}
	if rest, ok := strings.CutPrefix(l, f.prefix); ok {
		f.emit(rest)
	}
}

func (f *lineFilter) flush() {
	if len(f.buf) > 0 {
		f.line(string(f.buf))
		f.buf = nil
	}
}
