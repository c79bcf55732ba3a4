// Command demo-node is the node side of `make demo`, run inside the
// emulated node. It plays the parts a real node's kubelet, container
// runtime and Multus would: a stand-in kubelet takes the device plugin's
// registrations and allocates devices, network namespaces stand in for
// pods, and the NetworkAttachmentDefinition the operator rendered is handed
// to the real sluice-cni binary as Multus would. The node agent is the real
// 'sluice agent' binary, device plugin included.
//
// It reports on stdout (the serial console) as "demo|KIND text" lines that
// the host side shows, and writes its figures to $SLUICE_DEMO_OUT/summary.json.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/test/node/guest/nodeutil"
)

const (
	resource    = "sluice.dev/igb-vf"
	kubeletDir  = "/run/demo/kubelet"
	metricsAddr = "127.0.0.1:9402"
	network     = "igb-net"
	namespace   = "demo"
)

func main() {
	d := &node{
		kubeconfig: os.Getenv("SLUICE_DEMO_KUBECONFIG"), bin: os.Getenv("SLUICE_DEMO_BIN"),
		repo: os.Getenv("SLUICE_DEMO_REPO"), out: os.Getenv("SLUICE_DEMO_OUT"), name: os.Getenv("SLUICE_DEMO_NODE"),
		figures: map[string]any{},
	}
	err := d.run(context.Background())
	d.cleanup()
	d.writeSummary()
	if err != nil {
		say("FAIL", "%v", err)
		os.Exit(1)
	}
}

type node struct {
	kubeconfig, bin, repo, out, name string

	c       client.Client
	kubelet *kubelettest.Kubelet
	agent   *exec.Cmd
	agentCh chan error
	host    *host.Host

	pods    []*pod
	rxe     []string
	undo    []func()
	figures map[string]any
}

// pod is a network namespace standing in for a pod, with the VF it got.
type pod struct {
	name, netns, containerID string
	pci, hostIf              string
	ip                       string
	added                    bool
}

func say(kind, format string, a ...any) {
	fmt.Printf("demo|%s %s\n", kind, fmt.Sprintf(format, a...))
}

func step(format string, a ...any) { say("STEP", format, a...) }
func ok(format string, a ...any)   { say("OK", format, a...) }
func info(format string, a ...any) { say("INFO", format, a...) }
func warn(format string, a ...any) { say("WARN", format, a...) }

func result(format string, a ...any) { say("RESULT", format, a...) }

