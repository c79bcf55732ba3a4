package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-net/sluice/api/dradevice"
)

// The DRA pool: the emulated-igb policy's pool, switched to allocation DRA
// and widened to both PFs, 4 VFs under each of the node's two PCIe roots.
const (
	draDriver = "sluice.dev"
	draClass  = "igb-vf.sluice.dev"
	draPoolVF = 8
)

// draDevice is a device of the node's ResourceSlices.
type draDevice struct {
	name, pf, pcieRoot string
	vfIndex            int64
}

// dra: the emulated-igb policy's pool moves from the device plugin to DRA
// and takes 4 VFs of the second PF too, which sits under a root complex of
// its own. The operator runs the agents' DRA plugin by default on a
// cluster that serves resource.k8s.io/v1. The kubelet stops advertising
// the pool and the node's ResourceSlices list its VFs, but for one a
// device-plugin pod still holds until that pod goes. A claim for 5 VFs
// under one pcieRoot stays Pending with the scheduler's reason (8 are
// free, at most 4 under a root); one for 2 gets two of one PF. Pods with
// a ResourceClaimTemplate get a VF with the claim's VLAN and MTU, its
// netdev in the pod under the claim's name with an address, the claim's
// status saying so, and ping each other. Deleting the pods gives the VFs
// back as they were.
func (e *e2e) dra(t *testing.T) {
	cs := e.c.CP.Client
	eventually(t, 6*time.Minute, "node DaemonSet running --dra (the operator's --node-dra=auto)", func() (bool, error) {
		ds, err := cs.AppsV1().DaemonSets("sluice-system").Get(e.ctx, "sluice-node", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		dra := false
		for _, c := range ds.Spec.Template.Spec.Containers {
			dra = dra || slices.Contains(c.Args, "--dra")
		}
		st := ds.Status
		return dra && st.ObservedGeneration == ds.Generation && st.UpdatedNumberScheduled == 1 && st.NumberReady == 1 && st.NumberAvailable == 1,
			fmt.Errorf("--dra in the template: %v; status %+v", dra, st)
	})

	// A device-plugin pod holds one of the pool's VFs when the pool moves
	// to DRA: that VF is published only once the pod gives it back.
	e.deleteDeployment(t, "pingers") // left by PodsPingOverVFs when run alone
	if _, err := cs.AppsV1().Deployments(demoNS).Create(e.ctx, workloadDeployment("holder", 1, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	holder := e.runningPods(t, "holder", 1, 5*time.Minute)
	gen := e.nnsGeneration(t)
	e.kubectl(t, "patch", "networknodepolicy", "emulated-igb", "--type", "merge", "-p",
		`{"spec":{"allocation":"DRA","nicSelector":{"pfNames":["eth0","eth1"]}}}`)
	e.waitSynced(t, gen, 5*time.Minute)
	// The kubelet keeps a stopped plugin's capacity for a while; nothing
	// of it is allocatable.
	eventually(t, 3*time.Minute, "no "+string(poolResource)+" allocatable", func() (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(e.ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		a := node.Status.Allocatable[poolResource]
		return a.IsZero(), fmt.Errorf("allocatable %s", a.String())
	})
	if _, err := cs.ResourceV1().DeviceClasses().Get(e.ctx, draClass, metav1.GetOptions{}); err != nil {
		t.Fatalf("DeviceClass %s: %v", draClass, err)
	}
	e.draDevices(t, draPoolVF-1)
	t.Logf("pod %s holds its VF through the device plugin: %d devices published", holder[0].Name, draPoolVF-1)
	e.deleteDeployment(t, "holder")
	// sluice-cni's DEL gave the VF back under its own name.
	if out, err := e.c.Node.Sh(e.ctx, "ip -br link | grep -c '^net1'; true"); err != nil || strings.TrimSpace(out) != "0" {
		links, _ := e.c.Node.Sh(e.ctx, "ip -br link")
		t.Errorf("the holder's VF is in the host as net1 after its DEL (%v):\n%s", err, links)
	}
	devs := e.draDevices(t, draPoolVF)
	roots := map[string]int{}
	for _, d := range devs {
		roots[d.pcieRoot]++
	}
	if len(roots) != 2 || roots["pci0000:00"] != 4 || roots["pci0000:80"] != 4 {
		t.Fatalf("pcieRoot of the pool's devices: %v, want 4 under pci0000:00 and 4 under pci0000:80", roots)
	}

	// More VFs under one root than any root has: the scheduler says why.
	e.apply(t, railsTemplate("dra-greedy", 5))
	if _, err := cs.AppsV1().Deployments(demoNS).Create(e.ctx, DRAWorkload(demoNS, "dra-greedy", 1, "dra-greedy"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "dra-greedy pod Unschedulable", func() (bool, error) {
		l, err := cs.CoreV1().Pods(demoNS).List(e.ctx, metav1.ListOptions{LabelSelector: "app=dra-greedy"})
		if err != nil || len(l.Items) != 1 {
			return false, fmt.Errorf("%d pods, %v", len(l.Items), err)
		}
		p := l.Items[0]
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Reason == "Unschedulable" && strings.Contains(c.Message, "claim") {
				t.Logf("pod %s: %s", p.Name, c.Message)
				return p.Status.Phase == corev1.PodPending, nil
			}
		}
		return false, fmt.Errorf("pod %s: %s %+v", p.Name, p.Status.Phase, p.Status.Conditions)
	})
	e.deleteDeployment(t, "dra-greedy")

	// Two rails under one root.
	e.apply(t, railsTemplate("dra-rails", 2))
	if _, err := cs.AppsV1().Deployments(demoNS).Create(e.ctx, DRAWorkload(demoNS, "dra-rails", 1, "dra-rails"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rails := e.runningPods(t, "dra-rails", 1, 6*time.Minute)
	cl := e.podClaim(t, &rails[0])
	var railRoots []string
	for _, r := range cl.Status.Allocation.Devices.Results {
		railRoots = append(railRoots, devs[r.Device].pcieRoot+" ("+devs[r.Device].pf+")")
	}
	if len(railRoots) != 2 || railRoots[0] != railRoots[1] {
		t.Errorf("claim %s: devices under %v, want 2 under one pcieRoot", cl.Name, railRoots)
	}
	t.Logf("claim %s: 2 VFs under %s", cl.Name, railRoots[0])
	e.deleteDeployment(t, "dra-rails")

	e.apply(t, `apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata:
  name: dra-vlan
  namespace: demo
spec:
  spec:
    devices:
      requests:
      - name: vf
        exactly:
          deviceClassName: `+draClass+`
      config:
      - requests: [vf]
        opaque:
          driver: sluice.dev
          parameters:
            apiVersion: sluice.dev/v1alpha1
            kind: VFClaimConfig
            vlan: 100
            mtu: 1400
            ifName: dra0
            ipam: {"type": "host-local", "subnet": "10.59.0.0/24"}
`)
	if _, err := cs.AppsV1().Deployments(demoNS).Create(e.ctx, DRAWorkload(demoNS, "dra-ping", 2, "dra-vlan"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := e.runningPods(t, "dra-ping", 2, 6*time.Minute)
	var ips []string
	var firstDev draDevice
	for i, p := range pods {
		cl := e.podClaim(t, &p)
		if n := len(cl.Status.Allocation.Devices.Results); n != 1 {
			t.Fatalf("claim %s: %d devices allocated, want 1", cl.Name, n)
		}
		dev := devs[cl.Status.Allocation.Devices.Results[0].Device]
		if i == 0 {
			firstDev = dev
		}
		vf := pciOfDevice(dev.name)
		out := e.kubectl(t, "-n", demoNS, "exec", p.Name, "--", "sh", "-c",
			"cat /sys/class/net/dra0/mtu /sys/class/net/dra0/device/uevent; echo env=$SLUICE_DRA_VF")
		if !strings.HasPrefix(out, "1400\n") || !strings.Contains(out, "DRIVER=igbvf") || !strings.Contains(out, "PCI_SLOT_NAME="+vf) {
			t.Errorf("pod %s: dra0 is not VF %s (igbvf) at MTU 1400:\n%s", p.Name, vf, out)
		}
		if !strings.Contains(out, "env="+vf) {
			t.Errorf("pod %s: SLUICE_DRA_VF does not name %s:\n%s", p.Name, vf, out)
		}
		if vlan := e.vfLine(t, dev); !strings.Contains(vlan, "vlan 100") {
			t.Errorf("pod %s: VF %s on %s: %q, want vlan 100", p.Name, vf, dev.pf, vlan)
		}
		// The driver writes the claim's status beside the sandbox's start.
		var nd []resourceapi.NetworkDeviceData
		eventually(t, time.Minute, "networkData in the claim of "+p.Name, func() (bool, error) {
			var err error
			nd, err = e.c.ClaimNetworkData(e.ctx, &p)
			return err == nil, err
		})
		if len(nd) != 1 || nd[0].InterfaceName != "dra0" || len(nd[0].IPs) != 1 {
			t.Fatalf("claim %s: networkData %+v, want dra0 with one address", cl.Name, nd)
		}
		ip, _, _ := strings.Cut(nd[0].IPs[0], "/")
		ips = append(ips, ip)
		t.Logf("pod %s: claim %s, VF %s of %s (%s), dra0 %s", p.Name, cl.Name, vf, dev.pf, dev.pcieRoot, nd[0].IPs[0])
	}
	if out, err := e.c.Ping(e.ctx, demoNS, pods[0].Name, "dra0", ips[1]); err != nil {
		t.Fatalf("ping over the DRA VFs: %v\n%s", err, out)
	}
	e.deviceHealthInPodStatus(t, pods[0].Name, firstDev)

	e.agentKilledInPrepare(t)

	e.deleteDeployment(t, "dra-ping")
	e.deleteDeployment(t, "dra-crash")
	eventually(t, 2*time.Minute, "no claim left in demo", func() (bool, error) {
		l, err := cs.ResourceV1().ResourceClaims(demoNS).List(e.ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(l.Items) == 0, fmt.Errorf("%d claims", len(l.Items))
	})
	// The kubelet unprepares a deleted pod's claims on its own schedule,
	// after the API objects are gone.
	eventually(t, 3*time.Minute, "every VF back in the host without the claim's VLAN, no checkpoint or record left", func() (bool, error) {
		if n := e.vfsInPods(t); n != 0 {
			return false, fmt.Errorf("%d igbvf netdevs still outside the node's namespace", n)
		}
		out, err := e.c.Node.Sh(e.ctx, "ip link show eth0 | grep ' vf '; ip link show eth1 | grep ' vf '")
		if err != nil || strings.Contains(out, "vlan 100") {
			return false, fmt.Errorf("a VF kept the claim's VLAN (%v):\n%s", err, out)
		}
		out, err = e.c.Node.Sh(e.ctx, "ls -A /run/sluice/dra/claims /run/sluice/attachments 2>/dev/null | grep json; true")
		return err == nil && strings.TrimSpace(out) == "", fmt.Errorf("claim checkpoints or attachment records left (%v): %s", err, out)
	})
	e.draDevices(t, draPoolVF)
}

// deviceHealthInPodStatus: the driver streams device health to the
// kubelet, which shows it in the status of the pod holding the device
// (allocatedResourcesStatus). The device is Healthy (a VF the driver moved
// into the pod is in use, not vanished), Unhealthy with the reason while
// its PF is down, and Healthy again once the PF is up.
func (e *e2e) deviceHealthInPodStatus(t *testing.T, pod string, dev draDevice) {
	health := func(want string) {
		t.Helper()
		eventually(t, 2*time.Minute, fmt.Sprintf("device %s %s in pod %s's allocatedResourcesStatus", dev.name, want, pod), func() (bool, error) {
			p, err := e.c.CP.Client.CoreV1().Pods(demoNS).Get(e.ctx, pod, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			var seen []string
			for _, cs := range p.Status.ContainerStatuses {
				for _, rs := range cs.AllocatedResourcesStatus {
					for _, r := range rs.Resources {
						msg := ""
						if r.Message != nil {
							msg = *r.Message
						}
						seen = append(seen, fmt.Sprintf("%s %s=%s %q", rs.Name, r.ResourceID, r.Health, msg))
						// The kubelet names it by the CDI device Prepare returned
						// (driver/class=<claim UID>-<device>).
						if strings.HasSuffix(string(r.ResourceID), dev.name) && string(r.Health) == want {
							t.Logf("pod %s: %s %s %s %q", pod, rs.Name, r.ResourceID, r.Health, msg)
							return true, nil
						}
					}
				}
			}
			return false, fmt.Errorf("allocatedResourcesStatus: %v", seen)
		})
	}
	health("Healthy")
	defer func() { _, _ = e.c.Node.Sh(e.ctx, "ip link set "+dev.pf+" up") }()
	if out, err := e.c.Node.Sh(e.ctx, "ip link set "+dev.pf+" down"); err != nil {
		t.Fatalf("take PF %s down: %v %s", dev.pf, err, out)
	}
	health("Unhealthy")
	if out, err := e.c.Node.Sh(e.ctx, "ip link set "+dev.pf+" up"); err != nil {
		t.Fatalf("bring PF %s up: %v %s", dev.pf, err, out)
	}
	health("Healthy")
}

// agentKilledInPrepare: the agent is killed (SIGKILL) inside Prepare,
// after it checkpointed the claim as Preparing and set the VF's VLAN on
// the PF, before the claim's CDI spec and the Prepared checkpoint. No real
// fault stops it there on demand, so a debugger does: gdb, attached to the
// running agent, breaks on nodefiles.WriteDRAClaimCDISpec, and holds it
// there while the test looks at what it left, then kills it. The kubelet
// restarts the agent, which undoes the unfinished claim; the kubelet and
// containerd retry, and the pod runs with its VF set up once. The step's
// final checks find nothing leaked after the pods go.
func (e *e2e) agentKilledInPrepare(t *testing.T) {
	cs := e.c.CP.Client
	pid, err := e.c.Node.Sh(e.ctx, "pgrep -f '/usr/local/bin/[s]luice agent'")
	pid = strings.TrimSpace(pid)
	if err != nil || strings.ContainsAny(pid, " \n") {
		t.Fatalf("the agent's pid: %q %v", pid, err)
	}
	// --readnever: the ELF symbol table names the function; the DWARF of a
	// 100 MB binary would take minutes to read under TCG. gdb holds the
	// agent until the test kills both: the agent is its container's PID 1,
	// whose exit waits (zap_pid_ns_processes) until its threads are reaped,
	// and traced threads are reaped by their tracer, so gdb must go for the
	// agent to go. gdb's own kill command waits for that same exit and
	// hung there (seen on this node).
	const bp = "github.com/sluice-net/sluice/api/nodefiles.WriteDRAClaimCDISpec"
	script := strings.Join([]string{
		"handle all nostop noprint pass",
		"break '" + bp + "'",
		"shell touch /run/sluice-bp.set",
		"continue",
		"shell touch /run/sluice-bp.hit",
		"shell sleep 900",
	}, "\n")
	if out, err := e.c.Node.Sh(e.ctx, "rm -f /run/sluice-bp.*; printf '%s\\n' \""+script+"\" >/run/sluice-bp.gdb && "+
		"setsid -f gdb -nx --readnever -batch -x /run/sluice-bp.gdb -p "+pid+" </dev/null >/run/sluice-bp.log 2>&1"); err != nil {
		t.Fatalf("start gdb: %v %s", err, out)
	}
	defer func() { _, _ = e.c.Node.Sh(e.ctx, "pkill -9 -f '[g]db -nx --readnever'; true") }()
	// What a failure shows: gdb's log, then (last, as the end of a long log
	// is what survives) gdb, the agent and each of its threads' state,
	// tracer and wait channel.
	diag := func() string {
		out, _ := e.c.Node.Sh(e.ctx, "cat /run/sluice-bp.log; ps -eo pid,stat,wchan:32,args | grep -e '[g]db' -e '[s]luice agent';"+
			" for t in /proc/"+pid+"/task/*; do echo \"$t $(sed -n 's/^State:\\s*//p; s/^TracerPid:\\s*/tracer /p' $t/status | tr '\\n' ' ') $(cat $t/wchan)\"; done; true")
		return out
	}
	// waitPath waits until path exists on the node (gone: until it does not).
	waitPath := func(path string, gone bool, timeout time.Duration) {
		t.Helper()
		what := path
		if gone {
			what += " gone"
		}
		if err := Poll(e.ctx, timeout, 500*time.Millisecond, what, func() (bool, error) {
			out, err := e.c.Node.Sh(e.ctx, "test -e "+path+" && echo yes; true")
			return (strings.TrimSpace(out) == "yes") != gone, err
		}); err != nil {
			t.Fatalf("%v; gdb's log, then the agent's threads:\n%s", err, diag())
		}
	}
	waitPath("/run/sluice-bp.set", false, 4*time.Minute)
	vlan100 := func() int {
		out, _ := e.c.Node.Sh(e.ctx, "ip link show eth0; ip link show eth1")
		return strings.Count(out, "vlan 100")
	}
	before := vlan100()
	if _, err := cs.AppsV1().Deployments(demoNS).Create(e.ctx, DRAWorkload(demoNS, "dra-crash", 1, "dra-vlan"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPath("/run/sluice-bp.hit", false, 4*time.Minute)
	out, err := e.c.Node.Sh(e.ctx, `grep -h -o '"name":"dra-crash[^"]*","state":"[A-Za-z]*"' /run/sluice/dra/claims/*.json`)
	if err != nil || !strings.Contains(out, `"state":"Preparing"`) || strings.Count(out, `"state":`) != 1 {
		t.Fatalf("at the breakpoint, want the dra-crash claim checkpointed as Preparing: %v\n%s", err, out)
	}
	if n := vlan100(); n != before+1 {
		t.Fatalf("at the breakpoint, %d VFs have VLAN 100, want %d: Prepare had not configured its VF yet", n, before+1)
	}
	if out, err := e.c.Node.Sh(e.ctx, "kill -9 "+pid+" && pkill -9 -f '[g]db -nx --readnever'; pkill -f '^sleep 900$'; true"); err != nil {
		t.Fatalf("kill the agent and gdb: %v %s", err, out)
	}
	waitPath("/proc/"+pid, true, 2*time.Minute) // the agent reaped
	t.Logf("agent killed inside Prepare: claim checkpointed Preparing, its VF's VLAN set, no CDI spec or Prepared checkpoint yet: %s", strings.TrimSpace(out))
	pods := e.runningPods(t, "dra-crash", 1, 6*time.Minute)
	// A sandbox the runtime created while the agent was down gets its VF
	// when the agent connects again.
	eventually(t, 3*time.Minute, "dra0 in pod "+pods[0].Name+" at MTU 1400, its only extra interface", func() (bool, error) {
		out, err := e.c.Run(e.ctx, "-n", demoNS, "exec", pods[0].Name, "--", "sh", "-c", "cat /sys/class/net/dra0/mtu; ls /sys/class/net | grep -vcx -e lo -e eth0")
		f := strings.Fields(out)
		return err == nil && len(f) == 2 && f[0] == "1400" && f[1] == "1", fmt.Errorf("%q %v", out, err)
	})
	if n := e.vfsInPods(t); n != 3 {
		t.Errorf("%d igbvf netdevs in pods, want 3 (dra-ping's 2 and dra-crash's 1): none handed out twice, none stranded", n)
	}
}

// railsTemplate is a ResourceClaimTemplate for n VFs of the DRA pool under
// one PCIe root.
func railsTemplate(name string, n int) string {
	return fmt.Sprintf(`apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata:
  name: %s
  namespace: demo
spec:
  spec:
    devices:
      requests:
      - name: rail
        exactly:
          deviceClassName: %s
          count: %d
      constraints:
      - requests: [rail]
        matchAttribute: resource.kubernetes.io/pcieRoot
`, name, draClass, n)
}

// podClaim is the pod's generated claim, allocated.
func (e *e2e) podClaim(t *testing.T, p *corev1.Pod) *resourceapi.ResourceClaim {
	t.Helper()
	if len(p.Status.ResourceClaimStatuses) != 1 || p.Status.ResourceClaimStatuses[0].ResourceClaimName == nil {
		t.Fatalf("pod %s: claim statuses %+v", p.Name, p.Status.ResourceClaimStatuses)
	}
	cl, err := e.c.CP.Client.ResourceV1().ResourceClaims(p.Namespace).Get(e.ctx, *p.Status.ResourceClaimStatuses[0].ResourceClaimName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Status.Allocation == nil {
		t.Fatalf("claim %s of running pod %s is not allocated", cl.Name, p.Name)
	}
	for _, r := range cl.Status.Allocation.Devices.Results {
		if r.Driver != draDriver || r.Pool != NodeName {
			t.Errorf("claim %s: device %s from driver %s pool %s, want %s and pool %s", cl.Name, r.Device, r.Driver, r.Pool, draDriver, NodeName)
		}
	}
	return cl
}

// draDevices waits until the node's ResourceSlices of the driver hold
// exactly n devices, all healthy devices of the pool, and returns them by
// name.
func (e *e2e) draDevices(t *testing.T, n int) map[string]draDevice {
	t.Helper()
	devs := map[string]draDevice{}
	eventually(t, 2*time.Minute, fmt.Sprintf("%d healthy devices of pool igb-vf in the ResourceSlices", n), func() (bool, error) {
		l, err := e.c.CP.Client.ResourceV1().ResourceSlices().List(e.ctx, metav1.ListOptions{
			FieldSelector: resourceapi.ResourceSliceSelectorDriver + "=" + draDriver + "," + resourceapi.ResourceSliceSelectorNodeName + "=" + NodeName})
		if err != nil {
			return false, err
		}
		clear(devs)
		var all []string
		for _, s := range l.Items {
			for _, d := range s.Spec.Devices {
				a := d.Attributes
				pool, healthy := deref(a[dradevice.AttrPool].StringValue), deref(a[dradevice.AttrHealthy].BoolValue)
				all = append(all, fmt.Sprintf("%s(pool %s healthy %v)", d.Name, pool, healthy))
				if pool == "igb-vf" && healthy {
					devs[d.Name] = draDevice{name: d.Name, pf: deref(a[dradevice.AttrPFName].StringValue),
						pcieRoot: deref(a["resource.kubernetes.io/pcieRoot"].StringValue), vfIndex: deref(a[dradevice.AttrVFIndex].IntValue)}
				}
			}
		}
		return len(devs) == n && len(all) == n, fmt.Errorf("%d slices: %s", len(l.Items), strings.Join(all, ", "))
	})
	return devs
}

// vfLine is what `ip link` says of the device's VF on its PF.
func (e *e2e) vfLine(t *testing.T, d draDevice) string {
	t.Helper()
	out, err := e.c.Node.Sh(e.ctx, fmt.Sprintf("ip link show %s | grep ' vf %d '", d.pf, d.vfIndex))
	if err != nil {
		t.Fatalf("VF %d of %s: %v", d.vfIndex, d.pf, err)
	}
	return out
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

// pciOfDevice is the VF's PCI address in a DRA device name
// (vf-0000-01-00-2 names 0000:01:00.2).
func pciOfDevice(dev string) string {
	s := strings.TrimPrefix(dev, "vf-")
	if i := strings.LastIndex(s, "-"); i > 0 {
		s = s[:i] + "." + s[i+1:]
	}
	return strings.Replace(s, "-", ":", 2)
}
