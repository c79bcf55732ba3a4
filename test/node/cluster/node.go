package cluster

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-net/sluice/test/node/vm"
)

//go:embed node.sh
var nodeScript string

// NodeName is the real-cluster node's name; its address is QEMU user
// networking's guest address.
const (
	NodeName = "sluice-node"
	NodeIP   = "10.0.2.15"
	// guestExecPort is nodeexec's port in the guest.
	guestExecPort = 7070
)

// NodeOptions describe the node's machine.
type NodeOptions struct {
	// RunDir is shared with the guest (not under /tmp).
	RunDir string
	// Disk is the node's persistent disk image (created when missing).
	Disk string
	// KubeBin and RuntimeBin are hack/cluster-bins.sh's two directories.
	KubeBin, RuntimeBin string
	// Images are OCI archives imported into containerd at every boot.
	Images []string
	// NodeExec is the nodeexec binary (test/node/cluster/nodeexec).
	NodeExec string
	// PFs, MemoryMB: the VM's igb NICs and memory (1 and 2560 by
	// default). QEMU's igb loses its PF's mailbox interrupt when the guest
	// has 2816 MiB or more (measured: VFs then never get carrier), so
	// the node stays below that.
	PFs      int
	MemoryMB int
	// SplitRoots puts each PF under a root complex of its own
	// (vm.Options.SplitRoots).
	SplitRoots bool
	// Console receives the serial console.
	Console io.Writer
}

// Node is the QEMU guest running containerd, the kubelet and kube-proxy as
// a node of the ControlPlane, booted and stopped explicitly.
type Node struct {
	cp       *ControlPlane
	opts     NodeOptions
	execPort int
	files    string

	mu     sync.Mutex
	done   chan struct{}
	result *vm.Result
	err    error
}

