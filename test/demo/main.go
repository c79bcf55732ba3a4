// Command demo is `make demo`: sluice in a real Kubernetes cluster on one
// machine, used as a user uses it.
//
// It installs and builds what it needs (QEMU with the emulated igb SR-IOV
// NIC, Kubernetes v1.37.1, containerd, runc, Multus and the CNI plugins,
// all from source through the Go module proxy and cached), starts the
// control plane on the host and boots one node (test/node/cluster), then:
// installs sluice with `kubectl apply -k config/default`; applies the
// emulated-igb NetworkNodePolicy and VFNetwork samples and their soft-RoCE
// siblings; runs two pods of a
// Deployment that each get a VF through the kubelet's device plugin and
// Multus calling sluice-cni, and pings between them over the VFs; runs
// rping and ib_write_bw between two pods of the soft-RoCE pool, from inside
// them; measures
// a pod with a VF against one without; restarts the kubelet; asks a dry run
// of a disruptive change; shows the agent's metrics; and prints a summary.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/test/node/cluster"
	"github.com/sluice-net/sluice/test/node/vm"
	"github.com/sluice-net/sluice/test/testenv"
)

const (
	namespace = "demo"
	network   = "igb-net"
	pool      = corev1.ResourceName("sluice.dev/igb-vf")
	// The soft-RoCE pool and its network.
	rocePool    = corev1.ResourceName("sluice.dev/igb-roce")
	roceNetwork = "igb-roce-net"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The demo reports itself; controller-runtime's client logs nothing.
	ctrl.SetLogger(logr.Discard())
	d := &demo{out: os.Stdout, start: time.Now(), root: testenv.RepoRoot(), figures: map[string]float64{}}
	err := d.run(ctx)
	if d.c != nil {
		d.begin("Tearing down: node powered off, control plane stopped")
		d.c.Down()
	}
	d.printSummary(err)
	if err != nil {
		os.Exit(1)
	}
}

type demo struct {
	out   io.Writer
	start time.Time
	root  string
	dir   string
	c     *cluster.Cluster
	k     client.Client

	mu      sync.Mutex
	step    string
	stepAt  time.Time
	results []string
	figures map[string]float64
}