func (d *node) run(ctx context.Context) error {
	d.host = host.New(host.NodePaths())
	if err := d.connect(); err != nil {
		return err
	}

	step("Starting the node agent with its device plugin (sluice agent), and a stand-in kubelet")
	if err := d.startAgent(); err != nil {
		return err
	}
	nns, err := d.waitNNS(ctx, 60*time.Second, "the agent's discovery in NodeNetworkState "+d.name, func(n *sluicev1.NodeNetworkState) bool {
		return len(n.Status.Interfaces) > 0
	})
	if err != nil {
		return err
	}
	for _, in := range nns.Status.Interfaces {
		ok("discovered PF %s (%s) %s:%s %s, driver %s, %d VFs max, link %s, MTU %d",
			in.Name, in.PCIAddress, in.Vendor, in.DeviceID, orDash(in.DeviceName), in.Driver, in.TotalVfs, in.LinkState, in.MTU)
	}

	step("Applying the NetworkNodePolicy and VFNetwork samples")
	policy, vfn, err := d.applySamples(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	ok("NetworkNodePolicy %s: %d VFs of %s:%s as %s (rdma %s); VFNetwork %s/%s", policy.Name, policy.Spec.NumVfs,
		policy.Spec.NicSelector.Vendor, policy.Spec.NicSelector.DeviceID, resource, policy.Spec.RDMA.Mode, vfn.Namespace, vfn.Name)

	nns, err = d.waitNNS(ctx, 60*time.Second, "the operator's rendering", func(n *sluicev1.NodeNetworkState) bool {
		return len(n.Spec.Interfaces) > 0 && len(n.Spec.Pools) > 0
	})
	if err != nil {
		return err
	}
	for _, in := range nns.Spec.Interfaces {
		for _, g := range in.VFGroups {
			ok("operator rendered %s: PF %s numVfs %d, VFs %s -> %s (%s, rdma %v) in %s",
				d.name, in.Name, in.NumVfs, g.VFRange, g.ResourceName, g.DeviceType, g.RDMA, since(t0))
		}
	}
	gen := nns.Generation

	step("The agent creates and configures the VFs")
	nns, err = d.waitNNS(ctx, 90*time.Second, "syncStatus Succeeded", func(n *sluicev1.NodeNetworkState) bool {
		return n.Status.SyncStatus == sluicev1.SyncSucceeded && n.Status.ObservedGeneration >= gen && len(n.Status.Interfaces) > 0 && n.Status.Interfaces[0].NumVfs > 0
	})
	if err != nil {
		return err
	}
	succeeded := time.Since(t0)
	d.figures["policy_to_succeeded_s"] = seconds(succeeded)
	pf := nns.Status.Interfaces[0]
	var vfs []sluicev1.VFStatus
	for _, vf := range pf.VFs {
		vfs = append(vfs, vf)
		info("VF %d %s netdev %s driver %s mac %s spoofchk %v trust %v", vf.VFID, vf.PCIAddress, vf.Name, vf.Driver, vf.MAC, vf.SpoofChk, vf.Trust)
	}
	ok("NodeNetworkState %s: syncStatus Succeeded with %d VFs on %s, %s after the policy", d.name, len(vfs), pf.Name, succeeded.Round(10*time.Millisecond))
	result("policy to NodeNetworkState Succeeded: %s (%d VFs on the emulated igb)", succeeded.Round(10*time.Millisecond), len(vfs))

	step("RDMA: a soft-RoCE (rxe) device on each VF, standing in for the NIC's own RDMA functions")
	for i, vf := range vfs {
		name := fmt.Sprintf("rxe%d", i)
		if _, err := sh(10*time.Second, "ip", "link", "set", vf.Name, "up"); err != nil {
			return err
		}
		if _, err := sh(30*time.Second, "rdma", "link", "add", name, "type", "rxe", "netdev", vf.Name); err != nil {
			return err
		}
		d.rxe = append(d.rxe, name)
	}
	ok("rdma link: %s", strings.Join(strings.Fields(must(sh(10*time.Second, "sh", "-c", "rdma link | cut -d' ' -f2,4,8 | paste -sd';'"))), " "))

	step("The device plugin advertises the VFs with their RDMA devices")
	want := len(vfs)
	snap, err := d.waitKubelet(ctx, 60*time.Second, func(s kubelettest.Snapshot) bool { return healthy(s) == want })
	if err != nil {
		return err
	}
	advertised := time.Since(t0)
	d.figures["policy_to_advertised_s"] = seconds(advertised)
	ok("%s: %d devices, %d healthy (%s after the policy; the readiness gate held them until the agent was done)", resource, len(snap.Devices), healthy(snap), advertised.Round(10*time.Millisecond))
	result("policy to %d healthy %s advertised: %s (soft-RoCE set-up included)", want, resource, advertised.Round(10*time.Millisecond))

	step("Scheduling two pods: preferred allocation and Allocate through the kubelet API")
	ids := snap.IDs()
	pref, err := d.kubelet.Preferred(ctx, resource, ids, nil, 2)
	if err != nil {
		return fmt.Errorf("GetPreferredAllocation: %w", err)
	}
	ok("GetPreferredAllocation(2 of %d) = %v", len(ids), pref)
	for i, id := range pref {
		resp, err := d.kubelet.Allocate(ctx, resource, id)
		if err != nil {
			return fmt.Errorf("Allocate %s: %w", id, err)
		}
		p := &pod{name: fmt.Sprintf("pod-%c", 'a'+i), pci: id, containerID: fmt.Sprintf("demo%08d", i)}
		p.netns = "demo-" + p.name
		for _, vf := range vfs {
			if vf.PCIAddress == id {
				p.hostIf = vf.Name
			}
		}
		d.pods = append(d.pods, p)
		var specs []string
		for _, s := range resp.Devices {
			specs = append(specs, s.ContainerPath)
		}
		ok("%s gets %s: %s=%s, devices %s", p.name, id, "PCIDEVICE_SLUICE_DEV_IGB_VF", resp.Envs["PCIDEVICE_SLUICE_DEV_IGB_VF"], strings.Join(specs, " "))
	}

	step("Attaching the pods through sluice-cni (config from the NetworkAttachmentDefinition the operator rendered)")
	conf, err := d.nadConfig(ctx)
	if err != nil {
		return err
	}
	for _, p := range d.pods {
		if _, err := sh(10*time.Second, "ip", "netns", "add", p.netns); err != nil {
			return err
		}
		if _, err := sh(10*time.Second, "ip", "-n", p.netns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		start := time.Now()
		res, err := d.cni("ADD", p, conf)
		if err != nil {
			return fmt.Errorf("CNI ADD for %s: %w", p.name, err)
		}
		p.added = true
		rr, err := current.NewResult(res)
		if err != nil {
			return fmt.Errorf("CNI ADD for %s returned %s: %w", p.name, res, err)
		}
		r, err := current.GetResult(rr)
		if err != nil || len(r.IPs) == 0 {
			return fmt.Errorf("CNI ADD for %s returned %s (%v)", p.name, res, err)
		}
		p.ip = r.IPs[0].Address.IP.String()
		d.figures["cni_add_"+p.name+"_ms"] = time.Since(start).Milliseconds()
		addr := must(sh(10*time.Second, "ip", "-n", p.netns, "-br", "addr", "show", "net1"))
		ok("%s: %s (VF %s, was %s in the host) in %s", p.name, strings.Join(strings.Fields(addr), " "), p.pci, p.hostIf, time.Since(start).Round(time.Millisecond))
	}

	step("Pod to pod over the VFs")
	a, b := d.pods[0], d.pods[1]
	out, err := sh(30*time.Second, "ip", "netns", "exec", a.netns, "ping", "-c", "3", "-i", "0.3", "-W", "3", b.ip)
	if err != nil {
		return fmt.Errorf("ping %s -> %s: %w", a.name, b.name, err)
	}
	rtt := lastLine(out)
	ok("%s -> %s (%s): %s; %s", a.name, b.name, b.ip, pingLoss(out), rtt)
	result("ping %s -> %s over two VFs of the igb: %s, %s", a.name, b.name, pingLoss(out), rtt)

	if err := d.dryRun(ctx, policy, pf.Name); err != nil {
		return err
	}
	d.rdma(ctx)
	d.metrics()

	step("Tearing down: CNI DEL, policy deleted, VFs returned")
	for _, p := range d.pods {
		start := time.Now()
		if _, err := d.cni("DEL", p, conf); err != nil {
			return fmt.Errorf("CNI DEL for %s: %w", p.name, err)
		}
		p.added = false
		vf, err := d.host.VF(p.pci)
		if err != nil {
			return err
		}
		if vf.Netdev != p.hostIf {
			return fmt.Errorf("after DEL, VF %s is %q in the host, want its name %q back", p.pci, vf.Netdev, p.hostIf)
		}
		ok("%s detached: VF %s back in the host as %s in %s", p.name, p.pci, vf.Netdev, time.Since(start).Round(time.Millisecond))
	}
	for _, r := range d.rxe {
		deleteRXE(r)
	}
	d.rxe = nil
	start := time.Now()
	if err := d.c.Delete(ctx, vfn); err != nil {
		return fmt.Errorf("delete VFNetwork: %w", err)
	}
	if err := d.c.Delete(ctx, policy); err != nil {
		return fmt.Errorf("delete NetworkNodePolicy: %w", err)
	}
	if _, err := d.waitNNS(ctx, 90*time.Second, "the PF handed back", func(n *sluicev1.NodeNetworkState) bool {
		return len(n.Spec.Interfaces) == 0 && n.Status.SyncStatus == sluicev1.SyncSucceeded && len(n.Status.Interfaces) > 0 && n.Status.Interfaces[0].NumVfs == 0
	}); err != nil {
		return err
	}
	numvfs := strings.TrimSpace(must(sh(5*time.Second, "cat", "/sys/bus/pci/devices/"+pf.PCIAddress+"/sriov_numvfs")))
	ok("policy deleted: PF %s back to sriov_numvfs=%s in %s", pf.Name, numvfs, time.Since(start).Round(10*time.Millisecond))
	if _, err := d.waitKubelet(ctx, 30*time.Second, func(s kubelettest.Snapshot) bool { return len(s.Devices) == 0 }); err != nil {
		return err
	}
	ok("%s no longer advertises any device", resource)
	result("teardown: VFs returned to the host under their names, PF back to 0 VFs, nothing advertised")
	return nil
}

func (d *node) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", d.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, sluicev1.AddToScheme, nadv1.AddToScheme} {
		if err := add(s); err != nil {
			return err
		}
	}
	d.c, err = client.New(cfg, client.Options{Scheme: s})
	return err
}