// NewNode prepares the node's files (kubeconfigs, configuration, images)
// in opts.RunDir; Boot starts it.
func NewNode(cp *ControlPlane, opts NodeOptions) (*Node, error) {
	if opts.PFs == 0 {
		opts.PFs = 1
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 2560
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	n := &Node{cp: cp, opts: opts, execPort: ports[0], files: filepath.Join(opts.RunDir, "cluster")}
	if err := os.MkdirAll(filepath.Join(n.files, "images"), 0o755); err != nil {
		return nil, err
	}
	write := func(name string, data []byte) error {
		return os.WriteFile(filepath.Join(n.files, name), data, 0o600)
	}
	for _, u := range []struct{ file, user string }{
		{"kubelet.kubeconfig", "kubelet"}, {"kube-proxy.kubeconfig", "kube-proxy"}, {"multus.kubeconfig", "multus"},
	} {
		b, err := cp.NodeKubeconfig(u.user)
		if err != nil {
			return nil, err
		}
		if err := write(u.file, b); err != nil {
			return nil, err
		}
	}
	for name, data := range map[string][]byte{
		"ca.crt":          cp.CAPEM(),
		"kubelet.yaml":    []byte(kubeletConfig),
		"kube-proxy.yaml": []byte(kubeProxyConfig),
		"00-multus.conf":  []byte(multusConfig),
		"containerd.toml": []byte(containerdConfig),
	} {
		if err := write(name, data); err != nil {
			return nil, err
		}
	}
	if err := vm.CopyFile(opts.NodeExec, filepath.Join(n.files, "nodeexec")); err != nil {
		return nil, err
	}
	for _, img := range opts.Images {
		if err := vm.CopyFile(img, filepath.Join(n.files, "images", filepath.Base(img))); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(opts.Disk); os.IsNotExist(err) {
		if err := makeDisk(opts.Disk, 12<<30); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// makeDisk creates a sparse raw image with an empty ext4 file system.
func makeDisk(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "sluice-node", path).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", path, err, out)
	}
	return nil
}

// Boot starts the VM and returns once the kubelet's node is Ready.
func (n *Node) Boot(ctx context.Context, readyTimeout time.Duration) error {
	n.mu.Lock()
	if n.done != nil {
		select {
		case <-n.done:
		default:
			n.mu.Unlock()
			return fmt.Errorf("node is running")
		}
	}
	done := make(chan struct{})
	n.done, n.result, n.err = done, nil, nil
	n.mu.Unlock()
	_ = os.Remove(filepath.Join(n.opts.RunDir, "stop"))

	// vfio-pci is loaded at boot as on a node with user-space pools
	// (/etc/modules-load.d): the agent binds VFs to it, it loads nothing.
	modules := append(vm.DefaultModules(), "virtio_blk", "ext4", "vfio_pci")
	opts := vm.Options{
		Script:     nodeScript,
		RunDir:     n.opts.RunDir,
		PFs:        n.opts.PFs,
		SplitRoots: n.opts.SplitRoots,
		MemoryMB:   n.opts.MemoryMB,
		CPUs:       2,
		// VFs get IOMMU groups, so a vfio-pci pool hands out /dev/vfio
		// device nodes: as device specs, and as CDI devices.
		IOMMU:    true,
		Modules:  modules,
		Timeout:  3 * time.Hour,
		Console:  n.opts.Console,
		Disk:     n.opts.Disk,
		Forwards: []vm.Forward{{HostPort: n.execPort, GuestPort: guestExecPort}, {HostPort: n.cp.KubeletFwdPort, GuestPort: KubeletPort}},
		Env: map[string]string{
			"CLUSTER_FILES":     n.files,
			"CLUSTER_NODE_BIN":  n.opts.RuntimeBin,
			"CLUSTER_KUBE_BIN":  n.opts.KubeBin,
			"CLUSTER_NODE_IP":   NodeIP,
			"CLUSTER_EXEC_PORT": strconv.Itoa(guestExecPort),
			"CLUSTER_POD_CIDR":  PodCIDR,
		},
	}
	booted := time.Now()
	go func() {
		res, err := vm.Run(context.WithoutCancel(ctx), opts)
		n.mu.Lock()
		n.result, n.err = res, err
		n.mu.Unlock()
		close(done)
	}()
	return n.WaitReady(ctx, booted, readyTimeout)
}

// WaitReady waits for the node's exec helper to answer and for the node
// object to be Ready in a status the kubelet posted after since (a node
// object from before a reboot says Ready until it times out).
func (n *Node) WaitReady(ctx context.Context, since time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if err := n.exited(); err != nil {
			return err
		}
		ready, why := n.readySince(ctx, since)
		if ready {
			return nil
		}
		last = why
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("node %s not Ready after %s (%s); logs in %s", NodeName, timeout, last, filepath.Join(n.opts.RunDir, "logs"))
}

// readySince reports whether the node object is Ready in a status posted
// after since and the exec helper answers; why says what is missing.
func (n *Node) readySince(ctx context.Context, since time.Time) (ready bool, why string) {
	node, err := n.cp.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status != corev1.ConditionTrue || c.LastHeartbeatTime.Time.Before(since.Truncate(time.Second)) {
			return false, fmt.Sprintf("%s %s: %s (heartbeat %s)", c.Status, c.Reason, c.Message, c.LastHeartbeatTime.Format(time.RFC3339))
		}
		if _, err := n.Exec(ctx, 10*time.Second, "true"); err != nil {
			return false, err.Error()
		}
		return true, ""
	}
	return false, "no Ready condition yet"
}

func (n *Node) exited() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.done:
		code := -1
		console := ""
		if n.result != nil {
			code, console = n.result.ExitCode, n.result.Console
		}
		return fmt.Errorf("the node VM exited (code %d, %v): %s", code, n.err, vm.Tail(console, 30))
	default:
		return nil
	}
}

// Shutdown stops the kubelet, kube-proxy and containerd and powers the VM
// off, as a node's orderly reboot does.
func (n *Node) Shutdown(timeout time.Duration) error {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(n.opts.RunDir, "stop"), nil, 0o644); err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return fmt.Errorf("the node VM did not power off within %s", timeout)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return n.err
	}
	if n.result != nil && n.result.ExitCode != 0 {
		return fmt.Errorf("node script exited %d: %s", n.result.ExitCode, vm.Tail(n.result.Console, 30))
	}
	return nil
}

