package migrate

import "testing"

// rsdpConfigMap wraps a k8s-rdma-shared-dev-plugin config.json in its
// ConfigMap, as the plugin's deployment names it.
func rsdpConfigMap(config string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rdma-devices, namespace: kube-system}\ndata:\n  config.json: '" + config + "'\n"
}

// TestConvertRSDPConfigMap: each resource of a k8s-rdma-shared-dev-plugin
// ConfigMap, its documented fields as its README writes them, becomes a
// NetworkNodePolicy with sharedRdma, with a report line per field; what
// the plugin would refuse, or what a policy cannot hold, names the field.
func TestConvertRSDPConfigMap(t *testing.T) {
	const at = "data.config.json: configList["
	runCases(t, []fieldCase{
		{
			name: "README example: selectors, and the older devices",
			in: rsdpConfigMap(`{"periodicUpdateInterval": 300, "configList": [
  {"resourceName": "hca_shared_devices_a", "rdmaHcaMax": 1000, "selectors": {"vendors": ["15b3"], "deviceIDs": ["1017"], "drivers": ["mlx5_core"], "ifNames": ["ens2f0"], "linkTypes": ["infiniband"]}},
  {"resourceName": "hca_shared_devices_b", "rdmaHcaMax": 500, "devices": ["ib0", "ib1"]}]}`),
			want: withFields(at, map[string]Status{
				"hca_shared_devices_a]": Changed, "hca_shared_devices_a].resourceName": Mapped, "hca_shared_devices_a].rdmaHcaMax": Mapped,
				"hca_shared_devices_a].selectors.vendors": Mapped, "hca_shared_devices_a].selectors.deviceIDs": Mapped,
				"hca_shared_devices_a].selectors.drivers": Mapped, "hca_shared_devices_a].selectors.ifNames": Mapped,
				"hca_shared_devices_a].selectors.linkTypes": Mapped,
				"hca_shared_devices_b]":                     Changed, "hca_shared_devices_b].resourceName": Mapped, "hca_shared_devices_b].rdmaHcaMax": Mapped,
				"hca_shared_devices_b].devices": Changed,
			}, map[string]Status{"data.config.json: periodicUpdateInterval": Changed}),
			detail: map[string]string{
				at + "hca_shared_devices_a]":            "pods request sluice.dev/hca_shared_devices_a instead of rdma/hca_shared_devices_a",
				at + "hca_shared_devices_b]":            "add those nodes' labels as spec.nodeSelector",
				at + "hca_shared_devices_b].devices":    "sharedRdma.ifNames",
				at + "hca_shared_devices_a].rdmaHcaMax": "1000 units",
			},
			wantSpecs: []namedSpec{
				{"hca-shared-devices-a", `{resourceName: hca_shared_devices_a, numVfs: 0, nicSelector: {},
  sharedRdma: {maxPods: 1000, vendors: ["15b3"], deviceIDs: ["1017"], drivers: [mlx5_core], ifNames: [ens2f0], linkTypes: [ib]}}`},
				{"hca-shared-devices-b", `{resourceName: hca_shared_devices_b, numVfs: 0, nicSelector: {}, sharedRdma: {maxPods: 500, ifNames: [ib0, ib1]}}`},
			},
		},
		{
			name: "resourcePrefix becomes the operator's flag",
			in:   rsdpConfigMap(`{"configList": [{"resourceName": "hca", "resourcePrefix": "nvidia.com", "rdmaHcaMax": 8, "selectors": {"vendors": ["15b3"]}}]}`),
			want: fieldsOf(at+"hca]", map[string]Status{
				"": Changed, ".resourceName": Mapped, ".resourcePrefix": Changed, ".rdmaHcaMax": Mapped, ".selectors.vendors": Mapped,
			}),
			detail: map[string]string{
				at + "hca].resourcePrefix": "--resource-prefix nvidia.com",
				at + "hca]":                "instead of nvidia.com/hca",
			},
			wantSpecs: []namedSpec{{"hca", `{resourceName: hca, numVfs: 0, nicSelector: {}, sharedRdma: {maxPods: 8, vendors: ["15b3"]}}`}},
		},
		{
			name: "rdmaHcaMax 0 advertises nothing: no policy",
			in:   rsdpConfigMap(`{"configList": [{"resourceName": "none", "rdmaHcaMax": 0, "selectors": {"ifNames": ["ib0"]}}, {"resourceName": "some", "rdmaHcaMax": 2, "selectors": {"ifNames": ["ib1"]}}]}`),
			want: fieldsOf(at, map[string]Status{
				"none]": Unsupported, "none].resourceName": Mapped, "none].rdmaHcaMax": Unsupported, "none].selectors.ifNames": Mapped,
				"some]": Changed, "some].resourceName": Mapped, "some].rdmaHcaMax": Mapped, "some].selectors.ifNames": Mapped,
			}),
			detail: map[string]string{
				at + "none]":            "no NetworkNodePolicy written",
				at + "none].rdmaHcaMax": "maxPods takes 1 to 10000",
			},
			wantSpecs: []namedSpec{{"some", `{resourceName: some, numVfs: 0, nicSelector: {}, sharedRdma: {maxPods: 2, ifNames: [ib1]}}`}},
		},
		{
			name:    "negative rdmaHcaMax: refused, as the plugin refuses it",
			in:      rsdpConfigMap(`{"configList": [{"resourceName": "a", "rdmaHcaMax": -1, "selectors": {"ifNames": ["ib0"]}}]}`),
			wantErr: "data.config.json",
			want:    map[string]Status{"data.config.json": Unsupported},
			detail:  map[string]string{"data.config.json": "configList[0].rdmaHcaMax -1"},
		},
		{
			name:    "no selector: refused, as the plugin refuses it",
			in:      rsdpConfigMap(`{"configList": [{"resourceName": "a", "rdmaHcaMax": 1}]}`),
			wantErr: at + "a].selectors",
			want:    map[string]Status{at + "a].selectors": Unsupported},
			detail:  map[string]string{at + "a].selectors": "set at least one of vendors, deviceIDs, drivers, ifNames or linkTypes"},
		},
		{
			name:    "two resources making one policy name",
			in:      rsdpConfigMap(`{"configList": [{"resourceName": "hca_a", "rdmaHcaMax": 1, "selectors": {"ifNames": ["ib0"]}}, {"resourceName": "HCA-a", "rdmaHcaMax": 1, "selectors": {"ifNames": ["ib1"]}}]}`),
			wantErr: "metadata.name",
			want: withFields(at, map[string]Status{
				"hca_a]": Changed, "hca_a].resourceName": Mapped, "hca_a].rdmaHcaMax": Mapped, "hca_a].selectors.ifNames": Mapped,
				"HCA-a]": Changed, "HCA-a].resourceName": Mapped, "HCA-a].rdmaHcaMax": Mapped, "HCA-a].selectors.ifNames": Mapped,
			}, map[string]Status{"metadata.name": Unsupported}),
			detail:    map[string]string{"metadata.name": "rename one of them"},
			wantSpecs: []namedSpec{{"hca-a", `{resourceName: hca_a, numVfs: 0, nicSelector: {}, sharedRdma: {maxPods: 1, ifNames: [ib0]}}`}},
		},
	}, Options{}, false)
}

// withFields is fieldsOf(prefix, m) with the fields of rest added as they are.
func withFields(prefix string, m, rest map[string]Status) map[string]Status {
	out := fieldsOf(prefix, m)
	for k, v := range rest {
		out[k] = v
	}
	return out
}
