//go:build nodetest

// Package deviceplugin runs sluice's device plugin on the emulated node:
// real igb VFs and soft-RoCE devices discovered through sysfs and netlink,
// advertised to a fake kubelet (deviceplugin/kubelettest) on a unix socket,
// and health changes (PF carrier lost, VF unbound, rxe deleted) reported
// from events, well before the periodic resync (healthBound).
package deviceplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/sluice-net/sluice/api/nodefiles"
	dp "github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	nu "github.com/sluice-net/sluice/test/node/guest/nodeutil"
)

// healthBound is how soon a health change (or a kubelet restart) must
// reach the kubelet: well under the plugin's 30 s safety resync
// (deviceplugin.DefaultResync, which these tests keep), so that only the
// event path meets it. A quiet host takes under a second (logged); under
// TCG on a loaded host (a cold make test building beside the VM) a
// re-registration once took more than one, so the bound is not a second.
const healthBound = 5 * time.Second

// plugin is the device plugin running in this process against the real
// node, with a fake kubelet.
type plugin struct {
	kubelet *kubelettest.Kubelet
	dir     string
}

// start runs the plugin with a native config and the readiness gate open
// for the given PFs, until the test ends.
func start(t *testing.T, pools []map[string]any, ready ...string) *plugin {
	t.Helper()
	cfg, err := json.Marshal(map[string]any{"resourcePrefix": "sluice.dev", "pools": pools})
	if err != nil {
		t.Fatal(err)
	}
	return startConfig(t, cfg, dp.Options{}, ready...)
}

// startConfig runs the plugin with cfg as its config file, in any of its
// formats, and opts' other fields, with the readiness gate open for the
// given PFs.
func startConfig(t *testing.T, cfg []byte, opts dp.Options, ready ...string) *plugin {
	t.Helper()
	p := &plugin{kubelet: kubelettest.New(t), dir: t.TempDir()}
	opts.ConfigFile = filepath.Join(p.dir, "device-plugin.json")
	opts.ReadinessFile = filepath.Join(p.dir, "readiness.json")
	opts.KubeletDir = p.kubelet.Dir
	opts.AttachmentsDir = filepath.Join(p.dir, "attachments")
	opts.Log = testr.New(t)
	if err := nodefiles.WriteFileAtomic(opts.ConfigFile, cfg); err != nil {
		t.Fatal(err)
	}
	if err := nodefiles.WriteGate(opts.ReadinessFile, nodefiles.GateState{Generation: 1, Ready: ready}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dp.Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("device plugin: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("device plugin did not stop within 10s")
		}
	})
	return p
}

func healthy(n int) func(kubelettest.Snapshot) bool {
	return func(s kubelettest.Snapshot) bool { return len(s.Devices) == n && s.Healthy() == n }
}

func health(id, want string) func(kubelettest.Snapshot) bool {
	return func(s kubelettest.Snapshot) bool {
		d := s.Device(id)
		return d != nil && d.Health == want
	}
}

// timed waits for cond within bound, counted from now, and logs how long
// it took.
func (p *plugin) timed(t *testing.T, resource, what string, bound time.Duration, cond func(kubelettest.Snapshot) bool) {
	t.Helper()
	start := time.Now()
	p.kubelet.Wait(resource, bound, what, cond)
	t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
}

func TestAdvertisesVFsAndRxe(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	vfs := nu.VFs(t, pf, 3)
	for _, vf := range vfs[:2] {
		nu.Run(t, "ip", "link", "set", vf.Netdev, "up")
	}
	nu.AddRXE(t, "", "dprxe0", vfs[0].Netdev)
	nu.AddRXE(t, "", "dprxe1", vfs[1].Netdev)
	nu.WaitRDMAActive(t, "dprxe0")
	nu.WaitRDMAActive(t, "dprxe1")

	p := start(t, []map[string]any{
		{"resourceName": "igb", "deviceType": "netdevice", "selectors": map[string]any{"pfNames": []string{pf.Netdev}}},
		{"resourceName": "rdma", "deviceType": "netdevice", "selectors": map[string]any{"pfNames": []string{pf.Netdev + "#0-2"}, "isRdma": true}},
	}, pf.PCI)
	s := p.kubelet.Wait("sluice.dev/igb", 30*time.Second, "3 healthy igb VFs", healthy(3))
	for _, vf := range vfs {
		if s.Device(vf.PCI) == nil {
			t.Errorf("VF %s not advertised: %s", vf.PCI, s)
		}
	}
	// VF 2 has no RDMA device: not in the RDMA pool.
	s = p.kubelet.Wait("sluice.dev/rdma", 10*time.Second, "2 healthy RDMA VFs", healthy(2))
	if s.Device(vfs[2].PCI) != nil {
		t.Errorf("VF without an RDMA device in the RDMA pool: %s", s)
	}

	r, err := p.kubelet.Allocate(context.Background(), "sluice.dev/rdma", vfs[0].PCI)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, d := range r.Devices {
		paths[d.ContainerPath] = true
		if _, err := os.Stat(d.HostPath); err != nil {
			t.Errorf("device spec %s: host path: %v", d.ContainerPath, err)
		}
	}
	uverbs := uverbsOf(t, "dprxe0")
	if !paths[uverbs] || !paths["/dev/infiniband/rdma_cm"] || len(paths) != 2 {
		t.Errorf("device specs = %v, want %s and /dev/infiniband/rdma_cm", paths, uverbs)
	}
	if got := r.Envs["PCIDEVICE_SLUICE_DEV_RDMA"]; got != vfs[0].PCI {
		t.Errorf("PCIDEVICE_SLUICE_DEV_RDMA = %q", got)
	}
	if info := r.Envs["PCIDEVICE_SLUICE_DEV_RDMA_INFO"]; !strings.Contains(info, `"rdma_dev":"dprxe0"`) || !strings.Contains(info, `"uverbs":"`+uverbs+`"`) {
		t.Errorf("INFO = %s", info)
	}
}

