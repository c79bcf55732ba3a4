package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/sluice-net/sluice/test/node/vm"
	"github.com/sluice-net/sluice/test/testenv"
)

// The pool and network of config/samples' emulated-igb policy and
// VFNetwork, as a user applies them.
const (
	poolResource = corev1.ResourceName("sluice.dev/igb-vf")
	demoNS       = "demo"
	netName      = "igb-net"
	// The soft-RoCE pool and its network (the emulated-igb-roce samples).
	rocePool    = corev1.ResourceName("sluice.dev/igb-roce")
	roceNetName = "igb-roce-net"
	// The vfio-pci pool (the emulated-igb-vfio sample).
	vfioPool = corev1.ResourceName("sluice.dev/igb-vfio")
	// nodeVFs is how many VFs the three samples make on the PF.
	nodeVFs = 7
)

var nnsGVR = schema.GroupVersionResource{Group: "sluice.dev", Version: "v1alpha1", Resource: "nodenetworkstates"}

// TestCluster installs sluice into a real cluster exactly as a user does
// and runs pods with VFs through the real kubelet, containerd, Multus and
// scheduler. Each step needs the ones before it.
func TestCluster(t *testing.T) {
	if os.Getenv("SLUICE_SKIP_NODE") == "1" || os.Getenv("SLUICE_SKIP_CLUSTER") == "1" {
		t.Skip("SLUICE_SKIP_NODE=1 or SLUICE_SKIP_CLUSTER=1")
	}
	if testing.Short() {
		t.Skip("the real-cluster node takes minutes: skipped with -short")
	}
	ctx := context.Background()
	root := testenv.RepoRoot()
	if err := vm.EnsureDeps(ctx, filepath.Join(root, "hack", "node-deps.sh")); err != nil {
		if os.Geteuid() == 0 {
			t.Fatalf("emulated node: %v", err)
		}
		t.Skipf("emulated node: %v", err)
	}
	dir, err := vm.NewRunDir("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SLUICE_NODE_KEEP") == "1" {
			t.Logf("cluster directory kept: %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	start := time.Now()
	// Two PFs under two root complexes: the samples use the first (eth0),
	// the DRA step both, for claims constrained to one pcieRoot.
	c, err := Up(ctx, Config{Root: root, Dir: dir, Console: consoleLog(t, dir), PFs: 2, SplitRoots: true,
		Progress: func(f string, a ...any) { t.Logf(f, a...) }})
	if err != nil {
		t.Fatalf("cluster up: %v", err)
	}
	defer c.Down()
	t.Logf("cluster up in %s: %s", time.Since(start).Round(time.Second), strings.Join(c.Timings, ", "))
	e := &e2e{c: c, ctx: ctx}
	e.dyn, err = dynamic.NewForConfig(c.CP.Config)
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"InstallWithKustomize", e.install},
		{"PolicyAdvertisesPool", e.policy},
		{"PodsPingOverVFs", e.podsPing},
		{"RDMABetweenPods", e.rdmaBetweenPods},
		{"DeviceSpecs", e.deviceSpecs},
		{"PendingBeyondCapacity", e.pendingBeyondCapacity},
		{"KubeletRestart", e.kubeletRestart},
		{"AgentPodDeleted", e.agentPodDeleted},
		{"AgentImageRollingUpdateToCDI", e.agentImageUpdate},
		{"CDI", e.cdi},
		{"PodDeletedGivesVFBack", e.podDeleted},
		{"NodeReboot", e.reboot},
		{"PolicyChangeEvictsOnlyItsPod", e.policyChangeEvicts},
		{"JumboFrames", e.jumbo},
		{"Churn", e.churn},
		{"DRA", e.dra},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			e.dumpState(t)
			e.hold(t, dir)
			t.Fatalf("step %s failed; later steps need it", s.name)
		}
	}
	if os.Getenv("SLUICE_CLUSTER_HOLD") == "end" {
		e.hold(t, dir)
	}
}

type e2e struct {
	c   *Cluster
	ctx context.Context
	dyn dynamic.Interface
}

func consoleLog(t *testing.T, dir string) *os.File {
	f, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// eventually polls cond every second until it returns true, or fails
// the test with cond's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := Poll(context.Background(), timeout, time.Second, what, cond); err != nil {
		t.Fatal(err)
	}
}