func (d *node) startAgent() error {
	k, err := kubelettest.Open(kubeletDir)
	if err != nil {
		return fmt.Errorf("stand-in kubelet: %w", err)
	}
	d.kubelet = k
	logf, err := os.Create(filepath.Join(d.out, "agent.log"))
	if err != nil {
		return err
	}
	d.agent = exec.Command(filepath.Join(d.bin, "sluice"), "agent", "--kubeconfig", d.kubeconfig, "--node-name", d.name,
		"--namespace", "sluice-system", "--kubelet-dir", kubeletDir, "--pod-resources-socket", "",
		"--metrics-bind-address", metricsAddr, "--resync-period", "1m", "--retry-period", "2s")
	d.agent.Stdout, d.agent.Stderr = logf, logf
	if err := d.agent.Start(); err != nil {
		return fmt.Errorf("start sluice agent: %w", err)
	}
	d.agentCh = make(chan error, 1)
	go func() { d.agentCh <- d.agent.Wait(); logf.Close() }()
	ok("sluice agent running (pid %d), stand-in kubelet at %s/kubelet.sock", d.agent.Process.Pid, kubeletDir)
	return nil
}

// applySamples creates the emulated node's policy and VFNetwork from
// config/samples.
func (d *node) applySamples(ctx context.Context) (*sluicev1.NetworkNodePolicy, *sluicev1.VFNetwork, error) {
	policy := &sluicev1.NetworkNodePolicy{}
	vfn := &sluicev1.VFNetwork{}
	for path, obj := range map[string]client.Object{
		"networknodepolicy_emulated_igb.yaml": policy,
		"vfnetwork_emulated_igb.yaml":         vfn,
	} {
		b, err := os.ReadFile(filepath.Join(d.repo, "config", "samples", path))
		if err != nil {
			return nil, nil, err
		}
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := d.c.Create(ctx, obj); err != nil {
			return nil, nil, fmt.Errorf("apply %s: %w", path, err)
		}
	}
	return policy, vfn, nil
}