func (d *demo) run(ctx context.Context) error {
	fmt.Fprintf(d.out, "sluice demo: SR-IOV VFs for pods of a real Kubernetes cluster, on one machine (%d cores)\n\n", goruntime.NumCPU())

	d.begin("Installing QEMU with the emulated igb NIC and the guest kernel (cached after the first run)")
	if err := vm.EnsureDeps(ctx, filepath.Join(d.root, "hack", "node-deps.sh")); err != nil {
		return err
	}
	k, err := vm.ChooseKernel()
	if err != nil {
		return err
	}
	d.done("guest kernel %s: %s", k.Version, k.Why)

	if d.dir, err = vm.NewRunDir(""); err != nil {
		return err
	}
	console, err := os.Create(filepath.Join(d.dir, "console.log"))
	if err != nil {
		return err
	}
	defer console.Close()
	d.begin("Bringing up the cluster")
	// Two PFs: the second carries the DRA pool's VF.
	d.c, err = cluster.Up(ctx, cluster.Config{Root: d.root, Dir: d.dir, Console: console, PFs: 2,
		Progress: func(f string, a ...any) { d.info(f, a...) }})
	if err != nil {
		return err
	}
	d.done("control plane on the host, node %s Ready (%s)", cluster.NodeName, strings.Join(d.c.Timings, ", "))
	d.kubectl(ctx, "get", "nodes", "-o", "wide")
	if d.k, err = client.New(d.c.CP.Config, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return err
	}

	d.begin("kubectl apply -k config/default (CRDs, RBAC, operator Deployment, node DaemonSet)")
	if _, err := d.c.Run(ctx, "apply", "--server-side", "-k", "config/default"); err != nil {
		return err
	}
	if err := cluster.Poll(ctx, 6*time.Minute, time.Second, "operator and node agent Ready", func() (bool, error) {
		return d.systemReady(ctx)
	}); err != nil {
		return err
	}
	d.done("operator and agent run from the built image")
	d.kubectl(ctx, "-n", "sluice-system", "get", "pods", "-o", "wide")

	d.begin("The emulated-igb NetworkNodePolicy and VFNetwork samples, their soft-RoCE siblings and the DRA pool's policy")
	if _, err := d.c.Run(ctx, "label", "node", cluster.NodeName, "sluice.dev/emulated=true", "--overwrite"); err != nil {
		return err
	}
	policyAt := time.Now()
	if _, err := d.c.Run(ctx, "apply", "-f", "config/samples/namespace_demo.yaml",
		"-f", "config/samples/networknodepolicy_emulated_igb.yaml", "-f", "config/samples/vfnetwork_emulated_igb.yaml",
		"-f", "config/samples/networknodepolicy_emulated_igb_roce.yaml", "-f", "config/samples/vfnetwork_emulated_igb_roce.yaml",
		// The DRA pool's VF, on the second PF.
		"-f", "config/samples/networknodepolicy_emulated_igb_dra.yaml"); err != nil {
		return err
	}
	if err := d.c.WaitAllocatable(ctx, pool, 4, time.Time{}, 5*time.Minute); err != nil {
		return err
	}
	d.figures["policyToAllocatableSeconds"] = time.Since(policyAt).Seconds()
	if err := d.c.WaitAllocatable(ctx, rocePool, 2, time.Time{}, 3*time.Minute); err != nil {
		return err
	}
	d.done("6 VFs created and configured, then advertised: the kubelet reports 4 %s and 2 %s allocatable (and the second PF has the DRA pool's VF)", pool, rocePool)
	d.kubectl(ctx, "get", "networknodepolicies,nodenetworkstates")
	d.kubectl(ctx, "get", "node", cluster.NodeName, "-o", "jsonpath={.status.allocatable}")

	d.begin("A Deployment of 2 pods, each asking for %s: 1 and the %s network", pool, network)
	created := time.Now()
	if err := d.k.Create(ctx, cluster.Workload(namespace, "pingers", network, pool, 2, 1)); err != nil {
		return err
	}
	pods, err := d.c.RunningPods(ctx, namespace, "pingers", 2, 6*time.Minute)
	if err != nil {
		return err
	}
	d.figures["policyToFirstPodRunningSeconds"] = created.Sub(policyAt).Seconds() + firstRunning(pods, created).Seconds()
	d.done("both Running %s after their creation (%s after the policy)", time.Since(created).Round(100*time.Millisecond), time.Since(policyAt).Round(time.Second))
	d.kubectl(ctx, "-n", namespace, "get", "pods", "-o", "wide")
	for _, p := range pods {
		nets, err := cluster.PodNetworks(&p)
		if err != nil {
			return err
		}
		for _, n := range nets {
			if n.Interface == "net1" {
				d.info("%s network-status: %s on %s, %v, MAC %s, MTU %d", p.Name, n.Name, n.Interface, n.IPs, n.Mac, n.MTU)
			}
		}
		out, err := d.c.Run(ctx, "-n", namespace, "exec", p.Name, "--", "sh", "-c", "grep -h DRIVER /sys/class/net/net1/device/uevent; basename $(readlink /sys/class/net/net1/device)")
		if err != nil {
			return err
		}
		d.info("%s: net1 is VF %s", p.Name, strings.Join(strings.Fields(out), " "))
	}
	ip, err := cluster.InterfaceIP(&pods[1], "net1")
	if err != nil {
		return err
	}
	d.begin("ping from %s to %s over the VFs", pods[0].Name, ip)
	out, err := d.c.Ping(ctx, namespace, pods[0].Name, "net1", ip)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	d.done("%s", lastLine(out, "rtt"))
	d.result("2 pods of a Deployment got VFs through the kubelet, Multus and sluice-cni, and pinged each other over them")

	if err := d.dra(ctx, pods); err != nil {
		return err
	}

	if err := d.rdma(ctx); err != nil {
		return err
	}
	if err := d.podCost(ctx); err != nil {
		return err
	}
	if err := d.kubeletRestart(ctx, pods); err != nil {
		return err
	}
	if err := d.dryRun(ctx, pods); err != nil {
		return err
	}
	return d.metrics(ctx)
}

