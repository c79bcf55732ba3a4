package deviceplugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

// Addresses of wholeNICNode's functions.
const (
	cxWhole = "0000:af:00.0" // ens5f0, ConnectX-6 without SR-IOV, NUMA 1
	e810Off = "0000:5e:00.0" // ens3f0, E810 with no VFs, NUMA 0
	e810On  = "0000:5e:00.1" // ens3f1, E810 with 2 VFs, NUMA 0
	uplink  = "0000:02:00.0" // eno1, igb, the node's default route
)

// wholeNICNode has functions sriov-network-device-plugin serves whole (a
// ConnectX-6 without SR-IOV, an E810 PF with no VFs) beside a PF with VFs
// and the node's uplink.
func wholeNICNode(t *testing.T) *hosttest.Node {
	n := hosttest.New(t)
	cx := hosttest.ConnectX6(cxWhole, "ens5f0", 1)
	n.AddNonSRIOVNIC(cx)
	n.AddPF(hosttest.E810(e810Off, "ens3f0", 0))
	n.AddPF(hosttest.E810(e810On, "ens3f1", 0))
	n.SetNumVFs(e810On, 2)
	n.AddNIC(uplink, "eno1", "igb")
	n.SetDefaultRoute("eno1", true)
	return n
}

func sndp(pools ...map[string]any) map[string]any {
	return map[string]any{"resourceList": pools}
}