func (d *node) waitNNS(ctx context.Context, timeout time.Duration, what string, cond func(*sluicev1.NodeNetworkState) bool) (*sluicev1.NodeNetworkState, error) {
	deadline := time.Now().Add(timeout)
	n := &sluicev1.NodeNetworkState{}
	for {
		err := d.c.Get(ctx, client.ObjectKey{Name: d.name}, n)
		if err == nil && cond(n) {
			return n, nil
		}
		select {
		case aerr := <-d.agentCh:
			return nil, fmt.Errorf("sluice agent exited (%v) while waiting for %s; see agent.log", aerr, what)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			last := fmt.Sprintf("sync %q error %q", n.Status.SyncStatus, n.Status.LastSyncError)
			if err != nil {
				last = err.Error()
			}
			return nil, fmt.Errorf("%s: not within %s (last: %s)", what, timeout, last)
		}
	}
}

func (d *node) waitKubelet(ctx context.Context, timeout time.Duration, cond func(kubelettest.Snapshot) bool) (kubelettest.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := d.kubelet.Until(ctx, resource, cond)
	if err != nil {
		return s, fmt.Errorf("%s at the stand-in kubelet: not within %s: %s", resource, timeout, s)
	}
	return s, nil
}

// nadConfig is the CNI configuration of the NetworkAttachmentDefinition the
// operator rendered from the VFNetwork.
func (d *node) nadConfig(ctx context.Context) (map[string]any, error) {
	vfn := &sluicev1.VFNetwork{}
	nad := &nadv1.NetworkAttachmentDefinition{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := d.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: network}, vfn)
		if err == nil && meta.IsStatusConditionTrue(vfn.Status.Conditions, sluicev1.ConditionReady) {
			if err := d.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: network}, nad); err != nil {
				return nil, fmt.Errorf("get NetworkAttachmentDefinition %s/%s: %w", namespace, network, err)
			}
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("VFNetwork %s/%s not Ready within 30s: %v %+v", namespace, network, err, vfn.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var conf map[string]any
	if err := json.Unmarshal([]byte(nad.Spec.Config), &conf); err != nil {
		return nil, fmt.Errorf("NAD config: %w", err)
	}
	ok("NetworkAttachmentDefinition %s/%s (resourceName %s): %s", namespace, network, nad.Annotations["k8s.v1.cni.cncf.io/resourceName"], compact(nad.Spec.Config))
	return conf, nil
}