// rdma runs verbs traffic between two pods of the soft-RoCE pool, from
// inside their containers: each pod sees only the RDMA device sluice-cni
// created on its own VF.
func (d *demo) rdma(ctx context.Context) error {
	d.begin("A Deployment of 2 pods asking for %s: 1 (soft-RoCE) and the %s network", rocePool, roceNetwork)
	created := time.Now()
	if err := d.k.Create(ctx, cluster.RDMAWorkload(namespace, "rdma", roceNetwork, rocePool, 2)); err != nil {
		return err
	}
	pods, err := d.c.RunningPods(ctx, namespace, "rdma", 2, 6*time.Minute)
	if err != nil {
		return err
	}
	d.done("both Running %s after their creation", time.Since(created).Round(100*time.Millisecond))
	for _, p := range pods {
		devs, files, err := d.c.PodRDMADevices(ctx, namespace, p.Name)
		if err != nil {
			return err
		}
		d.info("%s: ibv_devices sees %v; /dev/infiniband has %v", p.Name, devs, files)
	}
	ip, err := cluster.InterfaceIP(&pods[0], "net1")
	if err != nil {
		return err
	}
	d.begin("rping from %s to %s (inside the pods, rdma_cm over soft-RoCE)", pods[1].Name, ip)
	if out, err := d.c.RPing(ctx, namespace, pods[0].Name, ip, pods[1].Name); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	d.done("3 RDMA ping-pongs")
	d.begin("ib_write_bw from %s to %s (200 RDMA writes of 4 KiB)", pods[1].Name, pods[0].Name)
	bw, err := d.c.WriteBW(ctx, namespace, pods[0].Name, ip, pods[1].Name)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, bw)
	}
	d.done("%s (emulated NIC, TCG)", bw)
	if f := strings.Fields(bw); len(f) >= 9 {
		if v, err := strconv.ParseFloat(f[8], 64); err == nil {
			d.figures["softRoCEWriteBWAverageMBps"] = v
		}
	}
	d.result("RDMA between 2 pods, from inside them: rping and ib_write_bw over the soft-RoCE devices sluice-cni made on their VFs (" + bw + ")")
	deleted := time.Now()
	if err := d.k.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "rdma"}}); err != nil {
		return err
	}
	// The per-pod cost is measured next, on an idle node: a pod created
	// while these two were torn down waited for it (measured: a plain
	// pod's sandbox took 33.1 s to start then, the VF pod's after it 10.6 s).
	// Their pod objects go first, their sandboxes' CNI DEL after.
	if err := d.c.PodsGone(ctx, namespace, "rdma", 5*time.Minute); err != nil {
		return err
	}
	if err := d.c.SoftRoCEGone(ctx, 5*time.Minute); err != nil {
		return err
	}
	d.info("deleted: their soft-RoCE devices and CDI specs gone %s later", time.Since(deleted).Round(100*time.Millisecond))
	return nil
}

func (d *demo) systemReady(ctx context.Context) (bool, error) {
	var l corev1.PodList
	if err := d.k.List(ctx, &l, client.InNamespace("sluice-system")); err != nil {
		return false, err
	}
	ready := 0
	for _, p := range l.Items {
		for _, c := range p.Status.ContainerStatuses {
			if c.Ready {
				ready++
			}
		}
	}
	return ready >= 2, fmt.Errorf("%d of the operator's and agent's containers ready", ready)
}

// podCost measures what sluice adds per pod: a pod with a VF against one
// on the cluster network alone, each created alone on the idle node.
func (d *demo) podCost(ctx context.Context) error {
	d.begin("Per-pod cost: pod create to Running, with a VF (device plugin and Multus, or a DRA claim) and without a secondary network")
	var times []time.Duration
	for _, w := range []struct {
		name, network string
		vfs           int64
	}{{"plain", "", 0}, {"with-vf", network, 1}, {"with-dra", "", 0}} {
		created := time.Now()
		wl := cluster.Workload(namespace, w.name, w.network, pool, 1, w.vfs)
		if w.name == "with-dra" {
			wl = cluster.DRAWorkload(namespace, w.name, 1, draTemplate)
		}
		if err := d.k.Create(ctx, wl); err != nil {
			return err
		}
		pods, err := d.c.RunningPods(ctx, namespace, w.name, 1, 4*time.Minute)
		if err != nil {
			return err
		}
		times = append(times, firstRunning(pods, created))
	}
	d.figures["podRunningWithoutVFSeconds"] = times[0].Seconds()
	d.figures["podRunningWithVFSeconds"] = times[1].Seconds()
	d.figures["podRunningWithDRAVFSeconds"] = times[2].Seconds()
	d.done("without %s, with a VF %s (%.2fx), with a DRA-claimed VF %s (%.2fx the device plugin's)", times[0].Round(100*time.Millisecond),
		times[1].Round(100*time.Millisecond), times[1].Seconds()/times[0].Seconds(), times[2].Round(100*time.Millisecond), times[2].Seconds()/times[1].Seconds())
	for _, n := range []string{"plain", "with-vf", "with-dra"} {
		if _, err := d.c.Run(ctx, "-n", namespace, "delete", "deployment", n, "--wait=false"); err != nil {
			return err
		}
	}
	return nil
}

