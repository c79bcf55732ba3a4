//go:build nodetest

package deviceplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	nadutils "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/utils"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	dp "github.com/sluice-net/sluice/deviceplugin"
	nu "github.com/sluice-net/sluice/test/node/guest/nodeutil"
)

// The incumbents' own config formats on the real node: a
// sriov-network-device-plugin resourceList and a k8s-rdma-shared-dev-plugin
// configList, served as those plugins document them (docs/migrating.md):
// the same resources, Allocate answers (variables, INFO JSON, device
// nodes) and device-info files, read back with the Network Plumbing
// Working Group's own reader, as Multus reads them.

// vfDeviceID is a VF's PCI device ID as the incumbents' selectors write
// it ("10ca" for the emulated 82576's VFs).
func vfDeviceID(t *testing.T, vf nu.VF) string {
	t.Helper()
	return strings.TrimPrefix(nu.MustRead(t, vf.Device()+"/device"), "0x")
}

// info parses a PCIDEVICE_<RESOURCE>_INFO value.
func info(t *testing.T, s string) map[string]map[string]map[string]string {
	t.Helper()
	var m map[string]map[string]map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("INFO %q: %v", s, err)
	}
	return m
}

// deviceNodes checks that every device spec's host node exists and
// returns the container paths.
func deviceNodes(t *testing.T, specs []*pluginapi.DeviceSpec) []string {
	t.Helper()
	var paths []string
	for _, d := range specs {
		if _, err := os.Stat(d.HostPath); err != nil {
			t.Errorf("device spec %s: host path: %v", d.ContainerPath, err)
		}
		paths = append(paths, d.ContainerPath)
	}
	slices.Sort(paths)
	return paths
}