// An sriov-network-device-plugin config selects whole functions as that
// plugin does: by their own vendor, device, driver, link type and RDMA
// device, never by pfNames or rootDevices, never a PF that has VFs, never
// the node's uplink.
func TestWholeNICsInSNDPPools(t *testing.T) {
	n := wholeNICNode(t)
	e := newEnv(t, n, sndp(
		map[string]any{"resourceName": "mlnx_rdma", "selectors": []any{map[string]any{"vendors": []string{"15b3"}, "devices": []string{"101d"}, "isRdma": true}}},
		map[string]any{"resourceName": "intel_nics", "selectors": []any{map[string]any{"vendors": []string{"8086"}}}},
		map[string]any{"resourceName": "by_pf", "selectors": []any{map[string]any{"pfNames": []string{"ens3f0", "ens5f0"}}, map[string]any{"rootDevices": []string{e810Off, cxWhole}}}},
		map[string]any{"resourceName": "eth", "selectors": []any{map[string]any{"linkTypes": []string{"ether"}, "drivers": []string{"mlx5_core"}}}},
	), func(o *Options) { o.ResourcePrefix = "intel.com" })

	s := e.kubelet.Wait("intel.com/mlnx_rdma", wait, "the ConnectX-6", allHealthy(1))
	if d := s.Devices[0]; d.ID != cxWhole || d.Topology == nil || len(d.Topology.Nodes) != 1 || d.Topology.Nodes[0].ID != 1 {
		t.Errorf("mlnx_rdma device = %v, want %s on NUMA 1", d, cxWhole)
	}
	vf0, vf1 := n.VFAddress(e810On, 0), n.VFAddress(e810On, 1)
	want := []string{vf0, vf1, e810Off}
	slices.Sort(want)
	s = e.kubelet.Wait("intel.com/intel_nics", wait, "the E810 without VFs and the VFs of the other", allHealthy(3))
	if got := s.IDs(); !slices.Equal(got, want) {
		t.Errorf("intel_nics = %v, want %v: the PF with VFs and the uplink are never devices", got, want)
	}
	if d := s.Device(e810Off); d.Topology == nil || d.Topology.Nodes[0].ID != 0 {
		t.Errorf("E810 PF topology = %v, want NUMA 0", d.Topology)
	}
	e.kubelet.Wait("intel.com/eth", wait, "the ConnectX-6 by link type and driver", func(s kubelettest.Snapshot) bool {
		return slices.Equal(s.IDs(), []string{cxWhole})
	})
	e.scanned()
	if s := e.kubelet.Plugin("intel.com/by_pf"); len(s.Devices) != 0 {
		t.Errorf("by_pf = %v: pfNames and rootDevices select a PF's VFs, never a function served whole", s.IDs())
	}

	// Allocate answers as for a VF: the variables, the RDMA char devices
	// and the device-info file, with the function's netdev's RDMA device.
	r, err := e.kubelet.Allocate(context.Background(), "intel.com/mlnx_rdma", cxWhole)
	if err != nil {
		t.Fatal(err)
	}
	const env = "PCIDEVICE_INTEL_COM_MLNX_RDMA"
	if r.Envs[env] != cxWhole {
		t.Errorf("%s = %q, want %s", env, r.Envs[env], cxWhole)
	}
	rdma := n.RDMADevice(cxWhole)
	info := infoOf(t, r, env)[cxWhole]
	if info["generic"]["deviceID"] != cxWhole || info["rdma"]["rdma_dev"] != rdma || info["rdma"]["uverbs"] == "" || info["rdma"]["rdma_cm"] != "/dev/infiniband/rdma_cm" {
		t.Errorf("INFO = %v, want generic and rdma of %s", info, rdma)
	}
	got := specs(r)
	if len(got) != 2 || got["/dev/infiniband/rdma_cm"] != filepath.Join(n.Root, "dev/infiniband/rdma_cm") || got[info["rdma"]["uverbs"]] == "" {
		t.Errorf("device specs = %v, want the RDMA char devices", got)
	}
	wantDevInfo(t, e.devInfoPath("intel.com-mlnx_rdma-"+cxWhole+"-device.json"),
		`{"type":"pci","version":"1.1.0","pci":{"pci-address":"`+cxWhole+`","rdma-device":"`+rdma+`"}}`)

	r, err = e.kubelet.Allocate(context.Background(), "intel.com/intel_nics", e810Off)
	if err != nil {
		t.Fatal(err)
	}
	if r.Envs["PCIDEVICE_INTEL_COM_INTEL_NICS"] != e810Off || len(r.Devices) != 0 {
		t.Errorf("E810 PF allocation: envs %v, device specs %v", r.Envs, r.Devices)
	}

	// Health: the function's own carrier.
	n.SetCarrier("ens5f0", false)
	if !e.links.concerns(host.LinkEvent{Name: "ens5f0", Kind: "device"}) {
		t.Error("the link filter drops the events of a function served whole")
	}
	e.links.fire("ens5f0")
	e.kubelet.Wait("intel.com/mlnx_rdma", wait, "the ConnectX-6 without carrier", health(cxWhole, pluginapi.Unhealthy))
	n.SetCarrier("ens5f0", true)
	e.links.fire("ens5f0")
	e.kubelet.Wait("intel.com/mlnx_rdma", wait, "the ConnectX-6 with carrier back", allHealthy(1))

	// The PF gets VFs: its VFs are the devices now, not the PF.
	n.SetNumVFs(e810Off, 2)
	want = []string{vf0, vf1, n.VFAddress(e810Off, 0), n.VFAddress(e810Off, 1)}
	slices.Sort(want)
	e.rescan()
	s = e.kubelet.Wait("intel.com/intel_nics", wait, "the VFs only", allHealthy(4))
	if got := s.IDs(); !slices.Equal(got, want) {
		t.Errorf("intel_nics = %v, want %v", got, want)
	}

	// The uplink loses its default route: it is a NIC like the others.
	n.SetDefaultRoute("eno1", false)
	e.rescan()
	e.kubelet.Wait("intel.com/intel_nics", wait, "the VFs and eno1", func(s kubelettest.Snapshot) bool {
		return s.Device(uplink) != nil && len(s.Devices) == 5
	})
}