// ExecResult is a command's outcome in the node.
type ExecResult struct {
	Stdout, Stderr string
	Exit           int
	Error          string
}

// Exec runs argv in the node's initial namespaces as root.
func (n *Node) Exec(ctx context.Context, timeout time.Duration, argv ...string) (*ExecResult, error) {
	body, _ := json.Marshal(map[string]any{"argv": argv, "timeoutSeconds": int(timeout.Seconds())})
	ctx, cancel := context.WithTimeout(ctx, timeout+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(n.execPort)+"/exec", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node exec %s: %w", strings.Join(argv, " "), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("node exec: %s: %s", resp.Status, b)
	}
	var res ExecResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Sh runs a shell command in the node and returns its stdout; a non-zero
// exit is an error carrying stderr.
func (n *Node) Sh(ctx context.Context, script string) (string, error) {
	res, err := n.Exec(ctx, 3*time.Minute, "/bin/sh", "-c", script)
	if err != nil {
		return "", err
	}
	if res.Exit != 0 || res.Error != "" {
		return res.Stdout, fmt.Errorf("node: %q exited %d %s: %s", script, res.Exit, res.Error, strings.TrimSpace(res.Stderr))
	}
	return res.Stdout, nil
}

// Log returns the last lines of a node service's log (containerd,
// kubelet, kube-proxy, images, nodeexec).
func (n *Node) Log(service string, lines int) string {
	b, _ := os.ReadFile(filepath.Join(n.opts.RunDir, "logs", service+".log"))
	return vm.Tail(string(b), lines)
}

// The node's configuration: what a node image ships in /etc.
const (
	kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: /etc/kubernetes/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failSwapOn: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
maxPods: 30
`
	kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: /etc/kubernetes/kube-proxy.kubeconfig}
mode: nftables
clusterCIDR: ` + PodCIDR + `
hostnameOverride: ` + NodeName + `
conntrack: {maxPerCore: 0}
`
	// Multus (thin plugin) is the node's CNI configuration: the bridge
	// network for every pod, and the networks a pod names in its
	// k8s.v1.cni.cncf.io/networks annotation from their
	// NetworkAttachmentDefinitions.
	//
	// Pods' traffic leaving the node is masqueraded by one rule the node
	// sets at boot (node.sh), as ip-masq-agent does, not by the bridge
	// plugin's ipMasq: that ran nft on every ADD and DEL, 0.7 s and
	// 0.5-1.5 s of the busy node's CPU per pod under TCG (measured).
	multusConfig = `{
  "cniVersion": "1.0.0",
  "name": "multus-cni-network",
  "type": "multus",
  "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
  "binDir": "/opt/cni/bin",
  "delegates": [{
    "cniVersion": "1.0.0",
    "name": "pods",
    "plugins": [
      {"type": "bridge", "bridge": "cni0", "isGateway": true,
       "ipam": {"type": "host-local", "ranges": [[{"subnet": "` + PodCIDR + `"}]], "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": "/var/lib/cni/networks"}},
      {"type": "portmap", "capabilities": {"portMappings": true}, "backend": "nftables"}
    ]
  }]
}
`
	// containerd samples every container's CPU through its shim every
	// second by default (stats_collect_period), for the kubelet's
	// UsageNanoCores. Under TCG those samples were half of the idle
	// node's CPU (shims 6-8% each, containerd 26%: measured with the
	// test pods running); every 10 s, as cAdvisor did before, they cost
	// a tenth of that.
	// NRI plugins get 2 s per event by default; past it containerd
	// disconnects the plugin and starts the sandbox without it. The DRA
	// driver's sandbox step (VF move, IPAM) can take longer under TCG.
	containerdConfig = `version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.cri.v1.runtime"]
  stats_collect_period = "10s"
[plugins."io.containerd.nri.v1.nri"]
  plugin_request_timeout = "30s"
`
)
