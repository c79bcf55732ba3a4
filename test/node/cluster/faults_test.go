package cluster

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// podSet is the UIDs and restart counts of running pods.
func podSet(pods []corev1.Pod) map[string]int32 {
	m := map[string]int32{}
	for _, p := range pods {
		var n int32
		for _, c := range p.Status.ContainerStatuses {
			n += c.RestartCount
		}
		m[string(p.UID)] = n
	}
	return m
}

func samePods(t *testing.T, what string, before, after map[string]int32) {
	t.Helper()
	for uid, n := range before {
		if m, ok := after[uid]; !ok {
			t.Errorf("%s: pod %s was replaced", what, uid)
		} else if m != n {
			t.Errorf("%s: pod %s restarted (%d -> %d)", what, uid, n, m)
		}
	}
}

// vfSettings is what `ip link` says of the PF's VFs.
func (e *e2e) vfSettings(t *testing.T) string {
	t.Helper()
	out, err := e.c.Node.Sh(e.ctx, "ip link show eth0 | grep ' vf '")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *e2e) waitPool(t *testing.T, res corev1.ResourceName, n int64, timeout time.Duration) {
	t.Helper()
	if err := e.c.WaitAllocatable(e.ctx, res, n, time.Time{}, timeout); err != nil {
		t.Fatal(err)
	}
}

// nnsGeneration is the node's NodeNetworkState's generation now.
func (e *e2e) nnsGeneration(t *testing.T) int64 {
	t.Helper()
	u, err := e.dyn.Resource(nnsGVR).Get(e.ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		return 0
	}
	return u.GetGeneration()
}

// waitSynced waits for the agent to apply a NodeNetworkState spec newer
// than generation after (the operator renders a policy change into the
// spec a moment after the policy changes).
func (e *e2e) waitSynced(t *testing.T, after int64, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("NodeNetworkState Succeeded for a spec newer than generation %d", after), func() (bool, error) {
		u, err := e.dyn.Resource(nnsGVR).Get(e.ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st, _, _ := unstructured.NestedString(u.Object, "status", "syncStatus")
		gen, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		msg, _, _ := unstructured.NestedString(u.Object, "status", "lastSyncError")
		return st == "Succeeded" && gen == u.GetGeneration() && gen > after,
			fmt.Errorf("syncStatus %q for generation %d of %d %s", st, gen, u.GetGeneration(), msg)
	})
}

