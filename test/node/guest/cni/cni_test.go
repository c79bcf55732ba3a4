//go:build nodetest

// Package cni runs the real sluice-cni binary on the emulated node's igb
// VFs, as a container runtime does (CNI_* variables, configuration on
// stdin): two VFs into two pod namespaces with host-local IPAM, traffic
// between them, CHECK, DEL restoring names and settings, and the vfio-pci
// path when the VM has an IOMMU.
//
// The host side (test/node/cni_host_test.go) builds sluice-cni and
// host-local into the run directory and passes their directory as
// SLUICE_CNI_PATH.
package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	nu "github.com/sluice-net/sluice/test/node/guest/nodeutil"
)

// plugin runs sluice-cni; a failure returns the error it printed.
func plugin(t *testing.T, cmd, netns, cid, ifName string, conf []byte) []byte {
	t.Helper()
	out, err := pluginErr(cmd, netns, cid, ifName, conf)
	if err != nil {
		t.Fatalf("sluice-cni %s %s/%s: %v", cmd, cid, ifName, err)
	}
	return out
}

func pluginErr(cmd, netns, cid, ifName string, conf []byte) ([]byte, error) {
	return runPlugin(os.Getenv("SLUICE_CNI_PATH"), cmd, netns, cid, ifName, conf)
}

// runPlugin runs dir's sluice-cni as a runtime does, with extra
// environment variables; a failure returns what it printed.
func runPlugin(dir, cmd, netns, cid, ifName string, conf []byte, env ...string) ([]byte, error) {
	c := exec.Command(filepath.Join(dir, "sluice-cni"))
	c.Env = append([]string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + cid, "CNI_NETNS=" + netns, "CNI_IFNAME=" + ifName,
		"CNI_PATH=" + dir, "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + cid, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	c.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return nil, fmt.Errorf("%v: %s %s", err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

func conf(t testing.TB, dir, pci string, extra map[string]any) []byte {
	m := map[string]any{
		"cniVersion": "1.1.0", "name": "igb-net", "type": "sluice-cni", "deviceID": pci,
		"cacheDir": filepath.Join(dir, "cache"), "attachmentsDir": filepath.Join(dir, "attachments"), "lockDir": filepath.Join(dir, "locks"),
		"ipam": map[string]any{"type": "host-local", "subnet": "10.66.0.0/24", "dataDir": filepath.Join(dir, "ipam")},
	}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vfLine is the PF's "vf N ..." line of ip link show.
func vfLine(t *testing.T, pf string, idx int) string {
	out := nu.Run(t, "ip", "link", "show", pf)
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), fmt.Sprintf("vf %d ", idx)) {
			return strings.TrimSpace(l)
		}
	}
	t.Fatalf("no vf %d in ip link show %s:\n%s", idx, pf, out)
	return ""
}

func TestTwoVFsTwoPods(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	vfs := nu.VFs(t, pf, 2)
	dir := t.TempDir()
	type pod struct {
		ns, cid, hostName, pfBefore string
		conf                        []byte
		res                         *current.Result
	}
	pods := make([]*pod, 2)
	for i, vf := range vfs {
		p := &pod{ns: nu.Netns(t, fmt.Sprintf("cnipod%d", i)), cid: fmt.Sprintf("pod%d", i), hostName: vf.Netdev,
			pfBefore: vfLine(t, pf.Netdev, vf.Index)}
		p.conf = conf(t, dir, vf.PCI, map[string]any{"mac": fmt.Sprintf("02:66:00:00:00:%02x", i+1), "spoofchk": "on", "trust": "on", "vlan": 0, "mtu": 1400})
		out := plugin(t, "ADD", "/var/run/netns/"+p.ns, p.cid, "net1", p.conf)
		r, err := current.NewResult(out)
		if err != nil {
			t.Fatalf("ADD result %s: %v", out, err)
		}
		p.res, _ = current.NewResultFromResult(r)
		if len(p.res.IPs) != 1 || p.res.Interfaces[0].PciID != vf.PCI {
			t.Fatalf("ADD result %s", out)
		}
		pods[i] = p
		// The netdev left the host and is net1 in the pod, with the MAC and MTU.
		if _, err := os.Stat("/sys/class/net/" + vf.Netdev); err == nil {
			t.Errorf("%s still in the host namespace", vf.Netdev)
		}
		link, err := nu.NetnsExec(10*time.Second, p.ns, "ip", "link", "show", "net1")
		if err != nil || !strings.Contains(link, "02:66:00:00:00:0") || !strings.Contains(link, "mtu 1400") {
			t.Errorf("net1 in %s: %v\n%s", p.ns, err, link)
		}
		if l := vfLine(t, pf.Netdev, vf.Index); !strings.Contains(l, fmt.Sprintf("02:66:00:00:00:%02x", i+1)) || !strings.Contains(l, "trust on") {
			t.Errorf("PF side of vf %d: %s", vf.Index, l)
		}
	}
	// Traffic between the two VFs through the emulated switch.
	peer := pods[1].res.IPs[0].Address.IP.String()
	nu.Poll(t, 30*time.Second, 500*time.Millisecond, "ping between the pods", func() (bool, error) {
		out, err := nu.NetnsExec(10*time.Second, pods[0].ns, "ping", "-c", "1", "-W", "2", peer)
		return err == nil, fmt.Errorf("%v: %s", err, out)
	})
	// CHECK with ADD's result.
	for _, p := range pods {
		var m map[string]any
		_ = json.Unmarshal(p.conf, &m)
		b, _ := json.Marshal(p.res)
		var prev map[string]any
		_ = json.Unmarshal(b, &prev)
		m["prevResult"] = prev
		c, _ := json.Marshal(m)
		plugin(t, "CHECK", "/var/run/netns/"+p.ns, p.cid, "net1", c)
	}
	// DEL restores the host name and the PF-side settings; twice is fine.
	for i, p := range pods {
		plugin(t, "DEL", "/var/run/netns/"+p.ns, p.cid, "net1", p.conf)
		plugin(t, "DEL", "/var/run/netns/"+p.ns, p.cid, "net1", p.conf)
		if _, err := os.Stat("/sys/class/net/" + p.hostName); err != nil {
			t.Errorf("VF netdev %s not back in the host: %v", p.hostName, err)
		}
		if l := vfLine(t, pf.Netdev, vfs[i].Index); l != p.pfBefore {
			t.Errorf("PF side of vf %d after DEL:\n %s\nbefore:\n %s", vfs[i].Index, l, p.pfBefore)
		}
	}
	for _, sub := range []string{"cache", "attachments"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, sub)); len(ents) != 0 {
			t.Errorf("%s left: %v", sub, ents)
		}
	}
}

