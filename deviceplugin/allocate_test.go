package deviceplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host/hosttest"
)

// specs maps each device spec's container path to its host path, with
// " perm=..." appended when the permissions are not "rw", which
// sriov-network-device-plugin gives every node.
func specs(r *pluginapi.ContainerAllocateResponse) map[string]string {
	m := map[string]string{}
	for _, d := range r.Devices {
		m[d.ContainerPath] = d.HostPath
		if d.Permissions != "rw" {
			m[d.ContainerPath] += " perm=" + d.Permissions
		}
	}
	return m
}

func infoOf(t *testing.T, r *pluginapi.ContainerAllocateResponse, env string) map[string]map[string]map[string]string {
	t.Helper()
	var info map[string]map[string]map[string]string
	if err := json.Unmarshal([]byte(r.Envs[env+"_INFO"]), &info); err != nil {
		t.Fatalf("%s_INFO = %q: %v", env, r.Envs[env+"_INFO"], err)
	}
	return info
}

func TestAllocateNetdevice(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(pool("intel-a", map[string]any{"deviceType": "netdevice", "selectors": map[string]any{"rootDevices": []string{e810}}})))
	const res = "sluice.dev/intel-a"
	e.kubelet.Wait(res, wait, "2 VFs", allHealthy(2))
	a, b := n.VFAddress(e810, 0), n.VFAddress(e810, 1)
	r, err := e.kubelet.Allocate(context.Background(), res, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Envs["PCIDEVICE_SLUICE_DEV_INTEL-A"]; got != a+","+b {
		t.Errorf("PCIDEVICE_SLUICE_DEV_INTEL-A = %q, want %q", got, a+","+b)
	}
	if len(r.Devices) != 0 || len(r.CdiDevices) != 0 {
		t.Errorf("netdevice VFs got device nodes: %v %v", r.Devices, r.CdiDevices)
	}
	info := infoOf(t, r, "PCIDEVICE_SLUICE_DEV_INTEL-A")
	for _, id := range []string{a, b} {
		if i := info[id]; len(i) != 1 || i["generic"]["deviceID"] != id {
			t.Errorf("INFO[%s] = %v, want generic.deviceID only", id, i)
		}
	}
}

func TestAllocateVfio(t *testing.T) {
	n := twoNICNode(t, 2)
	n.AddDriver("vfio-pci")
	for i := range 2 {
		if err := n.Host().BindDriver(context.Background(), n.VFAddress(e810, i), "vfio-pci"); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, n, native(pool("dpdk", map[string]any{"deviceType": "vfio-pci", "selectors": map[string]any{"pfNames": []string{"ens2f0"}, "drivers": []string{"vfio-pci"}}})))
	const res = "sluice.dev/dpdk"
	e.kubelet.Wait(res, wait, "2 vfio VFs", allHealthy(2))
	vf := n.VFAddress(e810, 1)
	group := filepath.Base(n.Host().VfioGroup(vf))
	if group == "." {
		t.Fatal("fake VF has no IOMMU group")
	}
	r, err := e.kubelet.Allocate(context.Background(), res, vf)
	if err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(n.Root, "dev")
	want := map[string]string{"/dev/vfio/vfio": dev + "/vfio/vfio", "/dev/vfio/" + group: dev + "/vfio/" + group}
	if got := specs(r); !mapsEqual(got, want) {
		t.Errorf("device specs = %v, want %v", got, want)
	}
	for _, d := range r.Devices {
		if !fileExists(d.HostPath) {
			t.Errorf("host path %s does not exist", d.HostPath)
		}
	}
	info := infoOf(t, r, "PCIDEVICE_SLUICE_DEV_DPDK")[vf]
	if v := info["vfio"]; v["mount"] != "/dev/vfio/vfio" || v["dev-mount"] != "/dev/vfio/"+group {
		t.Errorf("INFO = %v", info)
	}
}