// agentImageUpdate: a new operator image (the same build under a second
// tag) rolls the node DaemonSet; running pods are undisturbed.
func (e *e2e) agentImageUpdate(t *testing.T) {
	cs := e.c.CP.Client
	before := podSet(e.runningPods(t, "pingers", 2, time.Minute))
	vfs := e.vfSettings(t)
	// One change of the operator's Deployment, as a user upgrading and
	// turning CDI on at once: the node DaemonSet rolls once.
	e.kubectl(t, "-n", "sluice-system", "patch", "deployment", "sluice-operator", "--type", "json", "-p",
		`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"`+SluiceImageNext+`"},`+
			`{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--node-cdi"}]`)
	e.kubectl(t, "-n", "sluice-system", "set", "env", "deployment/sluice-operator", "SLUICE_NODE_IMAGE="+SluiceImageNext)
	rolled := time.Now()
	eventually(t, 6*time.Minute, "agent DaemonSet rolled to the new image with --cdi", func() (bool, error) {
		ds, err := cs.AppsV1().DaemonSets("sluice-system").Get(e.ctx, "sluice-node", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		c := ds.Spec.Template.Spec.Containers[0]
		l, err := cs.CoreV1().Pods("sluice-system").List(e.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=node-agent"})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range l.Items {
			// The status names the image by its first tag (both tags are
			// one digest): the spec says which was asked for.
			if p.DeletionTimestamp == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready &&
				p.Spec.Containers[0].Image == SluiceImageNext && slices.Contains(p.Spec.Containers[0].Args, "--cdi") {
				ready++
			}
		}
		return c.Image == SluiceImageNext && slices.Contains(c.Args, "--cdi") && ready == 1 && len(l.Items) == 1,
			fmt.Errorf("DaemonSet image %s args %v, %d agent pods, %d ready on the new image with --cdi", c.Image, c.Args, len(l.Items), ready)
	})
	if err := e.c.WaitAllocatable(e.ctx, poolResource, 4, rolled, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	samePods(t, "agent rolling update", before, podSet(e.runningPods(t, "pingers", 2, time.Minute)))
	e.registrationsClean(t)
	if after := e.vfSettings(t); after != vfs {
		t.Errorf("VF settings changed by the rolling update:\n%s\n%s", vfs, after)
	}
	if n := e.vfsInPods(t); n != 2 {
		t.Errorf("%d VFs in pods after the rolling update, want 2", n)
	}
}

// reboot: the VM powers off and boots again with the cluster state and
// the node's /var kept. The agent creates the VFs again, and the
// Deployment's pods run with VFs again: nothing stale blocks them.
func (e *e2e) reboot(t *testing.T) {
	before := e.runningPods(t, "pingers", 2, time.Minute)
	if err := e.c.Node.Shutdown(3 * time.Minute); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	start := time.Now()
	if err := e.c.Node.Boot(e.ctx, 10*time.Minute); err != nil {
		t.Fatalf("boot: %v\n%s", err, e.c.Node.Log("kubelet", 20))
	}
	if out, _ := e.c.Node.Sh(e.ctx, "cat /mnt/node/boots"); strings.TrimSpace(out) != "2" {
		t.Errorf("the node's disk says boot %q, want 2: /var did not persist", out)
	}
	t.Logf("node Ready again %s after power-on", time.Since(start).Round(time.Second))
	eventually(t, 5*time.Minute, "the agent creating the VFs again", func() (bool, error) {
		out, err := e.c.Node.Sh(e.ctx, "cat /sys/class/net/eth0/device/sriov_numvfs")
		return err == nil && strings.TrimSpace(out) == strconv.Itoa(nodeVFs), fmt.Errorf("sriov_numvfs %q %v", out, err)
	})
	pods := e.runningPods(t, "pingers", 2, 8*time.Minute)
	t.Logf("2 pods of the Deployment Running with VFs %s after power-on", time.Since(start).Round(time.Second))
	e.waitPool(t, poolResource, 4, 2*time.Minute)
	if n := e.vfsInPods(t); n != 2 {
		t.Errorf("%d VFs in pods after the reboot, want 2", n)
	}
	kept := 0
	for _, p := range pods {
		for _, b := range before {
			if p.UID == b.UID {
				kept++
			}
		}
	}
	t.Logf("%d of 2 pods kept across the reboot (the others were created again by the Deployment)", kept)
	e.registrationsClean(t)
	if out, err := e.c.Ping(e.ctx, demoNS, pods[0].Name, "net1", net1IP(t, &pods[1])); err != nil {
		t.Fatalf("after the reboot: %v\n%s", err, out)
	}
}

// registrationsClean checks that the kubelet never refused a pool's
// registration as "already connected": the kubelet (1.37) then keeps an
// endpoint it never removes, and stops taking the pool's updates.
func (e *e2e) registrationsClean(t *testing.T) {
	t.Helper()
	if n := strings.Count(e.c.Node.Log("kubelet", 1<<30), "device plugin already connected"); n != 0 {
		t.Errorf("the kubelet refused %d device-plugin registrations as already connected", n)
	}
}

func (e *e2e) deleteDeployment(t *testing.T, name string) {
	t.Helper()
	_ = e.c.CP.Client.AppsV1().Deployments(demoNS).Delete(e.ctx, name, metav1.DeleteOptions{})
	if err := e.c.PodsGone(e.ctx, demoNS, name, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
}

func (e *e2e) apply(t *testing.T, yaml string) {
	t.Helper()
	f, err := os.CreateTemp("", "sluice-e2e-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(yaml); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e.kubectl(t, "apply", "-f", f.Name())
}

// rangePolicy is a policy for a VF range of the emulated igb PF with its
// own pool and network.
func rangePolicy(name, vfRange string, trust bool) string {
	return fmt.Sprintf(`apiVersion: sluice.dev/v1alpha1
kind: NetworkNodePolicy
metadata:
  name: %[1]s
spec:
  nodeSelector: {sluice.dev/emulated: "true"}
  nicSelector: {pfNames: ["eth0#%[2]s"]}
  numVfs: 4
  resourceName: %[1]s
  vfConfig: {spoofChk: true, trust: %[3]v}
---
apiVersion: sluice.dev/v1alpha1
kind: VFNetwork
metadata:
  name: %[1]s
  namespace: demo
spec:
  resourceName: %[1]s
  ipam: '{"type": "host-local", "subnet": "10.57.0.0/24"}'
`, name, vfRange, trust)
}

// rangeDeployment is one pod with a VF of rangePolicy name's pool and
// network.
func rangeDeployment(name string) *appsv1.Deployment {
	return Workload(demoNS, name, name, corev1.ResourceName("sluice.dev/"+name), 1, 1)
}

// policyChangeEvicts: two policies share the PF by VF range, each with its
// pool and one pod. A trust change to one range applies under its running
// pod; an MTU change evicts exactly that range's pod, through the
// Eviction API: a PodDisruptionBudget that allows no disruption holds the
// eviction (and the agent says so) until it allows one. The other pod is
// untouched throughout.
func (e *e2e) policyChangeEvicts(t *testing.T) {
	cs := e.c.CP.Client
	e.deleteDeployment(t, "pingers")
	gen := e.nnsGeneration(t)
	e.kubectl(t, "delete", "networknodepolicy", "emulated-igb")
	e.apply(t, rangePolicy("igb-a", "0-1", false)+"---\n"+rangePolicy("igb-b", "2-3", false))
	e.waitSynced(t, gen, 5*time.Minute)
	e.waitPool(t, "sluice.dev/igb-a", 2, 3*time.Minute)
	e.waitPool(t, "sluice.dev/igb-b", 2, 3*time.Minute)
	for _, n := range []string{"igb-a", "igb-b"} {
		if _, err := cs.AppsV1().Deployments(demoNS).Create(e.ctx, rangeDeployment(n), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	one := intstr.FromInt32(1)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "igb-b", Namespace: demoNS},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "igb-b"}}},
	}
	if _, err := cs.PolicyV1().PodDisruptionBudgets(demoNS).Create(e.ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := podSet(e.runningPods(t, "igb-a", 1, 5*time.Minute))
	bPods := e.runningPods(t, "igb-b", 1, 5*time.Minute)
	eventually(t, time.Minute, "the PDB's status from the disruption controller", func() (bool, error) {
		p, err := cs.PolicyV1().PodDisruptionBudgets(demoNS).Get(e.ctx, "igb-b", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.CurrentHealthy == 1 && p.Status.DisruptionsAllowed == 0 && p.Status.ObservedGeneration == p.Generation,
			fmt.Errorf("PDB status %+v", p.Status)
	})

	// Trust is a PF-side setting: it changes under a running pod, no
	// drain needed.
	gen = e.nnsGeneration(t)
	e.kubectl(t, "patch", "networknodepolicy", "igb-b", "--type", "merge", "-p", `{"spec":{"vfConfig":{"trust":true}}}`)
	e.waitSynced(t, gen, 3*time.Minute)
	vfs := e.vfSettings(t)
	for i, line := range strings.Split(strings.TrimSpace(vfs), "\n") {
		want := "trust off" // igb-a: VFs 0-1
		switch {
		case i >= 4:
			continue // the soft-RoCE and vfio-pci pools' VFs
		case i >= 2:
			want = "trust on" // igb-b: VFs 2-3
		}
		if !strings.Contains(line, want) {
			t.Errorf("VF %d: %q, want %s", i, line, want)
		}
	}
	samePods(t, "a trust change", podSet(bPods), podSet(e.runningPods(t, "igb-b", 1, time.Minute)))

	// An MTU change cannot reach a VF inside a pod: it needs the pod gone.
	gen = e.nnsGeneration(t)
	e.kubectl(t, "patch", "networknodepolicy", "igb-b", "--type", "merge", "-p", `{"spec":{"mtu":9000}}`)
	eventually(t, 3*time.Minute, "the agent draining demo/"+bPods[0].Name+" and reporting the PDB's refusal", func() (bool, error) {
		u, err := e.dyn.Resource(nnsGVR).Get(e.ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		state, _, _ := unstructured.NestedString(u.Object, "status", "drain", "state")
		reason, _, _ := unstructured.NestedString(u.Object, "status", "drain", "reason")
		pods, _, _ := unstructured.NestedStringSlice(u.Object, "status", "drain", "pods")
		return state == "Draining" && strings.Contains(reason, "eviction refused") &&
				len(pods) == 1 && pods[0] == demoNS+"/"+bPods[0].Name,
			fmt.Errorf("drain %s %v: %s", state, pods, reason)
	})
	time.Sleep(5 * time.Second)
	if p, err := cs.CoreV1().Pods(demoNS).Get(e.ctx, bPods[0].Name, metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("the PDB did not hold the eviction of %s: %v", bPods[0].Name, err)
	}
	samePods(t, "PDB holding", a, podSet(e.runningPods(t, "igb-a", 1, time.Minute)))

	// The budget allows one disruption: the agent's retry evicts the pod,
	// applies the change, and the Deployment's new pod gets a VF with it.
	e.kubectl(t, "-n", demoNS, "patch", "pdb", "igb-b", "--type", "json",
		"-p", `[{"op":"remove","path":"/spec/minAvailable"},{"op":"add","path":"/spec/maxUnavailable","value":1}]`)
	eventually(t, 5*time.Minute, "the held pod evicted and replaced", func() (bool, error) {
		l, err := cs.CoreV1().Pods(demoNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app=igb-b"})
		if err != nil {
			return false, err
		}
		for _, p := range l.Items {
			if p.UID == bPods[0].UID {
				return false, fmt.Errorf("pod %s still there (%s)", p.Name, p.Status.Phase)
			}
		}
		return true, nil
	})
	e.waitSynced(t, gen, 3*time.Minute)
	newB := e.runningPods(t, "igb-b", 1, 5*time.Minute)
	aPods := e.runningPods(t, "igb-a", 1, time.Minute)
	samePods(t, "policy change of the other range", a, podSet(aPods))
	for _, c := range []struct {
		pod  string
		want string
	}{{newB[0].Name, "9000"}, {aPods[0].Name, "1500"}} {
		out := e.kubectl(t, "-n", demoNS, "exec", c.pod, "--", "cat", "/sys/class/net/net1/mtu")
		if strings.TrimSpace(out) != c.want {
			t.Errorf("pod %s: net1 MTU %q, want %s", c.pod, strings.TrimSpace(out), c.want)
		}
	}
	e.deleteDeployment(t, "igb-a")
	e.deleteDeployment(t, "igb-b")
	e.kubectl(t, "-n", demoNS, "delete", "pdb", "igb-b")
	e.kubectl(t, "delete", "networknodepolicy", "igb-a", "igb-b")
	e.kubectl(t, "-n", demoNS, "delete", "vfnetwork", "igb-a", "igb-b")
}

// jumbo: a policy and VFNetwork with MTU 9000 give the pods' net1 MTU 9000,
// and an 8972-byte ping with don't-fragment crosses between them.
func (e *e2e) jumbo(t *testing.T) {
	gen := e.nnsGeneration(t)
	e.kubectl(t, "apply", "-f", "config/samples/networknodepolicy_emulated_igb.yaml")
	e.kubectl(t, "patch", "networknodepolicy", "emulated-igb", "--type", "merge", "-p", `{"spec":{"mtu":9000}}`)
	e.apply(t, `apiVersion: sluice.dev/v1alpha1
kind: VFNetwork
metadata:
  name: igb-jumbo
  namespace: demo
spec:
  resourceName: igb-vf
  mtu: 9000
  ipam: '{"type": "host-local", "subnet": "10.58.0.0/24"}'
`)
	eventually(t, 5*time.Minute, "the PF at MTU 9000", func() (bool, error) {
		out, err := e.c.Node.Sh(e.ctx, "cat /sys/class/net/eth0/mtu")
		return err == nil && strings.TrimSpace(out) == "9000", fmt.Errorf("PF MTU %q %v", out, err)
	})
	e.waitSynced(t, gen, 5*time.Minute)
	e.waitPool(t, poolResource, 4, 3*time.Minute)
	d := Workload(demoNS, "jumbo", "igb-jumbo", poolResource, 2, 1)
	if _, err := e.c.CP.Client.AppsV1().Deployments(demoNS).Create(e.ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := e.runningPods(t, "jumbo", 2, 5*time.Minute)
	for _, p := range pods {
		out := e.kubectl(t, "-n", demoNS, "exec", p.Name, "--", "cat", "/sys/class/net/net1/mtu")
		if strings.TrimSpace(out) != "9000" {
			t.Errorf("pod %s: net1 MTU %q, want 9000", p.Name, out)
		}
	}
	pf, err := e.c.Node.Sh(e.ctx, "cat /sys/class/net/eth0/mtu")
	if err != nil || strings.TrimSpace(pf) != "9000" {
		t.Errorf("PF MTU %q (%v), want 9000", pf, err)
	}
	if out, err := e.c.Ping(e.ctx, demoNS, pods[0].Name, "net1", net1IP(t, &pods[1]), "-M", "do", "-s", "8972"); err != nil {
		t.Fatalf("8972-byte ping with don't-fragment over net1: %v\n%s", err, out)
	}
	e.deleteDeployment(t, "jumbo")
}

// churn: pods with a VF created and deleted again and again; afterwards no
// VF outside the host namespace, no attachment record, no cache entry, and
// the whole pool allocatable.
func (e *e2e) churn(t *testing.T) {
	cycles := 100
	if v := os.Getenv("SLUICE_CLUSTER_CHURN"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("SLUICE_CLUSTER_CHURN=%q: want a positive number of cycles", v)
		}
		cycles = n
	}
	cs := e.c.CP.Client
	workers := 4 // one per VF of the pool
	if v := os.Getenv("SLUICE_CLUSTER_CHURN_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 4 {
			t.Fatalf("SLUICE_CLUSTER_CHURN_WORKERS=%q: want 1 to 4 (the pool has 4 VFs)", v)
		}
		workers = n
	}
	start := time.Now()
	var mu sync.Mutex
	var failures []string
	var phases []churnPhases
	next := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				failed := len(failures) > 0
				mu.Unlock()
				if i >= cycles || failed {
					return
				}
				ph, err := e.churnOnce(fmt.Sprintf("churn-%d-%d", w, i))
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					return
				}
				mu.Lock()
				phases = append(phases, ph)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("churn: %s", strings.Join(failures, "; "))
	}
	t.Logf("%d pod create/delete cycles with a VF in %s (%d at a time); medians: %s", cycles, time.Since(start).Round(time.Second), workers, medianPhases(phases))
	// A pod object is gone once its containers stopped; the kubelet tears
	// its sandbox (and so the CNI DEL) down a moment later.
	eventually(t, 2*time.Minute, "every VF back on the host and no record or cache entry left", func() (bool, error) {
		n := e.vfsInPods(t)
		out, err := e.c.Node.Sh(e.ctx, "ls /run/sluice/cni/attachments /run/sluice/cni/cache 2>/dev/null | grep -c json; true")
		if err != nil {
			return false, err
		}
		return n == 0 && strings.TrimSpace(out) == "0", fmt.Errorf("%d VFs outside the host namespace, %s records or cache entries", n, strings.TrimSpace(out))
	})
	e.waitPool(t, poolResource, 4, time.Minute)
	l, err := cs.CoreV1().Pods(demoNS).List(e.ctx, metav1.ListOptions{})
	if err == nil && len(l.Items) != 0 {
		t.Errorf("%d pods left in %s", len(l.Items), demoNS)
	}
}

// churnPhases is where one churn cycle's time went, from the pod's own
// timestamps where the API has them.
type churnPhases struct {
	// scheduled: creation to PodScheduled; sandbox: to PodReadyToStartContainers
	// (the sandbox with its networks, Multus and sluice-cni included);
	// running: to the phase Running seen; gone: deletion to the object gone.
	scheduled, sandbox, running, gone time.Duration
	// failures are the pod's warning events before it ran (reason: message).
	failures []string
}

func medianPhases(ps []churnPhases) string {
	if len(ps) == 0 {
		return "none"
	}
	med := func(f func(churnPhases) time.Duration) time.Duration {
		v := make([]time.Duration, len(ps))
		for i, p := range ps {
			v[i] = f(p)
		}
		slices.Sort(v)
		return v[len(v)/2].Round(100 * time.Millisecond)
	}
	// Warnings by reason, with the first message of each (cut short).
	count, first := map[string]int{}, map[string]string{}
	for _, p := range ps {
		for _, f := range p.failures {
			reason, msg, _ := strings.Cut(f, ": ")
			count[reason]++
			if _, ok := first[reason]; !ok {
				first[reason] = msg[:min(len(msg), 240)]
			}
		}
	}
	var warnings []string
	for _, r := range slices.Sorted(maps.Keys(count)) {
		warnings = append(warnings, fmt.Sprintf("%d %s (first: %s)", count[r], r, first[r]))
	}
	return fmt.Sprintf("created to scheduled %s, to sandbox ready %s, to Running seen %s; deleted to gone %s; warnings before Running: %s",
		med(func(p churnPhases) time.Duration { return p.scheduled }), med(func(p churnPhases) time.Duration { return p.sandbox }),
		med(func(p churnPhases) time.Duration { return p.running }), med(func(p churnPhases) time.Duration { return p.gone }),
		strings.Join(warnings, "; "))
}

// churnOnce creates a pod with a VF, waits for it to run and deletes it.
func (e *e2e) churnOnce(name string) (churnPhases, error) {
	var ph churnPhases
	cs := e.c.CP.Client
	d := workloadDeployment(name, 1, 1)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: demoNS, Annotations: d.Spec.Template.Annotations},
		Spec: d.Spec.Template.Spec}
	created := time.Now()
	if _, err := cs.CoreV1().Pods(demoNS).Create(e.ctx, pod, metav1.CreateOptions{}); err != nil {
		return ph, err
	}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		p, err := cs.CoreV1().Pods(demoNS).Get(e.ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			ph.running = time.Since(created)
			if evs, err := cs.CoreV1().Events(demoNS).List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name}); err == nil {
				for _, ev := range evs.Items {
					if ev.Type == corev1.EventTypeWarning {
						for range max(ev.Count, 1) {
							ph.failures = append(ph.failures, ev.Reason+": "+ev.Message)
						}
					}
				}
			}
			for _, c := range p.Status.Conditions {
				at := c.LastTransitionTime.Sub(p.CreationTimestamp.Time)
				switch c.Type {
				case corev1.PodScheduled:
					ph.scheduled = at
				case corev1.PodReadyToStartContainers:
					ph.sandbox = at
				}
			}
			break
		}
		if err == nil && p.Status.Phase == corev1.PodFailed {
			return ph, fmt.Errorf("pod %s failed: %s %s", name, p.Status.Reason, p.Status.Message)
		}
		if time.Now().After(deadline) {
			reason := ""
			if p != nil {
				reason = string(p.Status.Phase) + PodReason(p)
			}
			return ph, fmt.Errorf("pod %s not Running after 4m: %s %v", name, reason, err)
		}
		time.Sleep(time.Second)
	}
	deleted := time.Now()
	if err := cs.CoreV1().Pods(demoNS).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		return ph, err
	}
	for {
		if _, err := cs.CoreV1().Pods(demoNS).Get(e.ctx, name, metav1.GetOptions{}); err != nil {
			ph.gone = time.Since(deleted)
			return ph, nil
		}
		if time.Now().After(deadline.Add(2 * time.Minute)) {
			return ph, fmt.Errorf("pod %s not gone 2m after its deletion", name)
		}
		time.Sleep(time.Second)
	}
}