func TestSRIOVDPFormat(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	vfs := nu.VFs(t, pf, 2)
	nu.Run(t, "ip", "link", "set", vfs[0].Netdev, "up")
	nu.AddRXE(t, "", "sndprxe0", vfs[0].Netdev)
	nu.WaitRDMAActive(t, "sndprxe0")
	id := vfDeviceID(t, vfs[0])
	// Its README's netDevice example, narrowed to one VF each by pfNames
	// ranges; the prefix is its default (intel.com), as its DaemonSet has.
	sel := func(vf int, rdma bool) map[string]any {
		s := map[string]any{"vendors": []string{"8086"}, "devices": []string{id}, "drivers": []string{"igbvf"},
			"pfNames": []string{pf.Netdev + "#" + strconv.Itoa(vf) + "-" + strconv.Itoa(vf)}}
		if rdma {
			s["isRdma"] = true
		}
		return s
	}
	cfg, err := json.Marshal(map[string]any{"resourceList": []map[string]any{
		{"resourceName": "igb_sriov", "selectors": sel(1, false)},
		{"resourceName": "igb_rdma", "selectors": sel(0, true)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ res, pci string }{{"intel.com/igb_sriov", vfs[1].PCI}, {"intel.com/igb_rdma", vfs[0].PCI}} {
		t.Cleanup(func() { _ = nadutils.CleanDeviceInfoForDP(c.res, c.pci) })
	}
	p := startConfig(t, cfg, dp.Options{ResourcePrefix: "intel.com"}, pf.PCI)

	// A netDevice VF: the variable, INFO with the generic entry alone, no
	// device node, and the device-info file.
	s := p.kubelet.Wait("intel.com/igb_sriov", 30*time.Second, "VF 1 advertised", healthy(1))
	if s.Device(vfs[1].PCI) == nil {
		t.Fatalf("intel.com/igb_sriov does not advertise VF %s: %s", vfs[1].PCI, s)
	}
	r, err := p.kubelet.Allocate(context.Background(), "intel.com/igb_sriov", vfs[1].PCI)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Envs["PCIDEVICE_INTEL_COM_IGB_SRIOV"]; got != vfs[1].PCI {
		t.Errorf("PCIDEVICE_INTEL_COM_IGB_SRIOV = %q, want %s", got, vfs[1].PCI)
	}
	want := map[string]map[string]map[string]string{vfs[1].PCI: {"generic": {"deviceID": vfs[1].PCI}}}
	if got := info(t, r.Envs["PCIDEVICE_INTEL_COM_IGB_SRIOV_INFO"]); !maps.EqualFunc(got, want, func(a, b map[string]map[string]string) bool {
		return maps.EqualFunc(a, b, func(x, y map[string]string) bool { return maps.Equal(x, y) })
	}) {
		t.Errorf("INFO = %v, want %v", got, want)
	}
	if len(r.Devices) != 0 || len(r.Mounts) != 0 {
		t.Errorf("a netDevice VF got device nodes %v and mounts %v", r.Devices, r.Mounts)
	}
	di, err := nadutils.LoadDeviceInfoFromDP("intel.com/igb_sriov", vfs[1].PCI)
	if err != nil || di == nil {
		t.Fatalf("device-info file of %s: %v (nil: %t)", vfs[1].PCI, err, di == nil)
	}
	if di.Type != "pci" || di.Version != "1.1.0" || di.Pci == nil || di.Pci.PciAddress != vfs[1].PCI || di.Pci.RdmaDevice != "" {
		t.Errorf("device-info = %+v (pci %+v)", di, di.Pci)
	}

	// isRdma: the VF's RDMA char devices, and their paths in INFO.
	p.kubelet.Wait("intel.com/igb_rdma", 30*time.Second, "VF 0 advertised", healthy(1))
	r, err = p.kubelet.Allocate(context.Background(), "intel.com/igb_rdma", vfs[0].PCI)
	if err != nil {
		t.Fatal(err)
	}
	uverbs := uverbsOf(t, "sndprxe0")
	if got, want := deviceNodes(t, r.Devices), []string{"/dev/infiniband/rdma_cm", uverbs}; !slices.Equal(got, want) {
		t.Errorf("device nodes = %v, want %v", got, want)
	}
	got := info(t, r.Envs["PCIDEVICE_INTEL_COM_IGB_RDMA_INFO"])[vfs[0].PCI]
	if got["generic"]["deviceID"] != vfs[0].PCI || got["rdma"]["uverbs"] != uverbs || got["rdma"]["rdma_cm"] != "/dev/infiniband/rdma_cm" || len(got) != 2 {
		t.Errorf("INFO of %s = %v, want generic.deviceID and rdma.uverbs %s, rdma.rdma_cm", vfs[0].PCI, got, uverbs)
	}
	di, err = nadutils.LoadDeviceInfoFromDP("intel.com/igb_rdma", vfs[0].PCI)
	if err != nil || di == nil || di.Pci == nil {
		t.Fatalf("device-info file of %s: %v", vfs[0].PCI, err)
	}
	if di.Pci.PciAddress != vfs[0].PCI || di.Pci.RdmaDevice != "sndprxe0" {
		t.Errorf("device-info pci = %+v, want %s with rdma-device sndprxe0", di.Pci, vfs[0].PCI)
	}
}

func TestRDMASharedFormat(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	vfs := nu.VFs(t, pf, 2)
	var uverbs []string
	for i, vf := range vfs {
		name := "rsdprxe" + strconv.Itoa(i)
		nu.Run(t, "ip", "link", "set", vf.Netdev, "up")
		nu.AddRXE(t, "", name, vf.Netdev)
		nu.WaitRDMAActive(t, name)
		uverbs = append(uverbs, uverbsOf(t, name))
	}
	// Its README's config, selecting the two netdevs by name; the prefix is
	// its default (rdma).
	cfg, err := json.Marshal(map[string]any{"periodicUpdateInterval": 300, "configList": []map[string]any{
		{"resourceName": "hca_shared", "rdmaHcaMax": 100, "selectors": map[string]any{"ifNames": []string{vfs[0].Netdev, vfs[1].Netdev}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := startConfig(t, cfg, dp.Options{ResourcePrefix: "rdma"}, pf.PCI)
	const res = "rdma/hca_shared"

	// rdmaHcaMax units in all, IDs 0 to 99, whatever the number of HCAs.
	s := p.kubelet.Wait(res, 30*time.Second, "100 units", healthy(100))
	for _, id := range []string{"0", "99"} {
		if s.Device(id) == nil {
			t.Errorf("no unit %q: %s", id, s)
		}
	}
	// Each unit gets every matched HCA, and so do two: rdma_cm and both
	// uverbs, no variable, no device-info file.
	want := append([]string{"/dev/infiniband/rdma_cm"}, uverbs...)
	slices.Sort(want)
	for _, ids := range [][]string{{"5"}, {"6", "7"}} {
		r, err := p.kubelet.Allocate(context.Background(), res, ids...)
		if err != nil {
			t.Fatal(err)
		}
		if got := deviceNodes(t, r.Devices); !slices.Equal(got, want) {
			t.Errorf("units %v: device nodes = %v, want %v", ids, got, want)
		}
		if len(r.Envs) != 0 || len(r.Mounts) != 0 {
			t.Errorf("units %v: variables %v and mounts %v, want none", ids, r.Envs, r.Mounts)
		}
		for _, id := range ids {
			// The reader says "no such file" with the open's error.
			if di, err := nadutils.LoadDeviceInfoFromDP(res, id); di != nil || !errors.Is(err, os.ErrNotExist) {
				t.Errorf("unit %s has a device-info file: %+v, %v", id, di, err)
			}
		}
	}
}

// TestUIO binds a VF to uio_pci_generic, as DPDK users of
// sriov-network-device-plugin do, and serves it from a resourceList pool:
// the container gets the VF's /dev/uio<N> and INFO its uio entry.
func TestUIO(t *testing.T) {
	nu.Require(t)
	pf := nu.PFs(t)[0]
	vf := nu.VFs(t, pf, 1)[0]
	nu.Run(t, "modprobe", "uio_pci_generic")
	nu.MustWrite(t, vf.Device()+"/driver_override", "uio_pci_generic")
	t.Cleanup(func() {
		_ = nu.Write(vf.Device()+"/driver_override", "\n")
		if nu.Driver(vf.PCI) != "" {
			_ = nu.Write(vf.Device()+"/driver/unbind", vf.PCI)
		}
		_ = nu.Write("/sys/bus/pci/drivers_probe", vf.PCI)
	})
	nu.MustWrite(t, vf.Device()+"/driver/unbind", vf.PCI)
	if err := nu.Write("/sys/bus/pci/drivers_probe", vf.PCI); err != nil {
		t.Logf("drivers_probe: %v", err)
	}
	nu.Poll(t, 10*time.Second, 50*time.Millisecond, "VF on uio_pci_generic", func() (bool, error) {
		d := nu.Driver(vf.PCI)
		return d == "uio_pci_generic", fmt.Errorf("driver %q", d)
	})
	uios, err := filepath.Glob(vf.Device() + "/uio/uio*")
	if err != nil || len(uios) != 1 {
		t.Fatalf("uio devices of %s: %v %v", vf.PCI, uios, err)
	}
	dev := "/dev/" + filepath.Base(uios[0])

	cfg, err := json.Marshal(map[string]any{"resourceList": []map[string]any{
		{"resourceName": "igb_uio", "selectors": map[string]any{"drivers": []string{"uio_pci_generic"}, "pfNames": []string{pf.Netdev}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := startConfig(t, cfg, dp.Options{ResourcePrefix: "intel.com"}, pf.PCI)
	p.kubelet.Wait("intel.com/igb_uio", 30*time.Second, "the uio VF", healthy(1))
	t.Cleanup(func() { _ = nadutils.CleanDeviceInfoForDP("intel.com/igb_uio", vf.PCI) })
	r, err := p.kubelet.Allocate(context.Background(), "intel.com/igb_uio", vf.PCI)
	if err != nil {
		t.Fatal(err)
	}
	if got := deviceNodes(t, r.Devices); !slices.Equal(got, []string{dev}) {
		t.Errorf("device nodes = %v, want %s", got, dev)
	}
	if got := info(t, r.Envs["PCIDEVICE_INTEL_COM_IGB_UIO_INFO"])[vf.PCI]["uio"]["mount"]; got != dev {
		t.Errorf("INFO uio.mount = %q, want %s (INFO %s)", got, dev, r.Envs["PCIDEVICE_INTEL_COM_IGB_UIO_INFO"])
	}
}