func TestAllocateRDMA(t *testing.T) {
	for _, linkType := range []string{"eth", "ib"} {
		t.Run(linkType, func(t *testing.T) {
			n := hosttest.New(t)
			spec := hosttest.ConnectX6(cx0, "ib0", 0)
			spec.LinkType = linkType
			n.AddPF(spec)
			n.SetNumVFs(cx0, 2)
			e := newEnv(t, n, native(pool("rdma", map[string]any{"selectors": map[string]any{"pfNames": []string{"ib0"}, "isRdma": true}})))
			const res = "sluice.dev/rdma"
			e.kubelet.Wait(res, wait, "2 RDMA VFs", allHealthy(2))
			vf := n.VFAddress(cx0, 1)
			rdma := n.RDMADevice(vf)
			r, err := e.kubelet.Allocate(context.Background(), res, vf)
			if err != nil {
				t.Fatal(err)
			}
			got := specs(r)
			var uverbs string
			for p := range got {
				if strings.HasPrefix(p, "/dev/infiniband/uverbs") {
					uverbs = p
				}
			}
			wantPaths := []string{uverbs, "/dev/infiniband/rdma_cm"}
			if linkType == "ib" {
				k := strings.TrimPrefix(uverbs, "/dev/infiniband/uverbs")
				wantPaths = append(wantPaths, "/dev/infiniband/umad"+k, "/dev/infiniband/issm"+k)
			}
			if uverbs == "" || len(got) != len(wantPaths) {
				t.Fatalf("device specs = %v, want %v", got, wantPaths)
			}
			for _, p := range wantPaths {
				host, ok := got[p]
				if !ok || host != filepath.Join(n.Root, p) || !fileExists(host) {
					t.Errorf("spec %s -> %q (ok=%v), want the fake node's %s", p, host, ok, filepath.Join(n.Root, p))
				}
			}
			info := infoOf(t, r, "PCIDEVICE_SLUICE_DEV_RDMA")[vf]
			if ri := info["rdma"]; ri["rdma_dev"] != rdma || ri["uverbs"] != uverbs {
				t.Errorf("INFO = %v, want RDMA device %s", info, rdma)
			}
		})
	}
}

// pfRDMA is the RDMA device of a PF, read through discovery.
func pfRDMA(t *testing.T, n *hosttest.Node, pf string) string {
	t.Helper()
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := snap.PFByAddress(pf)
	if p == nil || p.RDMA == nil {
		t.Fatalf("PF %s has no RDMA device", pf)
	}
	return p.RDMA.Name
}