// deviceSpecs: by default the device plugin answers Allocate with device
// specs: a pod of the vfio-pci pool gets /dev/vfio/vfio and its VF's
// /dev/vfio/<group>.
func (e *e2e) deviceSpecs(t *testing.T) {
	e.vfioPod(t, "vfio-specs")
}

// cdi: after the operator's --node-cdi (AgentImageRollingUpdateToCDI), the
// device plugin writes the pool's CDI spec into /var/run/cdi and answers
// Allocate with CDI names only, which containerd resolves when it creates
// the container: a new pod of the vfio-pci pool gets the same device nodes
// through CDI, and the pingers still ping.
func (e *e2e) cdi(t *testing.T) {
	if err := e.c.WaitAllocatable(e.ctx, vfioPool, 1, time.Time{}, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the device plugin's CDI spec of the vfio-pci pool in /var/run/cdi", func() (bool, error) {
		spec, err := e.c.Node.Sh(e.ctx, "cat /var/run/cdi/sluice-sluice.dev_igb-vfio.json")
		return err == nil && strings.Contains(spec, `"kind": "sluice.dev/igb-vfio"`) && strings.Contains(spec, "/dev/vfio/"),
			fmt.Errorf("%v: %s", err, spec)
	})
	e.vfioPod(t, "vfio-cdi")
	pods := e.runningPods(t, "pingers", 2, time.Minute)
	if out, err := e.c.Ping(e.ctx, demoNS, pods[0].Name, "net1", net1IP(t, &pods[1])); err != nil {
		t.Fatalf("ping between the pods in CDI mode: %v\n%s", err, out)
	}
}