// cni runs sluice-cni as a runtime with Multus would: the NAD's config with
// the allocated deviceID, the pod's identity in CNI_ARGS.
func (d *node) cni(command string, p *pod, base map[string]any) ([]byte, error) {
	conf := map[string]any{}
	for k, v := range base {
		conf[k] = v
	}
	conf["deviceID"] = p.pci
	stdin, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(d.bin, "sluice-cni"))
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+command, "CNI_CONTAINERID="+p.containerID, "CNI_NETNS=/var/run/netns/"+p.netns,
		"CNI_IFNAME=net1", "CNI_PATH="+d.bin,
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE="+namespace+";K8S_POD_NAME="+p.name+";K8S_POD_INFRA_CONTAINER_ID="+p.containerID)
	cmd.Stdin = strings.NewReader(string(stdin))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s", err, strings.TrimSpace(string(out)), strings.TrimSpace(stderr.String()))
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" {
			info("%s", l)
		}
	}
	return out, nil
}

// dryRun asks what a disruptive change would do, without doing it: two more
// VFs on the PF means destroying all of them (the kernel only changes a VF
// count through 0), so the pods using them would be evicted, and only them.
func (d *node) dryRun(ctx context.Context, base *sluicev1.NetworkNodePolicy, pfName string) error {
	step("A disruptive change, asked as a dry run: 2 more VFs on %s", pfName)
	// The pods as the API server knows them (a kubelet would have created
	// them); the agent matches them to the CNI's attachment records.
	if err := d.c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account: %w", err)
	}
	for _, p := range d.pods {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: namespace, Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": network}},
			Spec: corev1.PodSpec{NodeName: d.name, Containers: []corev1.Container{{
				Name: "app", Image: "registry.k8s.io/pause:3.10",
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{resource: resourceQuantity(1)}},
			}}},
		}
		if err := d.c.Create(ctx, pod); err != nil {
			return fmt.Errorf("create pod %s: %w", p.name, err)
		}
	}
	grow := &sluicev1.NetworkNodePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: base.Name + "-grow"},
		Spec:       *base.Spec.DeepCopy(),
	}
	grow.Spec.DryRun = true
	grow.Spec.NumVfs = base.Spec.NumVfs + 2
	grow.Spec.Priority = 50
	grow.Spec.ResourceName = base.Spec.ResourceName + "-extra"
	grow.Spec.NicSelector.PFNames = []sluicev1.PFName{sluicev1.PFName(fmt.Sprintf("%s#%d-%d", pfName, base.Spec.NumVfs, grow.Spec.NumVfs-1))}
	if err := d.c.Create(ctx, grow); err != nil {
		return fmt.Errorf("create dry-run policy: %w", err)
	}
	ok("NetworkNodePolicy %s (dryRun: true): VFs %s as sluice.dev/%s", grow.Name, grow.Spec.NicSelector.PFNames[0], grow.Spec.ResourceName)
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	var report *sluicev1.DryRunNode
	for report == nil {
		if err := d.c.Get(ctx, client.ObjectKeyFromObject(grow), grow); err != nil {
			return err
		}
		for i := range grow.Status.DryRun {
			if grow.Status.DryRun[i].Node == d.name {
				report = &grow.Status.DryRun[i]
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no dry-run report for %s within 60s: %+v", d.name, grow.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ok("dry run on %s (%s): drain required %v, pods to evict %v", report.Node, since(start), report.DrainRequired, report.PodsToEvict)
	for _, c := range report.Changes {
		info("%s", c)
	}
	result("dry run of +2 VFs on a PF with 2 VFs in use: drain %v, would evict only %v", report.DrainRequired, report.PodsToEvict)
	if err := d.c.Delete(ctx, grow); err != nil {
		return err
	}
	n := strings.TrimSpace(must(sh(5*time.Second, "sh", "-c", "cat /sys/bus/pci/devices/*/sriov_numvfs | grep -v '^0$' | head -1")))
	ok("dry-run policy deleted; nothing was applied: the PF still has %s VFs and both pods their VF", n)
	return nil
}

// rdma shows what the pods get of RDMA, and measures verbs traffic where
// soft-RoCE allows it.
func (d *node) rdma(ctx context.Context) {
	step("RDMA with soft-RoCE: what works and what does not")
	var left, gone []string
	for _, r := range d.rxe {
		if _, err := os.Stat("/sys/class/infiniband/" + r); err == nil {
			left = append(left, r)
		} else {
			gone = append(gone, r)
		}
	}
	mode := strings.TrimSpace(must(sh(5*time.Second, "sh", "-c", "rdma system | sed -n 's/.*netns \\([a-z]*\\).*/\\1/p'")))
	ok("RDMA netns mode %s; rxe devices left: %v; gone with their VF's move into a pod: %v", mode, left, gone)
	if len(d.pods) > 0 {
		seen := strings.Join(strings.Fields(must(sh(5*time.Second, "sh", "-c", "ip netns exec "+d.pods[0].netns+" rdma link | cut -d' ' -f2 | paste -sd' '"))), " ")
		info("%s sees these RDMA devices (shared mode: all of the host's): %s", d.pods[0].name, orDash(seen))
	}
	warn("soft-RoCE limit: an rxe device is bound to its netdev's namespace; moving the VF into a pod removes it, and rxe cannot change namespace (rdma dev set ... netns: not supported)")

	// Verbs traffic between the two VFs no pod took, in the initial
	// namespace, with per-source routing so it crosses the VFs.
	if len(left) < 2 {
		warn("fewer than two rxe devices left: no verbs traffic measured")
		return
	}
	devA, devB := left[0], left[1]
	ifA, ifB := rxeNetdev(devA), rxeNetdev(devB)
	ipA, ipB := "192.168.120.1", "192.168.120.2"
	undo, err := nodeutil.PolicyRouting(ifA, ipA, ifB, ipB, "192.168.120.0/24", [2]int{121, 122})
	d.undo = append(d.undo, undo)
	if err != nil {
		warn("policy routing for verbs traffic: %v", err)
		return
	}
	gA, errA := nodeutil.GIDIndexErr(devA, ipA, 20*time.Second)
	gB, errB := nodeutil.GIDIndexErr(devB, ipB, 20*time.Second)
	if errA != nil || errB != nil {
		warn("RoCE v2 GIDs: %v %v", errA, errB)
		return
	}
	out, rpingErr := rping(ipA, ipB)
	if rpingErr != nil {
		warn("rping %s -> %s: %v", ipB, ipA, rpingErr)
	} else {
		ok("rping (RDMA CM + send/recv) %s/%s -> %s/%s: %s", devB, ifB, devA, ifA, out)
	}
	bw, err := writeBW(devA, gA, devB, gB)
	if err != nil {
		warn("ib_write_bw %s -> %s: %v", devB, devA, err)
		return
	}
	ok("ib_write_bw (RDMA WRITE, 200 x 4 KiB) %s -> %s over the VFs: %s", devB, devA, bw)
	d.figures["ib_write_bw"] = bw
	result("RDMA verbs over VFs (soft-RoCE, initial namespace): ib_write_bw %s; rping ok=%v", bw, rpingErr == nil)
	result("soft-RoCE cannot: follow a VF into a pod (rxe dies with the move, cannot change namespace), nor carry RDMA writes between pods' namespaces on this 6.12 kernel (rxe keeps its UDP socket in the initial namespace); ConnectX VFs (mlx5) in exclusive mode move their RDMA device with the VF, as sluice-cni does")
}

// metrics shows what the agent exports for operators.
func (d *node) metrics() {
	step("Prometheus metrics of the agent, its device plugin and the CNI (http://%s/metrics)", metricsAddr)
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		warn("scrape: %v", err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var shown int
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "sluice_deviceplugin_devices{") || strings.HasPrefix(l, "sluice_cni_operations_total{") ||
			strings.HasPrefix(l, "sluice_agent_vfs_configured{") || strings.HasPrefix(l, "sluice_agent_sync_duration_seconds_count{") ||
			strings.HasPrefix(l, "sluice_deviceplugin_allocations_total{") {
			info("%s", l)
			shown++
		}
	}
	ok("%d sluice series shown", shown)
}

// cleanup undoes what a failed run left: pods detached, rxe devices and
// routing removed, the agent and kubelet stopped.
func (d *node) cleanup() {
	for _, p := range d.pods {
		if p.added {
			if conf, err := d.nadConfig(context.Background()); err == nil {
				_, _ = d.cni("DEL", p, conf)
			}
		}
		_, _ = sh(10*time.Second, "ip", "netns", "del", p.netns)
	}
	for _, r := range d.rxe {
		deleteRXE(r)
	}
	for i := len(d.undo) - 1; i >= 0; i-- {
		d.undo[i]()
	}
	if d.agent != nil && d.agent.Process != nil {
		_ = d.agent.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.agentCh:
		case <-time.After(15 * time.Second):
			_ = d.agent.Process.Kill()
		}
	}
	if d.kubelet != nil {
		d.kubelet.Stop()
	}
}

