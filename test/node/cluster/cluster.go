// Package cluster runs a real Kubernetes cluster on one machine, for
// sluice's end-to-end suite and `make demo`: the control plane (etcd,
// kube-apiserver, kube-scheduler, kube-controller-manager, v1.37.1) as host
// processes, and one node, the emulated SR-IOV node of test/node/vm, running
// containerd 2.x with runc, the kubelet, kube-proxy, the reference CNI
// plugins as the pod network and Multus as the meta-plugin. Every binary
// is built from source through the Go module proxy by hack/cluster-bins.sh;
// images are OCI archives built by hack/image and imported into containerd,
// so no registry is contacted.
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-net/sluice/test/node/vm"
	"github.com/sluice-net/sluice/test/testenv"
)

// Image names. The sluice image carries the manifests' own name; the
// pause image is containerd's default sandbox image.
const (
	SluiceImage     = "ghcr.io/sluice-net/sluice:v0.1.0"
	SluiceImageNext = "ghcr.io/sluice-net/sluice:v0.1.0-next" // the same build under a second tag, for rolling updates
	PauseImage      = "registry.k8s.io/pause:3.10.2"
	TestPodImage    = "sluice.local/testpod:v1"
)

// Config is what Up needs.
type Config struct {
	Root string // the repository
	// Dir holds the control plane's state, the images and the node's run
	// directory and disk (not under /tmp: the guest shares the run
	// directory at the same path).
	Dir string
	// Console receives the node's serial console; Progress one line per
	// bring-up step.
	Console  io.Writer
	Progress func(format string, args ...any)
	// PFs and SplitRoots shape the node's NICs (NodeOptions).
	PFs        int
	SplitRoots bool
}

// Cluster is a running control plane and node.
type Cluster struct {
	CP      *ControlPlane
	Node    *Node
	Kubectl string // the kubectl binary
	cfg     Config
	// Timings of the bring-up steps.
	Timings []string
}

// Up builds (or takes from the cache) every binary and image, starts the
// control plane and boots the node, returning when the node is Ready.
// The caller calls Down.
func Up(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	progress := cfg.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	c := &Cluster{cfg: cfg}
	defer func() {
		if err != nil {
			c.Down()
		}
	}()
	step := time.Now()
	lap := func(what string) {
		c.Timings = append(c.Timings, fmt.Sprintf("%s %s", what, time.Since(step).Round(100*time.Millisecond)))
		step = time.Now()
	}
	progress("building (or taking from the cache) Kubernetes v1.37.1, containerd, runc, Multus and the CNI plugins")
	kubeBin, runtimeBin, err := Bins(ctx, cfg.Root)
	if err != nil {
		return nil, err
	}
	lap("binaries")
	progress("building the images: sluice (from make build's binaries), pause, test pod")
	images, nodeexec, err := BuildImages(ctx, cfg.Root, filepath.Join(cfg.Dir, "images"))
	if err != nil {
		return nil, err
	}
	lap("images")
	c.Kubectl = filepath.Join(kubeBin, "kubectl")

	progress("starting etcd, kube-apiserver, kube-scheduler, kube-controller-manager")
	fwd, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	if c.CP, err = StartControlPlane(ctx, filepath.Join(cfg.Dir, "control-plane"), kubeBin, fwd[0]); err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	if err := c.installMultus(ctx); err != nil {
		return nil, err
	}
	lap("control plane")

	progress("booting the node: QEMU (igb SR-IOV NIC), containerd, kubelet, kube-proxy, Multus")
	runDir := filepath.Join(cfg.Dir, "node")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	c.Node, err = NewNode(c.CP, NodeOptions{
		RunDir: runDir, Disk: filepath.Join(cfg.Dir, "node-disk.img"),
		KubeBin: kubeBin, RuntimeBin: runtimeBin, Images: images, NodeExec: nodeexec,
		Console: cfg.Console, PFs: cfg.PFs, SplitRoots: cfg.SplitRoots,
	})
	if err != nil {
		return nil, err
	}
	if err := c.Node.Boot(ctx, 10*time.Minute); err != nil {
		return nil, fmt.Errorf("node: %w\nkubelet log:\n%s", err, c.Node.Log("kubelet", 30))
	}
	lap("node Ready")
	return c, nil
}

// Down powers the node off and stops the control plane.
func (c *Cluster) Down() {
	if c.Node != nil {
		_ = c.Node.Shutdown(2 * time.Minute)
	}
	if c.CP != nil {
		c.CP.Stop()
	}
}