// A native pool selects whole functions with the same rules; the pools the
// operator renders (pfNames with VF ranges) never do.
func TestWholeNICsInNativePools(t *testing.T) {
	n := wholeNICNode(t)
	e := newEnv(t, n, native(
		pool("cx", map[string]any{"deviceType": "netdevice", "selectors": map[string]any{"devices": []string{"101d"}, "isRdma": true}}),
		pool("rendered", map[string]any{"deviceType": "netdevice", "selectors": map[string]any{"pfNames": []string{"ens3f1#0-1", "ens3f0#0-1"}}}),
	))
	e.kubelet.Wait("sluice.dev/cx", wait, "the ConnectX-6", func(s kubelettest.Snapshot) bool {
		return slices.Equal(s.IDs(), []string{cxWhole}) && s.Healthy() == 1
	})
	e.kubelet.Wait("sluice.dev/rendered", wait, "the VFs only", func(s kubelettest.Snapshot) bool {
		return slices.Equal(s.IDs(), []string{n.VFAddress(e810On, 0), n.VFAddress(e810On, 1)})
	})
	// A vfio-pci pool: the ConnectX-6 on its network driver is Unhealthy.
	e.writeConfig(native(pool("cx", map[string]any{"deviceType": "vfio-pci", "selectors": map[string]any{"devices": []string{"101d"}}})))
	e.kubelet.Wait("sluice.dev/cx", wait, "the ConnectX-6 on the wrong driver", health(cxWhole, pluginapi.Unhealthy))
}

// Functions on userspace drivers get their device nodes, as
// sriov-network-device-plugin gives them: /dev/uioN under a uio driver,
// /dev/vfio/vfio and the group, which without an IOMMU is the host's
// /dev/vfio/noiommu-N at the container's /dev/vfio/N.
func TestAllocateUserspaceDrivers(t *testing.T) {
	for _, cdi := range []bool{false, true} {
		name := "device specs"
		if cdi {
			name = "CDI"
		}
		t.Run(name, func(t *testing.T) {
			n := hosttest.New(t)
			const igb, nic = "0000:01:00.0", "0000:03:00.0"
			n.AddPF(hosttest.IGB(igb, "enp1s0"))
			n.SetNumVFs(igb, 2)
			n.AddNIC(nic, "enp3s0", "igb")
			vf0, vf1 := n.VFAddress(igb, 0), n.VFAddress(igb, 1)
			noiommu := n.BindUserspace(vf0, "vfio-pci")
			uioVF := n.BindUserspace(vf1, "igb_uio")
			uioNIC := n.BindUserspace(nic, "uio_pci_generic")
			group := filepath.Base(noiommu)[len("noiommu-"):]
			e := newEnv(t, n, sndp(
				map[string]any{"resourceName": "dpdk", "selectors": []any{map[string]any{"drivers": []string{"vfio-pci"}}}},
				map[string]any{"resourceName": "uio", "selectors": []any{map[string]any{"drivers": []string{"igb_uio", "uio_pci_generic"}}}},
			), func(o *Options) { o.ResourcePrefix = "intel.com"; o.CDI = cdi })
			e.kubelet.Wait("intel.com/dpdk", wait, "the vfio VF", allHealthy(1))
			e.kubelet.Wait("intel.com/uio", wait, "the uio VF and NIC", allHealthy(2))

			cases := []struct {
				res, env string
				ids      []string
				nodes    map[string]string // container path -> host path under the node's root
				info     map[string]map[string]map[string]string
			}{{
				res: "intel.com/dpdk", env: "PCIDEVICE_INTEL_COM_DPDK", ids: []string{vf0},
				nodes: map[string]string{"/dev/vfio/vfio": "/dev/vfio/vfio", "/dev/vfio/" + group: noiommu},
				info: map[string]map[string]map[string]string{vf0: {"generic": {"deviceID": vf0},
					"vfio": {"mount": "/dev/vfio/vfio", "dev-mount": "/dev/vfio/" + group}}},
			}, {
				res: "intel.com/uio", env: "PCIDEVICE_INTEL_COM_UIO", ids: []string{vf1, nic},
				nodes: map[string]string{uioVF: uioVF, uioNIC: uioNIC},
				info: map[string]map[string]map[string]string{
					vf1: {"generic": {"deviceID": vf1}, "uio": {"mount": uioVF}},
					nic: {"generic": {"deviceID": nic}, "uio": {"mount": uioNIC}}},
			}}
			for _, c := range cases {
				r, err := e.kubelet.Allocate(context.Background(), c.res, c.ids...)
				if err != nil {
					t.Fatal(err)
				}
				if got := infoOf(t, r, c.env); !reflect.DeepEqual(got, c.info) {
					t.Errorf("%s_INFO = %v, want %v", c.env, got, c.info)
				}
				want := map[string]string{}
				for cp, hp := range c.nodes {
					want[cp] = filepath.Join(n.Root, hp)
					if !fileExists(want[cp]) {
						t.Fatalf("fake node has no %s", hp)
					}
				}
				got := specs(r)
				if cdi {
					if len(r.Devices) != 0 || len(r.CdiDevices) != len(c.ids) {
						t.Errorf("%s: CDI devices %v, device specs %v", c.res, r.CdiDevices, r.Devices)
					}
					got = cdiNodes(t, filepath.Join(e.m.opts.CDIDir, "sluice-"+fileName(c.res)+".json"), c.ids)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s device nodes = %v, want %v", c.res, got, want)
				}
			}
		})
	}
}