// uverbsOf is the uverbs char device of an RDMA device, as a container
// sees it.
func uverbsOf(t *testing.T, dev string) string {
	t.Helper()
	matches, _ := filepath.Glob("/sys/class/infiniband_verbs/uverbs*")
	for _, m := range matches {
		if s, _ := nu.ReadFile(m + "/ibdev"); s == dev {
			return "/dev/infiniband/" + filepath.Base(m)
		}
	}
	t.Fatalf("no uverbs device for %s", dev)
	return ""
}

func TestHealth(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	vfs := nu.VFs(t, pf, 3)
	nu.Run(t, "ip", "link", "set", vfs[1].Netdev, "up")
	nu.AddRXE(t, "", "dprxe2", vfs[1].Netdev)
	nu.WaitRDMAActive(t, "dprxe2")
	p := start(t, []map[string]any{
		{"resourceName": "igb", "deviceType": "netdevice", "selectors": map[string]any{"pfNames": []string{pf.Netdev}}},
		{"resourceName": "rdma", "selectors": map[string]any{"pfNames": []string{pf.Netdev}, "isRdma": true}},
	}, pf.PCI)
	const igb, rdma = "sluice.dev/igb", "sluice.dev/rdma"
	p.kubelet.Wait(igb, 30*time.Second, "3 healthy VFs", healthy(3))
	p.kubelet.Wait(rdma, 10*time.Second, "1 healthy RDMA VF", healthy(1))

	t.Run("PF carrier down", func(t *testing.T) {
		nu.Run(t, "ip", "link", "set", pf.Netdev, "down")
		up := false
		t.Cleanup(func() {
			if !up {
				_, _ = nu.Exec(30*time.Second, "ip", "link", "set", pf.Netdev, "up")
			}
		})
		p.timed(t, igb, "every VF Unhealthy after the PF went down", healthBound,
			func(s kubelettest.Snapshot) bool { return len(s.Devices) == 3 && s.Healthy() == 0 })
		nu.Run(t, "ip", "link", "set", pf.Netdev, "up")
		up = true
		// igb takes seconds to get its carrier back.
		p.timed(t, igb, "Healthy again with carrier", 30*time.Second, healthy(3))
	})

	t.Run("VF link state disable", func(t *testing.T) {
		out, err := nu.Exec(30*time.Second, "ip", "link", "set", pf.Netdev, "vf", "0", "state", "disable")
		if err != nil {
			if strings.Contains(out, "not supported") {
				t.Skipf("igb has no VF link state (ndo_set_vf_link_state): %s", strings.TrimSpace(out))
			}
			t.Fatalf("%v: %s", err, out)
		}
		t.Cleanup(func() { _, _ = nu.Exec(30*time.Second, "ip", "link", "set", pf.Netdev, "vf", "0", "state", "auto") })
		p.timed(t, igb, "VF 0 Unhealthy with its link disabled", healthBound, health(vfs[0].PCI, pluginapi.Unhealthy))
		nu.Run(t, "ip", "link", "set", pf.Netdev, "vf", "0", "state", "auto")
		p.timed(t, igb, "VF 0 Healthy with link state auto", healthBound, healthy(3))
	})

	t.Run("VF unbound from igbvf", func(t *testing.T) {
		vf := vfs[2]
		p.kubelet.Wait(igb, 30*time.Second, "all Healthy before", healthy(3))
		nu.MustWrite(t, "/sys/bus/pci/drivers/igbvf/unbind", vf.PCI)
		bound := false
		t.Cleanup(func() {
			if !bound {
				_ = nu.Write("/sys/bus/pci/drivers/igbvf/bind", vf.PCI)
			}
		})
		p.timed(t, igb, "unbound VF Unhealthy", healthBound, health(vf.PCI, pluginapi.Unhealthy))
		nu.MustWrite(t, "/sys/bus/pci/drivers/igbvf/bind", vf.PCI)
		bound = true
		p.timed(t, igb, "rebound VF Healthy", 10*time.Second, healthy(3))
	})

	t.Run("rxe deleted", func(t *testing.T) {
		// After the carrier test the rxe port takes a moment to be ACTIVE.
		p.kubelet.Wait(rdma, 30*time.Second, "RDMA VF Healthy before", healthy(1))
		// No netlink event tells of an RDMA device going: the plugin's
		// light RDMA check must.
		nu.Run(t, "rdma", "link", "delete", "dprxe2")
		p.timed(t, rdma, "VF Unhealthy without its rxe device", healthBound, health(vfs[1].PCI, pluginapi.Unhealthy))
		nu.AddRXE(t, "", "dprxe2", vfs[1].Netdev)
		nu.WaitRDMAActive(t, "dprxe2")
		p.timed(t, rdma, "VF Healthy with rxe again", healthBound, healthy(1))
	})
}

