package migrate

import "testing"

// TestCheckDevicePluginConfigMap: the ConfigMaps of
// sriov-network-device-plugin, as its README writes them, are served by
// sluice's device plugin unchanged; one sluice refuses names the field.
// (k8s-rdma-shared-dev-plugin's: TestConvertRSDPConfigMap.)
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
      {"resourceName": "intel_sriov_dpdk", "resourcePrefix": "example.com", "selectors": {"vendors": ["8086"], "devices": ["154c"], "drivers": ["vfio-pci", "igb_uio"], "pfNames": ["enp0s0f0", "enp2s2f1"]}},
      {"resourceName": "mlnx_sriov_rdma", "selectors": {"vendors": ["15b3"], "devices": ["1018"], "drivers": ["mlx5_core"], "isRdma": true}}
    ]}
`,
			want: fieldsOf("data.config.json: resourceList[", map[string]Status{
				"intel_sriov_netdevice]": Mapped, "intel_sriov_netdevice].resourceName": Mapped, "intel_sriov_netdevice].selectors.vendors": Mapped,
				"intel_sriov_netdevice].selectors.devices": Mapped, "intel_sriov_netdevice].selectors.drivers": Mapped,
				"intel_sriov_dpdk]": Mapped, "intel_sriov_dpdk].resourceName": Mapped, "intel_sriov_dpdk].resourcePrefix": Mapped,
				"intel_sriov_dpdk].selectors.vendors": Mapped, "intel_sriov_dpdk].selectors.devices": Mapped,
				"intel_sriov_dpdk].selectors.drivers": Mapped, "intel_sriov_dpdk].selectors.pfNames": Mapped,
				"mlnx_sriov_rdma]": Mapped, "mlnx_sriov_rdma].resourceName": Mapped, "mlnx_sriov_rdma].selectors.vendors": Mapped,
				"mlnx_sriov_rdma].selectors.devices": Mapped, "mlnx_sriov_rdma].selectors.drivers": Mapped, "mlnx_sriov_rdma].selectors.isRdma": Mapped,
			}),
			detail: map[string]string{"data.config.json: resourceList[intel_sriov_dpdk]": "example.com/intel_sriov_dpdk", "data.config.json: resourceList[mlnx_sriov_rdma]": "intel.com/mlnx_sriov_rdma"},
		},
		{
			name: "what differs: uio drivers, an empty additionalInfo, a list of selectors",
			in: `apiVersion: v1
kind: ConfigMap
metadata: {name: sriovdp-config, namespace: kube-system}
data:
  config.json: |
    {"resourceList": [{"resourceName": "dpdk", "deviceType": "netDevice", "excludeTopology": true, "additionalInfo": {},
      "selectors": [{"drivers": ["uio_pci_generic", "vfio-pci"], "ddpProfiles": []}, {"rootDevices": ["0000:3b:00.0"], "linkTypes": ["ether"], "needVhostNet": true}]}]}
`,
			want: fieldsOf("data.config.json: resourceList[dpdk]", map[string]Status{
				"": Mapped, ".resourceName": Mapped, ".deviceType": Mapped, ".excludeTopology": Mapped, ".additionalInfo": Changed,
				".selectors[0].drivers": Changed, ".selectors[0].ddpProfiles": Mapped, ".selectors[1].rootDevices": Mapped,
				".selectors[1].linkTypes": Mapped, ".selectors[1].needVhostNet": Mapped,
			}),
			detail: map[string]string{"data.config.json: resourceList[dpdk].selectors[0].drivers": "uio_pci_generic: matched, and sluice hands such devices /dev/uioN"},
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

// fieldsOf prefixes every key of m.
func fieldsOf(prefix string, m map[string]Status) map[string]Status {
	out := make(map[string]Status, len(m))
	for k, v := range m {
		out[prefix+k] = v
	}
	return out
}