func (e *e2e) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.c.Run(e.ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// install: `kubectl apply -k config/default`, then the operator Deployment
// and the node DaemonSet run as real pods from the built image.
func (e *e2e) install(t *testing.T) {
	e.kubectl(t, "apply", "--server-side", "-k", "config/default")
	cs := e.c.CP.Client
	eventually(t, 6*time.Minute, "operator Deployment available and node DaemonSet ready", func() (bool, error) {
		d, err := cs.AppsV1().Deployments("sluice-system").Get(e.ctx, "sluice-operator", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ds, err := cs.AppsV1().DaemonSets("sluice-system").Get(e.ctx, "sluice-node", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if d.Status.AvailableReplicas < 1 || ds.Status.NumberReady < 1 {
			return false, fmt.Errorf("operator available %d, agent ready %d/%d", d.Status.AvailableReplicas, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
		}
		return true, nil
	})
	// Both run the manifests' image, which came from the OCI archive.
	pods, err := cs.CoreV1().Pods("sluice-system").List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		for _, st := range p.Status.ContainerStatuses {
			if st.Image != SluiceImage {
				t.Errorf("pod %s container %s runs %s, want %s", p.Name, st.Name, st.Image, SluiceImage)
			}
		}
	}
	if out, err := e.c.Node.Sh(e.ctx, "test -x /opt/cni/bin/sluice-cni && echo ok"); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("the DaemonSet's init container did not install sluice-cni into /opt/cni/bin: %v", err)
	}
}

// policy: the emulated-igb policy and VFNetwork samples, and their
// soft-RoCE siblings, give VFs, a Succeeded NodeNetworkState, the pools in
// the real kubelet's capacity and allocatable, and the
// NetworkAttachmentDefinitions.
func (e *e2e) policy(t *testing.T) {
	e.kubectl(t, "label", "node", NodeName, "sluice.dev/emulated=true", "--overwrite")
	e.kubectl(t, "apply", "-f", "config/samples/namespace_demo.yaml",
		"-f", "config/samples/networknodepolicy_emulated_igb.yaml", "-f", "config/samples/vfnetwork_emulated_igb.yaml",
		"-f", "config/samples/networknodepolicy_emulated_igb_roce.yaml", "-f", "config/samples/vfnetwork_emulated_igb_roce.yaml",
		"-f", "config/samples/networknodepolicy_emulated_igb_vfio.yaml")
	eventually(t, 5*time.Minute, "NodeNetworkState Succeeded", func() (bool, error) {
		u, err := e.dyn.Resource(nnsGVR).Get(e.ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st, _, _ := unstructured.NestedString(u.Object, "status", "syncStatus")
		msg, _, _ := unstructured.NestedString(u.Object, "status", "lastSyncError")
		return st == "Succeeded", fmt.Errorf("syncStatus %q %s", st, msg)
	})
	e.waitPool(t, poolResource, 4, 3*time.Minute)
	e.waitPool(t, rocePool, 2, 3*time.Minute)
	e.waitPool(t, vfioPool, 1, 3*time.Minute)
	out, err := e.c.Node.Sh(e.ctx, "ls /sys/class/net/*/device/sriov_numvfs | head -1 | xargs cat")
	if err != nil || strings.TrimSpace(out) != strconv.Itoa(nodeVFs) {
		t.Errorf("sriov_numvfs on the node: %q %v, want 7 (4 igb-vf, 2 igb-roce, 1 igb-vfio)", out, err)
	}
	e.kubectl(t, "-n", demoNS, "get", "network-attachment-definitions", netName)
	nad := e.kubectl(t, "-n", demoNS, "get", "network-attachment-definitions", roceNetName, "-o", "jsonpath={.spec.config}")
	if !strings.Contains(nad, `"softRoCE":{"cdiKind":"sluice.dev/igb-roce"}`) {
		t.Errorf("the soft-RoCE network's NAD config lacks softRoCE: %s", nad)
	}
}

// rdmaBetweenPods: two pods of a Deployment asking for the soft-RoCE pool
// each see exactly one RDMA device, their own (created by sluice-cni on
// their VF, handed over by CDI), and run rping and ib_write_bw between
// each other from inside their containers. Deleting them removes the
// devices and the CDI specs.
func (e *e2e) rdmaBetweenPods(t *testing.T) {
	d := RDMAWorkload(demoNS, "rdma", roceNetName, rocePool, 2)
	if _, err := e.c.CP.Client.AppsV1().Deployments(demoNS).Create(e.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := e.runningPods(t, "rdma", 2, 6*time.Minute)
	seen := map[string]string{}
	for _, p := range pods {
		devs, files, err := e.c.PodRDMADevices(e.ctx, demoNS, p.Name)
		if err != nil {
			t.Fatal(err)
		}
		vf := strings.TrimSpace(e.kubectl(t, "-n", demoNS, "exec", p.Name, "--", "sh", "-c", "echo $PCIDEVICE_SLUICE_DEV_IGB_ROCE"))
		want := "rxe_" + strings.NewReplacer(":", "_", ".", "_").Replace(vf)
		if len(devs) != 1 || devs[0] != want {
			t.Errorf("pod %s (VF %s) sees RDMA devices %v, want exactly its own %s", p.Name, vf, devs, want)
		}
		uverbs := 0
		for _, f := range files {
			if strings.HasPrefix(f, "uverbs") {
				uverbs++
			}
		}
		if uverbs != 1 {
			t.Errorf("pod %s has /dev/infiniband %v, want one uverbs device", p.Name, files)
		}
		if other, dup := seen[want]; dup {
			t.Errorf("pods %s and %s both got %s", other, p.Name, want)
		}
		seen[want] = p.Name
		t.Logf("pod %s: VF %s, RDMA device %v, /dev/infiniband %v", p.Name, vf, devs, files)
	}
	if t.Failed() {
		return
	}
	server, client := pods[0], pods[1]
	ip := net1IP(t, &server)
	start := time.Now()
	if out, err := e.c.RPing(e.ctx, demoNS, server.Name, ip, client.Name); err != nil {
		t.Fatalf("rping between the pods: %v\n%s", err, out)
	}
	t.Logf("rping %s -> %s (%s): 3 iterations, %s with retries", client.Name, server.Name, ip, time.Since(start).Round(100*time.Millisecond))
	bw, err := e.c.WriteBW(e.ctx, demoNS, server.Name, ip, client.Name)
	if err != nil {
		t.Fatalf("ib_write_bw between the pods: %v\n%s", err, bw)
	}
	t.Logf("ib_write_bw %s -> %s: %s", client.Name, server.Name, bw)

	e.deleteDeployment(t, "rdma")
	// The sandbox, and with it the CNI DEL that removes the soft-RoCE
	// device, is stopped once the containers are. On a starved node
	// containerd's shim can miss the kubelet's 2-minute runtime request
	// timeout for a container's stop (measured in a make test of stop 26:
	// housekeeping took 18 s, the sandboxes' stop came 2 min after the
	// deletion), and the kubelet stops the sandbox on its next try.
	if err := e.c.SoftRoCEGone(e.ctx, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	e.waitPool(t, rocePool, 2, time.Minute)
}

// workloadDeployment is pods of the test image with vfs VFs each from the
// pool, attached to the sample network.
func workloadDeployment(name string, replicas int32, vfs int64) *appsv1.Deployment {
	return Workload(demoNS, name, netName, poolResource, replicas, vfs)
}

func (e *e2e) runningPods(t *testing.T, app string, n int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	pods, err := e.c.RunningPods(e.ctx, demoNS, app, n, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// net1IP is the pod's address on its sluice VF, from network-status.
func net1IP(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	ip, err := InterfaceIP(p, "net1")
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// podsPing: two pods of a Deployment get VFs through the scheduler, the
// kubelet's Allocate and Multus calling sluice-cni, and ping each other
// over the VFs.
func (e *e2e) podsPing(t *testing.T) {
	d := workloadDeployment("pingers", 2, 1)
	if _, err := e.c.CP.Client.AppsV1().Deployments(demoNS).Create(e.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := e.runningPods(t, "pingers", 2, 6*time.Minute)
	for _, p := range pods {
		nets, err := PodNetworks(&p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pod %s network-status: %s", p.Name, p.Annotations["k8s.v1.cni.cncf.io/network-status"])
		found := false
		for _, n := range nets {
			if n.Name == demoNS+"/"+netName && n.Interface == "net1" {
				found = true
			}
		}
		if !found {
			t.Errorf("pod %s: network-status has no net1 of %s/%s: %+v", p.Name, demoNS, netName, nets)
		}
		// net1 in the pod is a VF netdev (igbvf), not a veth.
		out := e.kubectl(t, "-n", demoNS, "exec", p.Name, "--", "cat", "/sys/class/net/net1/device/uevent")
		if !strings.Contains(out, "DRIVER=igbvf") {
			t.Errorf("pod %s: net1 is not an igbvf VF: %s", p.Name, out)
		}
	}
	if out, err := e.c.Ping(e.ctx, demoNS, pods[0].Name, "net1", net1IP(t, &pods[1])); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// pendingBeyondCapacity: a pod asking for more VFs than are free stays
// Pending with the scheduler's reason.
func (e *e2e) pendingBeyondCapacity(t *testing.T) {
	d := workloadDeployment("greedy", 1, 3)
	if _, err := e.c.CP.Client.AppsV1().Deployments(demoNS).Create(e.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "greedy pod Unschedulable for Insufficient sluice.dev/igb-vf", func() (bool, error) {
		l, err := e.c.CP.Client.CoreV1().Pods(demoNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app=greedy"})
		if err != nil || len(l.Items) != 1 {
			return false, fmt.Errorf("%d pods, %v", len(l.Items), err)
		}
		p := l.Items[0]
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Reason == "Unschedulable" &&
				strings.Contains(c.Message, "Insufficient "+string(poolResource)) {
				return p.Status.Phase == corev1.PodPending, nil
			}
		}
		return false, fmt.Errorf("pod %s: %s %+v", p.Name, p.Status.Phase, p.Status.Conditions)
	})
	if err := e.c.CP.Client.AppsV1().Deployments(demoNS).Delete(e.ctx, "greedy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// vfsInPods counts the igbvf netdevs outside the node's initial network
// namespace.
func (e *e2e) vfsInPods(t *testing.T) int {
	t.Helper()
	out, err := e.c.Node.Sh(e.ctx, `n=0; for v in /sys/bus/pci/drivers/igbvf/0000:*; do [ -d "$v/net" ] && [ -n "$(ls "$v/net")" ] || n=$((n+1)); done; echo $n`)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(strings.TrimSpace(out), &n)
	return n
}

// kubeletRestart: the kubelet restarts; the pool is allocatable again,
// running pods keep their VFs, a new pod is admitted.
func (e *e2e) kubeletRestart(t *testing.T) {
	before := e.runningPods(t, "pingers", 2, time.Minute)
	if _, err := e.c.Node.Sh(e.ctx, "pkill -x kubelet"); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	// Allocatable "back" is what the restarted kubelet reports: a node
	// status it posted after the restart, not the last one before it.
	if err := e.c.WaitAllocatable(e.ctx, poolResource, 4, restarted, 3*time.Minute); err != nil {
		t.Fatalf("after the kubelet restart: %v", err)
	}
	t.Logf("kubelet restart -> %s allocatable back: %s", poolResource, time.Since(restarted).Round(100*time.Millisecond))
	e.registrationsClean(t)
	samePods(t, "kubelet restart", podSet(before), podSet(e.runningPods(t, "pingers", 2, 2*time.Minute)))
	if n := e.vfsInPods(t); n != 2 {
		t.Errorf("%d VFs in pods after the kubelet restart, want 2", n)
	}
	// A new pod is admitted and gets a VF.
	if _, err := e.c.CP.Client.AppsV1().Deployments(demoNS).Create(e.ctx, workloadDeployment("third", 1, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.runningPods(t, "third", 1, 4*time.Minute)
	if err := e.c.CP.Client.AppsV1().Deployments(demoNS).Delete(e.ctx, "third", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "third pod gone and its VF back", func() (bool, error) {
		l, err := e.c.CP.Client.CoreV1().Pods(demoNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app=third"})
		if err != nil {
			return false, err
		}
		n := e.vfsInPods(t)
		return len(l.Items) == 0 && n == 2, fmt.Errorf("%d third pods, %d VFs in pods", len(l.Items), n)
	})
}

// agentPodDeleted: the DaemonSet recreates a deleted agent pod; no pod is
// evicted and no VF reset.
func (e *e2e) agentPodDeleted(t *testing.T) {
	cs := e.c.CP.Client
	before := e.runningPods(t, "pingers", 2, time.Minute)
	macs, err := e.c.Node.Sh(e.ctx, "ip -o link show | grep -c 'vf [0-9]' ; ip link show | grep ' vf ' | sort")
	if err != nil {
		t.Fatal(err)
	}
	l, err := cs.CoreV1().Pods("sluice-system").List(e.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=node-agent"})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("agent pods: %d, %v", len(l.Items), err)
	}
	old := l.Items[0]
	if err := cs.CoreV1().Pods("sluice-system").Delete(e.ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*time.Minute, "a new agent pod Ready", func() (bool, error) {
		l, err := cs.CoreV1().Pods("sluice-system").List(e.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=node-agent"})
		if err != nil {
			return false, err
		}
		for _, p := range l.Items {
			if p.UID != old.UID && p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].Ready {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d agent pods, none new and Ready", len(l.Items))
	})
	e.waitPool(t, poolResource, 4, 2*time.Minute)
	after := e.runningPods(t, "pingers", 2, time.Minute)
	for i := range before {
		if before[i].UID != after[0].UID && before[i].UID != after[1].UID {
			t.Errorf("pod %s did not survive the agent's restart", before[i].Name)
		}
	}
	macsAfter, err := e.c.Node.Sh(e.ctx, "ip -o link show | grep -c 'vf [0-9]' ; ip link show | grep ' vf ' | sort")
	if err != nil {
		t.Fatal(err)
	}
	if macs != macsAfter {
		t.Errorf("VF settings changed across the agent's restart:\nbefore %s\nafter %s", macs, macsAfter)
	}
	if n := e.vfsInPods(t); n != 2 {
		t.Errorf("%d VFs in pods after the agent restart, want 2", n)
	}
	e.registrationsClean(t)
}

// podDeleted: a deleted pod's VF returns to the host and is advertised
// again, with no record left for it.
func (e *e2e) podDeleted(t *testing.T) {
	cs := e.c.CP.Client
	pods := e.runningPods(t, "pingers", 2, time.Minute)
	victim := pods[0]
	if err := cs.CoreV1().Pods(demoNS).Delete(e.ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "deleted pod gone", func() (bool, error) {
		_, err := cs.CoreV1().Pods(demoNS).Get(e.ctx, victim.Name, metav1.GetOptions{})
		return err != nil, fmt.Errorf("pod %s still there", victim.Name)
	})
	e.runningPods(t, "pingers", 2, 4*time.Minute)
	if n := e.vfsInPods(t); n != 2 {
		t.Errorf("%d VFs in pods with two pods running, want 2", n)
	}
	out, err := e.c.Node.Sh(e.ctx, "grep -rl "+string(victim.UID)+" /var/lib/cni /run/sluice /var/lib/sluice 2>/dev/null; true")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "" {
		t.Errorf("records of the deleted pod %s left on the node: %s", victim.Name, out)
	}
}

// dumpState logs what helps after a failure: pods, events, node logs.
func (e *e2e) dumpState(t *testing.T) {
	out, _ := e.c.Run(e.ctx, "get", "pods", "-A", "-o", "wide")
	t.Logf("pods:\n%s", out)
	out, _ = e.c.Run(e.ctx, "get", "events", "-A", "--sort-by=.lastTimestamp")
	t.Logf("events:\n%s", vm.Tail(out, 40))
	out, _ = e.c.Run(e.ctx, "get", "nns", "-o", "jsonpath={.items[*].status.syncStatus} {.items[*].status.lastSyncError}")
	t.Logf("NodeNetworkState: %s", out)
	out, err := e.c.Run(e.ctx, "-n", "sluice-system", "logs", "-l", "app.kubernetes.io/component=node-agent", "--tail", "30")
	t.Logf("agent log (kubectl logs, %v):\n%s", err, out)
	if o, err := e.c.Node.Sh(e.ctx, "ls -laR /run/sluice /var/lib/cni/sluice 2>&1 | head -60; cat /run/sluice/*.json 2>&1 | head -c 3000"); err == nil {
		t.Logf("node's sluice files:\n%s", o)
	}
	for _, s := range []string{"kubelet", "containerd"} {
		t.Logf("%s log tail:\n%s", s, e.c.Node.Log(s, 30))
	}
	if err := e.c.CP.Exited(); err != nil {
		t.Logf("control plane: %v", err)
	}
}

// hold keeps a failed cluster up for a developer when SLUICE_CLUSTER_HOLD=1
// (after the last step too with SLUICE_CLUSTER_HOLD=end), until <dir>/release exists or 30 minutes pass: kubectl with
// <dir>/control-plane/admin.kubeconfig, and the node through nodeexec at
// the port in <dir>/exec-port.
func (e *e2e) hold(t *testing.T, dir string) {
	if h := os.Getenv("SLUICE_CLUSTER_HOLD"); h != "1" && h != "end" {
		return
	}
	_ = os.WriteFile(filepath.Join(dir, "exec-port"), []byte(fmt.Sprint(e.c.Node.execPort)), 0o644)
	t.Logf("holding the cluster: kubeconfig %s, touch %s/release to end", e.c.CP.AdminKubeconfig, dir)
	for i := 0; i < 1800; i++ {
		if _, err := os.Stat(filepath.Join(dir, "release")); err == nil {
			return
		}
		time.Sleep(time.Second)
	}
}