func TestDelAfterPodNetnsDeleted(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	vf := nu.VFs(t, pf, 1)[0]
	dir := t.TempDir()
	nu.Run(t, "ip", "netns", "add", "cnigone")
	c := conf(t, dir, vf.PCI, map[string]any{"mtu": 1300})
	plugin(t, "ADD", "/var/run/netns/cnigone", "gone", "net1", c)
	nu.Run(t, "ip", "netns", "del", "cnigone")
	// The kernel returns the VF netdev to the initial namespace as net1.
	nu.Poll(t, 30*time.Second, 200*time.Millisecond, "the VF netdev back in the host", func() (bool, error) {
		vfs, err := nu.ListVFs(pf)
		if err != nil || len(vfs) == 0 || vfs[0].Netdev == "" {
			return false, fmt.Errorf("%v %v", vfs, err)
		}
		return true, nil
	})
	plugin(t, "DEL", "/var/run/netns/cnigone", "gone", "net1", c)
	if mtu := nu.MustRead(t, "/sys/class/net/"+vf.Netdev+"/mtu"); mtu != "1500" {
		t.Errorf("%s MTU %s after DEL, want 1500", vf.Netdev, mtu)
	}
}

func TestVfio(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	vf := nu.VFs(t, pf, 1)[0]
	if _, err := os.Readlink(vf.Device() + "/iommu_group"); err != nil {
		t.Skipf("VF %s has no IOMMU group (the VM has no IOMMU): vfio-pci cannot bind", vf.PCI)
	}
	if out, err := nu.Exec(30*time.Second, "modprobe", "vfio-pci"); err != nil {
		t.Skipf("modprobe vfio-pci: %v: %s", err, out)
	}
	nu.MustWrite(t, vf.Device()+"/driver_override", "vfio-pci")
	nu.MustWrite(t, vf.Device()+"/driver/unbind", vf.PCI)
	_ = nu.Write("/sys/bus/pci/drivers_probe", vf.PCI)
	t.Cleanup(func() {
		_ = nu.Write(vf.Device()+"/driver_override", "\n")
		_ = nu.Write(vf.Device()+"/driver/unbind", vf.PCI)
		_ = nu.Write("/sys/bus/pci/drivers_probe", vf.PCI)
	})
	if d := nu.Driver(vf.PCI); d != "vfio-pci" {
		t.Skipf("VF %s did not bind to vfio-pci (driver %q)", vf.PCI, d)
	}
	dir := t.TempDir()
	ns := nu.Netns(t, "cnivfio")
	c := conf(t, dir, vf.PCI, map[string]any{"vlan": 12})
	out := plugin(t, "ADD", "/var/run/netns/"+ns, "vfio", "net1", c)
	r, err := current.NewResult(out)
	if err != nil {
		t.Fatal(err)
	}
	res, _ := current.NewResultFromResult(r)
	if len(res.Interfaces) != 1 || res.Interfaces[0].Sandbox != "" || res.Interfaces[0].PciID != vf.PCI {
		t.Errorf("vfio ADD result: %s", out)
	}
	if l := vfLine(t, pf.Netdev, vf.Index); !strings.Contains(l, "vlan 12") {
		t.Errorf("PF side: %s", l)
	}
	plugin(t, "DEL", "/var/run/netns/"+ns, "vfio", "net1", c)
	if l := vfLine(t, pf.Netdev, vf.Index); strings.Contains(l, "vlan 12") {
		t.Errorf("PF side after DEL: %s", l)
	}
}