func (d *node) writeSummary() {
	b, _ := json.MarshalIndent(d.figures, "", "  ")
	_ = os.WriteFile(filepath.Join(d.out, "summary.json"), b, 0o644)
}

// sh runs a command with a timeout and returns its combined output.
func sh(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func must(s string, err error) string {
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

func deleteRXE(name string) {
	if _, err := os.Stat("/sys/class/infiniband/" + name); err == nil {
		_, _ = sh(30*time.Second, "rdma", "link", "delete", name)
	}
}

func rxeNetdev(dev string) string {
	b, _ := os.ReadFile("/sys/class/infiniband/" + dev + "/parent")
	return strings.TrimSpace(string(b))
}

// rping runs 3 rping iterations from ipB to a server on ipA.
func rping(ipA, ipB string) (string, error) {
	srv := exec.Command("rping", "-s", "-a", ipA, "-p", "7180", "-C", "3")
	if err := srv.Start(); err != nil {
		return "", err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	// The server listens through the RDMA CM, not a kernel TCP socket, so
	// there is nothing to wait for: the client tries again while the
	// server is still starting.
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		start := time.Now()
		if _, err = sh(30*time.Second, "rping", "-c", "-a", ipA, "-I", ipB, "-p", "7180", "-C", "3"); err == nil {
			return fmt.Sprintf("3 iterations in %s", time.Since(start).Round(time.Millisecond)), nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return "", err
}

// writeBW runs perftest's ib_write_bw, server on devA, client on devB.
func writeBW(devA string, gidA int, devB string, gidB int) (string, error) {
	args := func(dev string, gid int) []string {
		return []string{"-d", dev, "-x", strconv.Itoa(gid), "-n", "200", "-s", "4096", "-F", "-p", "18530"}
	}
	srv := exec.Command("ib_write_bw", args(devA, gidA)...)
	var sout strings.Builder
	srv.Stdout, srv.Stderr = &sout, &sout
	if err := srv.Start(); err != nil {
		return "", err
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	if err := nodeutil.WaitTCPListenErr("", 18530, 30*time.Second); err != nil {
		_ = srv.Process.Kill()
		<-srvDone
		return "", fmt.Errorf("ib_write_bw server did not listen: %w; %s", err, lastLine(sout.String()))
	}
	out, err := sh(60*time.Second, "ib_write_bw", append(args(devB, gidB), "127.0.0.1")...)
	select {
	case <-srvDone:
	case <-time.After(30 * time.Second):
		_ = srv.Process.Kill()
		<-srvDone
	}
	if err != nil {
		return "", fmt.Errorf("%w; server: %s", err, lastLine(sout.String()))
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 5 && f[0] == "4096" {
			return fmt.Sprintf("average %s MB/s (peak %s MB/s)", f[3], f[2]), nil
		}
	}
	return "", fmt.Errorf("no result line in: %s", out)
}

func healthy(s kubelettest.Snapshot) int {
	n := 0
	for _, d := range s.Devices {
		if d.Health == pluginapi.Healthy {
			n++
		}
	}
	return n
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func pingLoss(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packet loss") {
			return strings.TrimSpace(l)
		}
	}
	return "no summary"
}

func compact(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func resourceQuantity(n int64) apiresource.Quantity {
	return *apiresource.NewQuantity(n, apiresource.DecimalSI)
}