func TestAllocateCDI(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(
		pool("rdma", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}, "isRdma": true}}),
		pool("plain", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}}),
	), func(o *Options) { o.CDI = true })
	const res = "sluice.dev/rdma"
	e.kubelet.Wait(res, wait, "2 VFs", allHealthy(2))
	vf := n.VFAddress(cx0, 0)
	r, err := e.kubelet.Allocate(context.Background(), res, vf)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.CdiDevices) != 1 || r.CdiDevices[0].Name != "sluice.dev/rdma="+vf || len(r.Devices) != 0 {
		t.Errorf("CDI devices = %v, device specs = %v; want sluice.dev/rdma=%s only", r.CdiDevices, r.Devices, vf)
	}
	if r.Envs["PCIDEVICE_SLUICE_DEV_RDMA"] != vf {
		t.Errorf("env = %v", r.Envs)
	}
	b, err := os.ReadFile(filepath.Join(e.m.opts.CDIDir, "sluice-sluice.dev_rdma.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec cdispec.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Kind != "sluice.dev/rdma" || spec.Version == "" || len(spec.Devices) != 2 {
		t.Fatalf("spec = %s", b)
	}
	var dev *cdispec.Device
	for i := range spec.Devices {
		if spec.Devices[i].Name == vf {
			dev = &spec.Devices[i]
		}
	}
	if dev == nil || len(dev.ContainerEdits.DeviceNodes) != 2 {
		t.Fatalf("spec device %s = %+v", vf, dev)
	}
	for _, node := range dev.ContainerEdits.DeviceNodes {
		if node.HostPath != filepath.Join(n.Root, node.Path) || !strings.HasPrefix(node.Path, "/dev/infiniband/") {
			t.Errorf("device node %+v", node)
		}
	}
	// A pool without device nodes has no spec; a removed pool loses its spec.
	if fileExists(filepath.Join(e.m.opts.CDIDir, "sluice-sluice.dev_plain.json")) {
		t.Error("spec written for a pool without device nodes")
	}
	// A spec sluice-cni wrote for a soft-RoCE attachment is not the
	// plugin's to remove.
	cniSpec, err := nodefiles.WriteCDISpec(e.m.opts.CDIDir, nodefiles.CDIDevice{Kind: "sluice.dev/roce", PCIAddress: vf, DeviceNodes: []string{"/dev/infiniband/uverbs9"}})
	if err != nil {
		t.Fatal(err)
	}
	// Nor is a spec the DRA driver wrote for a prepared claim.
	claimSpec, err := nodefiles.WriteDRAClaimCDISpec(e.m.opts.CDIDir, "0b6e2c1a-1111-4c5e-9e55-7d2f0c1a2b3c", "sluice.dev/vf",
		[]cdispec.Device{nodefiles.NewCDIDevice("c-vf", []nodefiles.CDINode{{Path: "/dev/infiniband/uverbs8"}}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	e.writeConfig(native(pool("plain", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}})))
	e.kubelet.WaitGone(res, wait)
	if fileExists(filepath.Join(e.m.opts.CDIDir, "sluice-sluice.dev_rdma.json")) {
		t.Error("spec of the removed pool left behind")
	}
	if !fileExists(cniSpec) {
		t.Errorf("the plugin removed sluice-cni's spec %s", cniSpec)
	}
	if !fileExists(claimSpec) {
		t.Errorf("the plugin removed the DRA driver's claim spec %s", claimSpec)
	}
}

// A soft-RoCE pool names each VF as a CDI device whose spec sluice-cni
// writes at ADD, with or without --cdi, and writes no spec of its own.
func TestAllocateSoftRoCE(t *testing.T) {
	for _, cdi := range []bool{false, true} {
		t.Run(fmt.Sprintf("cdi=%t", cdi), func(t *testing.T) {
			n := twoNICNode(t, 2)
			e := newEnv(t, n, native(pool("roce", map[string]any{"softRoCE": true, "selectors": map[string]any{"pfNames": []string{"ens2f0"}}})),
				func(o *Options) { o.CDI = cdi; o.CDIDir = t.TempDir() })
			const res = "sluice.dev/roce"
			e.kubelet.Wait(res, wait, "2 VFs", allHealthy(2))
			vfs := []string{n.VFAddress(e810, 0), n.VFAddress(e810, 1)}
			r, err := e.kubelet.Allocate(context.Background(), res, vfs...)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range r.CdiDevices {
				names = append(names, d.Name)
			}
			want := []string{res + "=" + vfs[0], res + "=" + vfs[1]}
			if !slices.Equal(names, want) || len(r.Devices) != 0 {
				t.Errorf("CDI devices %v, device specs %v; want %v only", names, r.Devices, want)
			}
			if r.Envs["PCIDEVICE_SLUICE_DEV_ROCE"] != strings.Join(vfs, ",") {
				t.Errorf("env = %v", r.Envs)
			}
			if ents, _ := os.ReadDir(e.m.opts.CDIDir); len(ents) != 0 {
				t.Errorf("the plugin wrote %d CDI specs for a soft-RoCE pool, want none (sluice-cni writes them)", len(ents))
			}
		})
	}
}

func TestAllocateUnknownDevices(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, native(pool("a", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens2f0"}}})))
	e.kubelet.Wait("sluice.dev/a", wait, "1 VF", allHealthy(1))
	_, err := e.kubelet.Allocate(context.Background(), "sluice.dev/a", n.VFAddress(e810, 0), "0000:99:00.1", "0000:99:00.2")
	if status.Code(err) != codes.NotFound {
		t.Fatalf("err = %v, want NotFound", err)
	}
	for _, id := range []string{"0000:99:00.1", "0000:99:00.2", "sluice.dev/a"} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("error %q does not name %s", err, id)
		}
	}
	if strings.Contains(err.Error(), n.VFAddress(e810, 0)) {
		t.Errorf("error %q names the known device too", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestNativeExcludeTopologyAndVhostNet: a pool the node agent writes (the
// native config, from a NetworkNodePolicy's excludeTopology and
// needVhostNet) is advertised without NUMA topology and hands out
// /dev/vhost-net and /dev/net/tun; a pool without them keeps its topology.
func TestNativeExcludeTopologyAndVhostNet(t *testing.T) {
	n := twoNICNode(t, 2)
	e := newEnv(t, n, native(
		pool("dpdk_a", map[string]any{"deviceType": "netdevice", "excludeTopology": true, "needVhostNet": true,
			"selectors": map[string]any{"rootDevices": []string{e810}}}),
		pool("plain", map[string]any{"deviceType": "netdevice", "selectors": map[string]any{"pfNames": []string{"ens1f0"}}}),
	))
	const res = "sluice.dev/dpdk_a"
	s := e.kubelet.Wait(res, wait, "2 VFs", allHealthy(2))
	for _, d := range s.Devices {
		if d.Topology != nil {
			t.Errorf("excludeTopology pool device %s advertised with topology %v", d.ID, d.Topology)
		}
	}
	if d := e.kubelet.Wait("sluice.dev/plain", wait, "2 VFs", allHealthy(2)).Devices[0]; d.Topology == nil {
		t.Errorf("pool without excludeTopology lost its topology")
	}
	r, err := e.kubelet.Allocate(context.Background(), res, n.VFAddress(e810, 0))
	if err != nil {
		t.Fatal(err)
	}
	got := specs(r)
	for _, dev := range []string{"/dev/vhost-net", "/dev/net/tun"} {
		if !strings.HasSuffix(got[dev], dev) {
			t.Errorf("allocation has no %s: %v", dev, got)
		}
	}
	rp, err := e.kubelet.Allocate(context.Background(), "sluice.dev/plain", n.VFAddress(cx0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(rp.Devices) != 0 {
		t.Errorf("pool without needVhostNet got device nodes: %v", specs(rp))
	}
}