// kubeletRestart restarts the kubelet: the pool is allocatable again and
// the pods keep their VFs.
func (d *demo) kubeletRestart(ctx context.Context, pods []corev1.Pod) error {
	d.begin("Restarting the kubelet (the incumbents' \"zero allocatable after restarts\")")
	if _, err := d.c.Node.Sh(ctx, "pkill -x kubelet"); err != nil {
		return err
	}
	restarted := time.Now()
	if err := d.c.WaitAllocatable(ctx, pool, 4, restarted, 3*time.Minute); err != nil {
		return err
	}
	d.figures["kubeletRestartToAllocatableSeconds"] = time.Since(restarted).Seconds()
	after, err := d.c.RunningPods(ctx, namespace, "pingers", 2, time.Minute)
	if err != nil {
		return err
	}
	kept := 0
	for _, a := range after {
		for _, b := range pods {
			if a.UID == b.UID && a.Status.ContainerStatuses[0].RestartCount == b.Status.ContainerStatuses[0].RestartCount {
				kept++
			}
		}
	}
	d.done("4 %s allocatable again %s after the restart; %d of 2 pods kept running with their VFs", pool, time.Since(restarted).Round(100*time.Millisecond), kept)
	d.result(fmt.Sprintf("kubelet restart: allocatable back in %s, running pods undisturbed", time.Since(restarted).Round(100*time.Millisecond)))
	return nil
}

// dryRun asks what a disruptive change would do, without doing it: two
// more VFs on the PF means destroying all of them (the kernel changes a VF
// count only through 0), so the pods using them would be evicted.
func (d *demo) dryRun(ctx context.Context, pods []corev1.Pod) error {
	d.begin("A disruptive change asked as a dry run: one more VF on the PF")
	var base sluicev1.NetworkNodePolicy
	if err := d.k.Get(ctx, client.ObjectKey{Name: "emulated-igb"}, &base); err != nil {
		return err
	}
	have, err := d.c.Node.Sh(ctx, "cat /sys/class/net/eth0/device/sriov_numvfs")
	if err != nil {
		return err
	}
	numVfs, err := strconv.Atoi(strings.TrimSpace(have))
	if err != nil {
		return fmt.Errorf("sriov_numvfs %q: %w", have, err)
	}
	grow := &sluicev1.NetworkNodePolicy{ObjectMeta: metav1.ObjectMeta{Name: "emulated-igb-grow"}, Spec: *base.Spec.DeepCopy()}
	grow.Spec.DryRun = true
	grow.Spec.NumVfs = int32(numVfs + 1)
	grow.Spec.Priority = 50
	grow.Spec.ResourceName = base.Spec.ResourceName + "-extra"
	grow.Spec.NicSelector.PFNames = []sluicev1.PFName{sluicev1.PFName(fmt.Sprintf("eth0#%d-%d", numVfs, numVfs))}
	if err := d.k.Create(ctx, grow); err != nil {
		return err
	}
	var report *sluicev1.DryRunNode
	if err := cluster.Poll(ctx, 2*time.Minute, 250*time.Millisecond, "a dry-run report", func() (bool, error) {
		if err := d.k.Get(ctx, client.ObjectKeyFromObject(grow), grow); err != nil {
			return false, err
		}
		for i := range grow.Status.DryRun {
			if grow.Status.DryRun[i].Node == cluster.NodeName {
				report = &grow.Status.DryRun[i]
			}
		}
		return report != nil, fmt.Errorf("status %+v", grow.Status)
	}); err != nil {
		return err
	}
	d.done("drain required %v; pods to evict %v", report.DrainRequired, report.PodsToEvict)
	for _, c := range report.Changes {
		d.info("%s", c)
	}
	if err := d.k.Delete(ctx, grow); err != nil {
		return err
	}
	n, err := d.c.Node.Sh(ctx, "cat /sys/class/net/eth0/device/sriov_numvfs")
	if err != nil {
		return err
	}
	d.info("nothing applied: the PF still has %s VFs", strings.TrimSpace(n))
	d.result(fmt.Sprintf("dry run of +1 VF: drain %v, would evict exactly %v", report.DrainRequired, report.PodsToEvict))
	return nil
}