// Run runs kubectl with the admin kubeconfig and returns its output.
func (c *Cluster) Run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.CP.AdminKubeconfig}, args...)...)
	cmd.Dir = c.cfg.Root
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// installMultus does the cluster side of installing Multus (the node has
// its binary and configuration): the NetworkAttachmentDefinition CRD, and
// RBAC for what its thin plugin reads and writes: the pod (and its
// network-status annotation) and NetworkAttachmentDefinitions.
func (c *Cluster) installMultus(ctx context.Context) error {
	crd, err := testenv.NADCRDPath()
	if err != nil {
		return err
	}
	if _, err := c.Run(ctx, "apply", "-f", crd); err != nil {
		return fmt.Errorf("NetworkAttachmentDefinition CRD: %w", err)
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "multus"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"k8s.cni.cncf.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods", "pods/status"}, Verbs: []string{"get", "update", "patch"}},
			{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "multus"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "multus"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "multus"}},
	}
	if _, err := c.CP.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("multus ClusterRole: %w", err)
	}
	if _, err := c.CP.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("multus ClusterRoleBinding: %w", err)
	}
	return nil
}

// Bins runs hack/cluster-bins.sh: the Kubernetes binaries' directory and
// the node runtime's.
func Bins(ctx context.Context, root string) (kube, runtime string, err error) {
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "cluster-bins.sh"))
	cmd.Dir = root
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("hack/cluster-bins.sh: %w\n%s", err, vm.Tail(errb.String(), 30))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		return "", "", fmt.Errorf("hack/cluster-bins.sh printed %q, want two directories", out.String())
	}
	return lines[0], lines[1], nil
}

// BuildImages builds the sluice, pause and test-pod images into dir as OCI
// archives, and the node's exec helper; it returns the archives and the
// helper's path.
func BuildImages(ctx context.Context, root, dir string) ([]string, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	goBuild := func(out, pkg string) error {
		cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-s -w", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false -trimpath")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w: %s", pkg, err, b)
		}
		return nil
	}
	// `make image`: the sluice image from the binaries `make build` makes.
	mk := exec.CommandContext(ctx, "make", "-s", "image", "BIN="+filepath.Join(dir, "bin"),
		"IMAGE_ARCHIVE="+filepath.Join(dir, "sluice.tar"), "IMAGE_NAMES="+SluiceImage+" "+SluiceImageNext)
	mk.Dir = root
	if b, err := mk.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("make image: %w: %s", err, b)
	}
	for _, b := range []struct{ out, pkg string }{
		{"pause", "./hack/image/pause"}, {"nodeexec", "./test/node/cluster/nodeexec"}, {"image", "./hack/image"},
	} {
		if err := goBuild(filepath.Join(dir, "bin", b.out), b.pkg); err != nil {
			return nil, "", err
		}
	}
	tool := filepath.Join(dir, "bin", "image")
	image := func(out string, args ...string) error {
		cmd := exec.CommandContext(ctx, tool, append([]string{"-out", filepath.Join(dir, out)}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("image %s: %w: %s", out, err, b)
		}
		return nil
	}
	bin := filepath.Join(dir, "bin")
	if err := image("pause.tar", "-name", PauseImage, "-add", "/pause="+filepath.Join(bin, "pause"),
		"-entrypoint", "/pause", "-user", "65535:65535"); err != nil {
		return nil, "", err
	}
	if err := image("testpod.tar", TestPodImageArgs()...); err != nil {
		return nil, "", err
	}
	return []string{filepath.Join(dir, "sluice.tar"), filepath.Join(dir, "pause.tar"), filepath.Join(dir, "testpod.tar")},
		filepath.Join(bin, "nodeexec"), nil
}

// TestPodImageArgs build the test pod's image from the host's tools: a
// static busybox for the shell and coreutils, iputils' ping (which sets
// don't-fragment for the jumbo-frame check), iproute2's ip and rdma, and
// the RDMA user tools (rdma-core's ibv_devices and ibv_devinfo, rdmacm's
// rping, perftest's ib_write_bw) with the verbs providers of soft-RoCE and
// ConnectX, with their shared libraries.
func TestPodImageArgs() []string {
	args := []string{"-name", TestPodImage, "-libs", "-entrypoint", "/bin/sleep infinity",
		"-add", "/bin/busybox=/bin/busybox", "-add", "/usr/bin/ping=/usr/bin/ping", "-add", "/usr/sbin/ip=/usr/sbin/ip"}
	for _, f := range []string{"/usr/bin/rdma", "/usr/bin/ibv_devices", "/usr/bin/ibv_devinfo", "/usr/bin/rping", "/usr/bin/ib_write_bw",
		"/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so", "/usr/lib/x86_64-linux-gnu/libibverbs/libmlx5-rdmav34.so",
		"/etc/libibverbs.d/rxe.driver", "/etc/libibverbs.d/mlx5.driver",
		// glibc loads it for pthread_exit (rping's threads); no ELF names it.
		"/lib/x86_64-linux-gnu/libgcc_s.so.1"} {
		args = append(args, "-add", f+"="+f)
	}
	for _, a := range []string{"sh", "sleep", "cat", "ls", "grep", "sed", "awk", "ps", "wc", "head", "tail", "true", "echo", "env", "timeout", "kill"} {
		args = append(args, "-symlink", "/bin/"+a+"=busybox")
	}
	return args
}
