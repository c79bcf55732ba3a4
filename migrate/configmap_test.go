package migrate

import "testing"

// TestCheckDevicePluginConfigMap: the ConfigMaps of
// sriov-network-device-plugin and k8s-rdma-shared-dev-plugin, as their
// READMEs write them, are served by sluice's device plugin unchanged; one
// sluice refuses names the field.
func TestCheckDevicePluginConfigMap(t *testing.T) {
	runCases(t, []fieldCase{
		{
			name: "sriov-network-device-plugin",
			in: `apiVersion: v1
kind: ConfigMap
metadata: {name: sriovdp-config, namespace: kube-system}
data:
  config.json: |
    {"resourceList": [
      {"resourceName": "intel_sriov_netdevice", "selectors": {"vendors": ["8086"], "devices": ["154c", "10ed"], "drivers": ["iavf", "i40evf", "ixgbevf"]}},
      {"resourceName": "intel_sriov_dpdk", "resourcePrefix": "example.com", "selectors": {"vendors": ["8086"], "devices": ["154c"], "drivers": ["vfio-pci"], "pfNames": ["enp0s0f0", "enp2s2f1"]}},
      {"resourceName": "mlnx_sriov_rdma", "selectors": {"vendors": ["15b3"], "devices": ["1018"], "drivers": ["mlx5_core"], "isRdma": true}}
    ]}
`,
			want:   map[string]Status{"data.config.json: resourceList[intel_sriov_netdevice]": Mapped, "data.config.json: resourceList[intel_sriov_dpdk]": Mapped, "data.config.json: resourceList[mlnx_sriov_rdma]": Mapped},
			detail: map[string]string{"data.config.json: resourceList[intel_sriov_dpdk]": "example.com/intel_sriov_dpdk", "data.config.json: resourceList[mlnx_sriov_rdma]": "intel.com/mlnx_sriov_rdma"},
		},
		{
			name: "k8s-rdma-shared-dev-plugin",
			in: `apiVersion: v1
kind: ConfigMap
metadata: {name: rdma-devices, namespace: kube-system}
data:
  config.json: |
    {"periodicUpdateInterval": 300, "configList": [
      {"resourceName": "hca_shared_devices_a", "rdmaHcaMax": 1000, "selectors": {"vendors": ["15b3"], "deviceIDs": ["1017"], "ifNames": ["ens2f0"]}},
      {"resourceName": "hca_shared_devices_b", "rdmaHcaMax": 500, "devices": ["ib0", "ib1"]}
    ]}
`,
			want:   map[string]Status{"data.config.json: configList[hca_shared_devices_a]": Changed, "data.config.json: configList[hca_shared_devices_b]": Changed, "data.config.json: periodicUpdateInterval": Changed},
			detail: map[string]string{"data.config.json: configList[hca_shared_devices_a]": "rdma/hca_shared_devices_a"},
		},
		{
			name:    "a selector sluice refuses",
			in:      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  config.json: '{\"resourceList\": [{\"resourceName\": \"v\", \"selectors\": {\"vdpaType\": \"virtio\"}}]}'\n",
			wantErr: "data.config.json",
			want:    map[string]Status{"data.config.json": Unsupported},
			detail:  map[string]string{"data.config.json": "vdpaType"},
		},
		{
			name: "another ConfigMap",
			in:   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
			want: map[string]Status{"data": Unsupported},
		},
	}, Options{}, false)
}