func (d *demo) metrics(ctx context.Context) error {
	d.begin("The agent's Prometheus metrics (:9402 on the node, HTTPS, for a reader bound to sluice-metrics-reader)")
	// A scraper's identity, as Prometheus would have: a service account
	// bound to the manifests' metrics-reader role, with a short-lived token.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "demo-metrics-scraper", Namespace: "sluice-system"}}
	if err := d.k.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "demo-metrics-scraper"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "sluice-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}}}
	if err := d.k.Create(ctx, crb); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	expiry := int64(600)
	tok, err := d.c.CP.Client.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for the metrics scraper: %w", err)
	}
	// The agent's serving certificate is self-signed (-k), as with
	// controller-runtime's default secure metrics.
	var out string
	err = retry(ctx, 30*time.Second, func() error {
		var err error
		out, err = d.c.Node.Sh(ctx, "curl -sfk -H 'Authorization: Bearer "+tok.Status.Token+"' https://127.0.0.1:9402/metrics | grep -E '^sluice_(deviceplugin_devices|deviceplugin_allocations_total|cni_operations_total|agent_vfs_configured)'")
		return err // the binding may take a moment to reach the authorizer
	})
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	d.done("%d sluice series", len(lines))
	for _, l := range lines {
		d.info("%s", l)
	}
	return nil
}

func firstRunning(pods []corev1.Pod, created time.Time) time.Duration {
	var first time.Time
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && (first.IsZero() || c.LastTransitionTime.Time.Before(first)) {
				first = c.LastTransitionTime.Time
			}
		}
	}
	if first.IsZero() {
		return time.Since(created)
	}
	// Conditions have second resolution; never report less than zero.
	return max(first.Sub(created), 0)
}

func lastLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packet loss") || strings.HasPrefix(l, prefix) {
			prefix = l
		}
	}
	return prefix
}

// kubectl runs kubectl and shows its output indented.
func (d *demo) kubectl(ctx context.Context, args ...string) {
	out, err := d.c.Run(ctx, args...)
	fmt.Fprintf(d.out, "          $ kubectl %s\n", strings.Join(args, " "))
	if err != nil {
		fmt.Fprintf(d.out, "          %v\n", err)
	}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Fprintf(d.out, "          %s\n", l)
	}
}

// begin starts a step; the previous one, if still open, is done.
func (d *demo) begin(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.step, d.stepAt = fmt.Sprintf(format, a...), time.Now()
	fmt.Fprintf(d.out, "%s ▶ %s\n", d.clock(), d.step)
}

// done reports the current step's result.
func (d *demo) done(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "%s   ✔ %s (%s)\n", d.clock(), fmt.Sprintf(format, a...), time.Since(d.stepAt).Round(100*time.Millisecond))
}

func (d *demo) info(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "          %s\n", fmt.Sprintf(format, a...))
}

func (d *demo) result(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.results = append(d.results, s)
}

func (d *demo) clock() string {
	e := time.Since(d.start).Round(time.Second)
	return fmt.Sprintf("[%02d:%02d]", int(e.Minutes()), int(e.Seconds())%60)
}

func (d *demo) printSummary(err error) {
	w := d.out
	fmt.Fprintf(w, "\n──────────────────────────── summary ────────────────────────────\n")
	for _, r := range d.results {
		fmt.Fprintf(w, "  %s\n", r)
	}
	if len(d.figures) > 0 {
		keys := make([]string, 0, len(d.figures))
		for k := range d.figures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var figs []string
		for _, k := range keys {
			figs = append(figs, fmt.Sprintf("%s=%.2f", k, d.figures[k]))
		}
		fmt.Fprintf(w, "  figures: %s\n", strings.Join(figs, ", "))
		// make bench collects the figures of several runs.
		if path := os.Getenv("SLUICE_DEMO_FIGURES"); path != "" {
			b, _ := json.Marshal(d.figures)
			if werr := os.WriteFile(path, b, 0o644); werr != nil {
				fmt.Fprintf(w, "  SLUICE_DEMO_FIGURES: %v\n", werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(w, "  FAILED during %q: %v\n", d.step, err)
		if d.dir != "" {
			fmt.Fprintf(w, "  everything the demo wrote is kept in %s (node logs in node/logs)\n", d.dir)
		}
	} else {
		fmt.Fprintf(w, "  demo complete in %s\n", time.Since(d.start).Round(time.Second))
		if d.dir != "" && os.Getenv("SLUICE_DEMO_KEEP") == "" {
			_ = os.RemoveAll(d.dir)
		} else if d.dir != "" {
			fmt.Fprintf(w, "  kept %s (SLUICE_DEMO_KEEP)\n", d.dir)
		}
	}
	fmt.Fprintf(w, "─────────────────────────────────────────────────────────────────\n")
}

// retry runs f until it succeeds or timeout passes, returning its last
// error.
func retry(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(2 * time.Second)
	}
}