// cdiNodes are the device nodes of the given devices in a CDI spec file,
// container path to host path.
func cdiNodes(t *testing.T, path string, ids []string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec cdispec.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, d := range spec.Devices {
		if !slices.Contains(ids, d.Name) {
			continue
		}
		for _, node := range d.ContainerEdits.DeviceNodes {
			m[node.Path] = node.HostPath
		}
	}
	return m
}

// A shared RDMA pool shares the RDMA device of a NIC without SR-IOV as
// that of a PF.
func TestSharedPoolSharesNICsWithoutSRIOV(t *testing.T) {
	n := wholeNICNode(t)
	e := newEnv(t, n, native(pool("hca", map[string]any{"rdmaHcaMax": 2, "selectors": map[string]any{"devices": []string{"101d"}}})))
	rdma := n.RDMADevice(cxWhole)
	s := e.kubelet.Wait("sluice.dev/hca", wait, "two shares of the ConnectX-6's RDMA device", allHealthy(2))
	if got, want := s.IDs(), []string{rdma + "-0", rdma + "-1"}; !slices.Equal(got, want) {
		t.Errorf("hca = %v, want %v", got, want)
	}
	r, err := e.kubelet.Allocate(context.Background(), "sluice.dev/hca", rdma+"-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := specs(r); got["/dev/infiniband/rdma_cm"] == "" {
		t.Errorf("device specs = %v, want the RDMA char devices", got)
	}
}

// A k8s-rdma-shared-dev-plugin config (whole-set sharing) finds the RDMA
// device of a NIC without SR-IOV, selected by its netdev.
func TestRSDPPoolSharesNICsWithoutSRIOV(t *testing.T) {
	n := wholeNICNode(t)
	e := newEnv(t, n, map[string]any{"configList": []any{map[string]any{
		"resourceName": "hca", "rdmaHcaMax": 3, "selectors": map[string]any{"ifNames": []string{"ens5f0"}}}}},
		func(o *Options) { o.ResourcePrefix = "rdma" })
	e.kubelet.Wait("rdma/hca", wait, "3 units", allHealthy(3))
	r, err := e.kubelet.Allocate(context.Background(), "rdma/hca", "0")
	if err != nil {
		t.Fatal(err)
	}
	got := specs(r)
	var uverbs int
	for c := range got {
		if len(c) > len("/dev/infiniband/uverbs") && c[:len("/dev/infiniband/uverbs")] == "/dev/infiniband/uverbs" {
			uverbs++
		}
	}
	if got["/dev/infiniband/rdma_cm"] == "" || uverbs != 1 {
		t.Errorf("device specs = %v, want rdma_cm and the ConnectX-6's uverbs", got)
	}
}
