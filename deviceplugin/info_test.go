package deviceplugin

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-net/sluice/host/hosttest"
)

// The INFO variable and its name, for each kind of device, against the
// shape sriov-network-device-plugin gives them. Read from its sources
// (github.com/k8snetworkplumbingwg/sriov-network-device-plugin, commit
// 40b6f507e74ccc7b04c64cfe8823522e9d2f8b2e):
//   - pkg/resources/pool_stub.go GetEnvs: the variable is
//     PCIDEVICE_<prefix>_<name>, upper-cased, '.' replaced by '_' and
//     nothing else; its _INFO twin is {"<device ID>": GetEnvVal()};
//   - pkg/devices/api.go GetEnvVal: one map per info provider, keyed by
//     the provider's GetName();
//   - pkg/factory/factory.go GetDefaultInfoProvider and
//     pkg/netdevice/pciNetDevice.go: "generic" always, "vfio" for vfio-pci,
//     "extra" when additionalInfo is set, "rdma" for isRdma, "vhost" for
//     needVhostNet;
//   - pkg/infoprovider/genericInfoProvider.go: {"deviceID"};
//     vfioInfoProvider.go: {"mount": "/dev/vfio/vfio", "dev-mount":
//     "/dev/vfio/<group>"}; rdmaInfoProvider.go: "uverbs", "umad", "issm",
//     "rdma_cm" (container paths) and "rdma_dev"; vhostNetInfoProvider.go:
//     {"net-mount", "tun-mount"}; extraInfoProvider.go: additionalInfo "*"
//     then the device's own keys. (Its README shows "extraInfo"; the code
//     names the provider "extra", and the code is what pods see.)
func TestInfoMatchesSRIOVDP(t *testing.T) {
	type setup struct {
		node   *hosttest.Node
		config any
		prefix string
		res    string
		vf     string
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) setup
		env   string
		info  string // <vf>, <group>, <rdma>, <k> replaced
	}{{
		name: "netdevice",
		setup: func(t *testing.T) setup {
			n := twoNICNode(t, 2)
			return setup{n, native(pool("intel-a", map[string]any{"deviceType": "netdevice", "selectors": map[string]any{"rootDevices": []string{e810}}})), "", "sluice.dev/intel-a", n.VFAddress(e810, 1)}
		},
		env:  "PCIDEVICE_SLUICE_DEV_INTEL-A",
		info: `{"<vf>":{"generic":{"deviceID":"<vf>"}}}`,
	}, {
		name: "vfio-pci",
		setup: func(t *testing.T) setup {
			n := twoNICNode(t, 2)
			n.AddDriver("vfio-pci")
			for i := range 2 {
				if err := n.Host().BindDriver(context.Background(), n.VFAddress(e810, i), "vfio-pci"); err != nil {
					t.Fatal(err)
				}
			}
			return setup{n, native(pool("dpdk", map[string]any{"deviceType": "vfio-pci", "selectors": map[string]any{"pfNames": []string{"ens2f0"}, "drivers": []string{"vfio-pci"}}})), "", "sluice.dev/dpdk", n.VFAddress(e810, 1)}
		},
		env:  "PCIDEVICE_SLUICE_DEV_DPDK",
		info: `{"<vf>":{"generic":{"deviceID":"<vf>"},"vfio":{"mount":"/dev/vfio/vfio","dev-mount":"/dev/vfio/<group>"}}}`,
	}, {
		name: "rdma-ib",
		setup: func(t *testing.T) setup {
			n := hosttest.New(t)
			spec := hosttest.ConnectX6(cx0, "ib0", 0)
			spec.LinkType = "ib"
			n.AddPF(spec)
			n.SetNumVFs(cx0, 2)
			return setup{n, native(pool("rdma", map[string]any{"selectors": map[string]any{"pfNames": []string{"ib0"}, "isRdma": true}})), "", "sluice.dev/rdma", n.VFAddress(cx0, 1)}
		},
		env: "PCIDEVICE_SLUICE_DEV_RDMA",
		info: `{"<vf>":{"generic":{"deviceID":"<vf>"},"rdma":{"issm":"/dev/infiniband/issm<k>","rdma_cm":"/dev/infiniband/rdma_cm",` +
			`"rdma_dev":"<rdma>","umad":"/dev/infiniband/umad<k>","uverbs":"/dev/infiniband/uverbs<k>"}}}`,
	}, {
		name: "rdma-eth",
		setup: func(t *testing.T) setup {
			n := twoNICNode(t, 2)
			return setup{n, native(pool("rdma", map[string]any{"selectors": map[string]any{"pfNames": []string{"ens1f0"}, "isRdma": true}})), "", "sluice.dev/rdma", n.VFAddress(cx0, 0)}
		},
		env:  "PCIDEVICE_SLUICE_DEV_RDMA",
		info: `{"<vf>":{"generic":{"deviceID":"<vf>"},"rdma":{"rdma_cm":"/dev/infiniband/rdma_cm","rdma_dev":"<rdma>","uverbs":"/dev/infiniband/uverbs<k>"}}}`,
	}, {
		// An unchanged sriov-network-device-plugin config, with its
		// prefix: vhost-net and additionalInfo.
		name: "sriovdp-config",
		setup: func(t *testing.T) setup {
			n := twoNICNode(t, 2)
			vf := n.VFAddress(e810, 0)
			cfg := map[string]any{"resourceList": []any{map[string]any{
				"resourceName":   "sriov_net-a",
				"selectors":      []any{map[string]any{"pfNames": []string{"ens2f0"}, "needVhostNet": true}},
				"additionalInfo": map[string]any{"*": map[string]string{"token": "all", "zone": "a"}, vf: map[string]string{"token": "mine"}},
			}}}
			return setup{n, cfg, "intel.com", "intel.com/sriov_net-a", vf}
		},
		env: "PCIDEVICE_INTEL_COM_SRIOV_NET-A",
		info: `{"<vf>":{"generic":{"deviceID":"<vf>"},"vhost":{"net-mount":"/dev/vhost-net","tun-mount":"/dev/net/tun"},` +
			`"extra":{"token":"mine","zone":"a"}}}`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.setup(t)
			var opts []envOption
			if s.prefix != "" {
				opts = append(opts, func(o *Options) { o.ResourcePrefix = s.prefix })
			}
			e := newEnv(t, s.node, s.config, opts...)
			e.kubelet.Wait(s.res, wait, "healthy VFs", allHealthy(2))
			r, err := e.kubelet.Allocate(context.Background(), s.res, s.vf)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Envs[tc.env]; got != s.vf {
				t.Errorf("%s = %q, want %q (envs %v)", tc.env, got, s.vf, r.Envs)
			}
			// The name earlier sluice versions used, which a shell can
			// expand, stays when it differs: the same values.
			if sh := strings.NewReplacer("-", "_").Replace(tc.env); sh != tc.env {
				if r.Envs[sh] != r.Envs[tc.env] || r.Envs[sh+"_INFO"] != r.Envs[tc.env+"_INFO"] || len(r.Envs) != 4 {
					t.Errorf("envs %v, want %s and %s, each with its _INFO", r.Envs, tc.env, sh)
				}
			} else if len(r.Envs) != 2 {
				t.Errorf("envs %v, want %s and its _INFO only", r.Envs, tc.env)
			}
			var k string
			for _, d := range r.Devices {
				if strings.HasPrefix(d.ContainerPath, "/dev/infiniband/uverbs") {
					k = strings.TrimPrefix(d.ContainerPath, "/dev/infiniband/uverbs")
				}
			}
			want := strings.NewReplacer("<vf>", s.vf, "<group>", filepath.Base(s.node.Host().VfioGroup(s.vf)),
				"<rdma>", s.node.RDMADevice(s.vf), "<k>", k).Replace(tc.info)
			var got, exp map[string]map[string]map[string]string
			if err := json.Unmarshal([]byte(r.Envs[tc.env+"_INFO"]), &got); err != nil {
				t.Fatalf("%s_INFO = %q: %v", tc.env, r.Envs[tc.env+"_INFO"], err)
			}
			if err := json.Unmarshal([]byte(want), &exp); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("%s_INFO =\n %s\nwant\n %s", tc.env, r.Envs[tc.env+"_INFO"], want)
			}
		})
	}
}
