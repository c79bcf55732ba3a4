package deviceplugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
)

// scanned returns once a scan that started after the call has completed.
func (e *env) scanned() {
	e.t.Helper()
	for range 2 { // the first may complete a scan already under way
		before := e.m.scans.Load()
		e.rescan()
		deadline := time.Now().Add(wait)
		for e.m.scans.Load() == before {
			if time.Now().After(deadline) {
				e.t.Fatalf("no scan within %v of a rescan", wait)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func (e *env) devInfoPath(name string) string { return filepath.Join(e.m.opts.DeviceInfoDir, name) }

// wantDevInfo compares a device-info file with the JSON the Network
// Plumbing Working Group's device-info spec gives a PCI device, as
// sriov-network-device-plugin fills it (pkg/netdevice/netResourcePool.go
// StoreDeviceInfoFile: type "pci", version "1.1.0", pci-address and, for
// RDMA devices, rdma-device; file named by the network-attachment-
// definition-client's pkg/utils/cniconfig.go getDPDeviceInfoPath:
// <resource with '/' as '-'>-<device ID>-device.json).
func wantDevInfo(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("device-info file: %v", err)
	}
	var got, exp map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("%s =\n %s\nwant\n %s", path, b, want)
	}
}

func TestDeviceInfoFiles(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(
		pool("intel-a", map[string]any{"selectors": map[string]any{"rootDevices": []string{e810}}}),
		pool("rdma", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}, "isRdma": true}}),
	))
	e.kubelet.Wait("sluice.dev/intel-a", wait, "2 VFs", allHealthy(2))
	e.kubelet.Wait("sluice.dev/rdma", wait, "2 VFs", allHealthy(2))
	a, b, r := n.VFAddress(e810, 0), n.VFAddress(e810, 1), n.VFAddress(cx0, 0)
	if _, err := e.kubelet.Allocate(context.Background(), "sluice.dev/intel-a", a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kubelet.Allocate(context.Background(), "sluice.dev/rdma", r); err != nil {
		t.Fatal(err)
	}
	fa, fb, fr := e.devInfoPath("sluice.dev-intel-a-"+a+"-device.json"), e.devInfoPath("sluice.dev-intel-a-"+b+"-device.json"),
		e.devInfoPath("sluice.dev-rdma-"+r+"-device.json")
	wantDevInfo(t, fa, `{"type":"pci","version":"1.1.0","pci":{"pci-address":"`+a+`"}}`)
	wantDevInfo(t, fb, `{"type":"pci","version":"1.1.0","pci":{"pci-address":"`+b+`"}}`)
	wantDevInfo(t, fr, `{"type":"pci","version":"1.1.0","pci":{"pci-address":"`+r+`","rdma-device":"`+n.RDMADevice(r)+`"}}`)

	// Not yet attached (the CNI has not run): kept.
	e.scanned()
	if !fileExists(fa) || !fileExists(fb) {
		t.Fatal("device-info files removed before the pod's CNI ran")
	}
	// Attached, then released by the pod: removed.
	e.attach(a, "ens2f0v0")
	e.scanned()
	if !fileExists(fa) {
		t.Fatal("device-info file removed while its VF is attached")
	}
	if err := nodefiles.NewAttachments(filepath.Join(e.dir, "attachments")).Delete(a); err != nil {
		t.Fatal(err)
	}
	e.scanned()
	if fileExists(fa) {
		t.Error("device-info file kept after the pod released its VF")
	}
	// A device leaving its pool loses its file.
	n.SetNumVFs(e810, 1)
	e.scanned()
	if fileExists(fb) {
		t.Error("device-info file kept for a VF gone from the node")
	}
	// A pool removed loses its files.
	if !fileExists(fr) {
		t.Fatal("rdma device-info file removed early")
	}
	e.writeConfig(native(pool("intel-a", map[string]any{"selectors": map[string]any{"rootDevices": []string{e810}}})))
	e.kubelet.WaitGone("sluice.dev/rdma", wait)
	e.scanned()
	if fileExists(fr) {
		t.Error("device-info file kept for a removed pool")
	}
}

// Files survive a restart of the plugin and are adopted: released after
// it, they are removed. Files of other plugins are left alone.
func TestDeviceInfoFilesAdoptedAfterRestart(t *testing.T) {
	n := twoNICNode(t, 1)
	dir := filepath.Join(t.TempDir(), "devinfo")
	att := filepath.Join(t.TempDir(), "attachments")
	cfg := native(pool("intel-a", map[string]any{"selectors": map[string]any{"rootDevices": []string{e810}}}))
	opt := func(o *Options) { o.DeviceInfoDir = dir; o.AttachmentsDir = att }
	vf := n.VFAddress(e810, 0)
	f := filepath.Join(dir, "sluice.dev-intel-a-"+vf+"-device.json")
	other := filepath.Join(dir, "intel.com-sriov-"+vf+"-device.json")

	e := newEnv(t, n, cfg, opt)
	e.kubelet.Wait("sluice.dev/intel-a", wait, "1 VF", allHealthy(1))
	if _, err := e.kubelet.Allocate(context.Background(), "sluice.dev/intel-a", vf); err != nil {
		t.Fatal(err)
	}
	if err := nodefiles.NewAttachments(att).Put(nodefiles.Record{PCIAddress: vf, ContainerID: "c1", IfName: "net1", HostIfName: "ens2f0v0"}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	e.stop()
	if !fileExists(f) {
		t.Fatal("device-info file removed at exit")
	}

	e = newEnv(t, n, cfg, opt)
	e.kubelet.Wait("sluice.dev/intel-a", wait, "1 VF", func(s kubelettest.Snapshot) bool { return len(s.Devices) == 1 })
	e.scanned()
	if !fileExists(f) {
		t.Fatal("adopted file of an attached VF removed")
	}
	if err := nodefiles.NewAttachments(att).Delete(vf); err != nil {
		t.Fatal(err)
	}
	e.scanned()
	if fileExists(f) {
		t.Error("adopted file kept after the pod released its VF")
	}
	if !fileExists(other) {
		t.Error("another plugin's device-info file removed")
	}
}

// A file is adopted when its pool appears after the start too (a config
// written later, a PF whose VFs join once ready).
func TestDeviceInfoFilesAdoptedWhenPoolAppears(t *testing.T) {
	n := twoNICNode(t, 1)
	dir := filepath.Join(t.TempDir(), "devinfo")
	att := filepath.Join(t.TempDir(), "attachments")
	opt := func(o *Options) { o.DeviceInfoDir = dir; o.AttachmentsDir = att }
	vf := n.VFAddress(e810, 0)
	f := filepath.Join(dir, "sluice.dev-intel-a-"+vf+"-device.json")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(`{"type":"pci","version":"1.1.0","pci":{"pci-address":"`+vf+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := nodefiles.NewAttachments(att).Put(nodefiles.Record{PCIAddress: vf, ContainerID: "c1", IfName: "net1", HostIfName: "ens2f0v0"}); err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, n, native(), opt)
	e.scanned()
	e.writeConfig(native(pool("intel-a", map[string]any{"selectors": map[string]any{"rootDevices": []string{e810}}})))
	e.kubelet.Wait("sluice.dev/intel-a", wait, "1 VF", func(s kubelettest.Snapshot) bool { return len(s.Devices) == 1 })
	e.scanned()
	if !fileExists(f) {
		t.Fatal("file of an attached VF removed")
	}
	if err := nodefiles.NewAttachments(att).Delete(vf); err != nil {
		t.Fatal(err)
	}
	e.scanned()
	if fileExists(f) {
		t.Error("file adopted with its pool kept after the pod released its VF")
	}
}