// vfioPod runs a pod of the vfio-pci pool and checks that its container
// has /dev/vfio/vfio and the /dev/vfio/<IOMMU group> of the VF it got.
func (e *e2e) vfioPod(t *testing.T, name string) {
	t.Helper()
	if _, err := e.c.CP.Client.AppsV1().Deployments(demoNS).Create(e.ctx, Workload(demoNS, name, "", vfioPool, 1, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := e.runningPods(t, name, 1, 5*time.Minute)[0]
	vf := strings.TrimSpace(e.kubectl(t, "-n", demoNS, "exec", p.Name, "--", "sh", "-c", "echo $PCIDEVICE_SLUICE_DEV_IGB_VFIO"))
	group, err := e.c.Node.Sh(e.ctx, "basename $(readlink /sys/bus/pci/devices/"+vf+"/iommu_group)")
	if err != nil || strings.TrimSpace(group) == "" {
		t.Fatalf("IOMMU group of VF %q: %v", vf, err)
	}
	files := strings.Fields(e.kubectl(t, "-n", demoNS, "exec", p.Name, "--", "ls", "/dev/vfio"))
	slices.Sort(files)
	want := []string{strings.TrimSpace(group), "vfio"}
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("pod %s (VF %s): /dev/vfio has %v, want %v", p.Name, vf, files, want)
	}
	t.Logf("pod %s: VF %s, /dev/vfio %v", p.Name, vf, files)
	e.deleteDeployment(t, name)
}