// TestSoftRoCEBetweenPods: two pods' namespaces get VFs of a soft-RoCE
// network through sluice-cni, which creates each pod's rxe device on its
// net1 inside the pod's namespace and writes the CDI spec naming exactly
// that device's char devices; rping and ib_write_bw then run between the
// pods on those devices (no rdma link command here). DEL removes devices
// and specs.
func TestSoftRoCEBetweenPods(t *testing.T) {
	nu.Require(t)
	if nu.KernelMajor(t) < 7 {
		t.Skipf("measured: soft-RoCE carries no RDMA between network namespaces before 7.x (kernel %s); hack/guest-kernel.sh fetches one",
			strings.TrimSpace(nu.MustRead(t, "/proc/sys/kernel/osrelease")))
	}
	pf := nu.PFs(t)[0]
	vfs := nu.VFs(t, pf, 2)
	dir := t.TempDir()
	cdiDir := filepath.Join(dir, "cdi")
	type pod struct {
		ns, cid, ip, dev string
		conf             []byte
	}
	pods := make([]*pod, 2)
	for i, vf := range vfs {
		p := &pod{ns: nu.Netns(t, fmt.Sprintf("rocepod%d", i)), cid: fmt.Sprintf("roce%d", i)}
		p.conf = conf(t, dir, vf.PCI, map[string]any{"softRoCE": map[string]any{"cdiKind": "sluice.dev/igb-roce", "cdiDir": cdiDir}})
		out := plugin(t, "ADD", "/var/run/netns/"+p.ns, p.cid, "net1", p.conf)
		r, err := current.NewResult(out)
		if err != nil {
			t.Fatal(err)
		}
		res, _ := current.NewResultFromResult(r)
		p.ip = res.IPs[0].Address.IP.String()
		pods[i] = p
		t.Cleanup(func() { _, _ = pluginErr("DEL", "/var/run/netns/"+p.ns, p.cid, "net1", p.conf) })

		// The spec names the pod's own rxe device, which runs on net1.
		spec := readSpec(t, filepath.Join(cdiDir, "sluice-attachment-"+strings.NewReplacer(":", "_", ".", "_").Replace(vf.PCI)+".json"))
		if spec.Kind != "sluice.dev/igb-roce" || len(spec.Devices) != 1 || spec.Devices[0].Name != vf.PCI {
			t.Fatalf("CDI spec of %s: %+v", vf.PCI, spec)
		}
		for _, n := range spec.Devices[0].ContainerEdits.DeviceNodes {
			base := filepath.Base(n.Path)
			if !strings.HasPrefix(base, "uverbs") {
				continue
			}
			p.dev = strings.TrimSpace(nu.MustRead(t, "/sys/class/infiniband_verbs/"+base+"/ibdev"))
		}
		if p.dev == "" {
			t.Fatalf("CDI spec of %s lists no uverbs device: %+v", vf.PCI, spec.Devices[0].ContainerEdits.DeviceNodes)
		}
		if parent := strings.TrimSpace(nu.MustRead(t, "/sys/class/infiniband/"+p.dev+"/parent")); parent != "net1" {
			t.Errorf("%s runs on %q, want the pod's net1", p.dev, parent)
		}
	}
	if pods[0].dev == pods[1].dev {
		t.Fatalf("both pods' specs name %s", pods[0].dev)
	}
	start := time.Now()
	if out, err := nu.RPing(pods[0].ns, pods[0].ip, pods[1].ns, pods[1].ip, 7180, 30*time.Second); err != nil {
		t.Fatalf("rping between the pods: %v\n%s", err, out)
	}
	t.Logf("rping %s -> %s: 3 iterations in %s", pods[1].ns, pods[0].ns, time.Since(start).Round(time.Millisecond))
	res := nu.WriteBW(t, pods[0].ns, pods[0].dev, pods[0].ip, pods[1].ns, pods[1].dev, pods[1].ip, pods[0].ip, 18530, 60*time.Second)
	if res.Err != nil {
		t.Fatalf("ib_write_bw between the pods: %v", res.Err)
	}
	t.Logf("ib_write_bw %s (%s) -> %s (%s): %s in %s", pods[1].dev, pods[1].ns, pods[0].dev, pods[0].ns, res.Summary, res.Took.Round(time.Millisecond))

	for _, p := range pods {
		plugin(t, "DEL", "/var/run/netns/"+p.ns, p.cid, "net1", p.conf)
		if _, err := os.Stat("/sys/class/infiniband/" + p.dev); err == nil {
			t.Errorf("%s still exists after DEL", p.dev)
		}
	}
	for _, sub := range []string{"cache", "attachments", "cdi"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, sub)); len(ents) != 0 {
			t.Errorf("%s left: %v", sub, ents)
		}
	}
}

func readSpec(t *testing.T, path string) cdispec.Spec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s cdispec.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}