func TestNewVFsAndGate(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	nu.VFs(t, pf, 2)
	p := start(t, []map[string]any{
		{"resourceName": "igb", "selectors": map[string]any{"rootDevices": []string{pf.PCI}}},
	}) // gate closed
	const res = "sluice.dev/igb"
	p.kubelet.Wait(res, 30*time.Second, "registered, nothing advertised behind a closed gate",
		func(s kubelettest.Snapshot) bool { return s.Streaming && len(s.Devices) == 0 })
	if err := nodefiles.WriteGate(filepath.Join(p.dir, "readiness.json"), nodefiles.GateState{Generation: 2, Ready: []string{pf.PCI}}); err != nil {
		t.Fatal(err)
	}
	p.timed(t, res, "VFs advertised once the gate lists the PF", healthBound, healthy(2))

	vfs := nu.SetNumVFs(t, pf, 5)
	p.timed(t, res, "new VFs advertised without a restart", 10*time.Second, healthy(5))
	s := p.kubelet.Plugin(res)
	if len(s.Registrations) != 1 {
		t.Errorf("re-registered %d times for new VFs", len(s.Registrations)-1)
	}
	for _, vf := range vfs {
		if s.Device(vf.PCI) == nil {
			t.Errorf("VF %s missing: %s", vf.PCI, s)
		}
	}
}

func TestKubeletRestart(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	nu.VFs(t, pf, 1)
	p := start(t, []map[string]any{{"resourceName": "igb", "selectors": map[string]any{"pfNames": []string{pf.Netdev}}}}, pf.PCI)
	const res = "sluice.dev/igb"
	p.kubelet.Wait(res, 30*time.Second, "registered", healthy(1))
	if err := p.kubelet.Restart(); err != nil {
		t.Fatal(err)
	}
	p.timed(t, res, "registered again after a kubelet restart", healthBound, func(s kubelettest.Snapshot) bool {
		return s.Registered && s.Streaming && len(s.Devices) == 1
	})
}

func TestVfio(t *testing.T) {
	nu.Require(t)
	if os.Getenv("SLUICE_NODE_IOMMU") != "1" {
		t.Skip("the VM has no IOMMU: vfio-pci cannot bind")
	}
	pf := nu.PFs(t)[0]
	vf := nu.VFs(t, pf, 1)[0]
	nu.Run(t, "modprobe", "vfio-pci")
	nu.MustWrite(t, vf.Device()+"/driver_override", "vfio-pci")
	t.Cleanup(func() {
		_ = nu.Write(vf.Device()+"/driver_override", "\n")
	})
	nu.MustWrite(t, "/sys/bus/pci/drivers/igbvf/unbind", vf.PCI)
	nu.MustWrite(t, "/sys/bus/pci/drivers_probe", vf.PCI)
	nu.Poll(t, 10*time.Second, 50*time.Millisecond, "VF on vfio-pci", func() (bool, error) {
		d := nu.Driver(vf.PCI)
		return d == "vfio-pci", fmt.Errorf("driver %q", d)
	})
	group, err := os.Readlink(vf.Device() + "/iommu_group")
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, []map[string]any{{"resourceName": "dpdk", "deviceType": "vfio-pci", "selectors": map[string]any{"pfNames": []string{pf.Netdev}, "drivers": []string{"vfio-pci"}}}}, pf.PCI)
	p.kubelet.Wait("sluice.dev/dpdk", 30*time.Second, "the vfio VF", healthy(1))
	r, err := p.kubelet.Allocate(context.Background(), "sluice.dev/dpdk", vf.PCI)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"/dev/vfio/vfio": true, "/dev/vfio/" + filepath.Base(group): true}
	for _, d := range r.Devices {
		if !want[d.ContainerPath] {
			t.Errorf("unexpected device spec %s", d.ContainerPath)
		}
		if _, err := os.Stat(d.HostPath); err != nil {
			t.Errorf("device spec %s: %v", d.ContainerPath, err)
		}
		delete(want, d.ContainerPath)
	}
	if len(want) > 0 {
		t.Errorf("missing device specs %v", want)
	}
}
