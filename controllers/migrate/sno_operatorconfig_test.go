package migrate

import "testing"

// TestConvertOperatorConfig: every field of SriovOperatorConfig's spec
// (SNO v1.6 api/v1) becomes an operator flag or an unsupported entry.
func TestConvertOperatorConfig(t *testing.T) {
	const head = "apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovOperatorConfig\nmetadata: {name: default, namespace: sriov-network-operator}\n"
	runCases(t, []fieldCase{
		{
			name: "every field",
			in: head + `spec:
  configDaemonNodeSelector: {node-role.kubernetes.io/worker: ""}
  enableInjector: true
  enableOperatorWebhook: true
  logLevel: 2
  disableDrain: true
  enableOvsOffload: true
  configurationMode: systemd
  useCDI: true
  disablePlugins: [mellanox]
  featureGates: {parallelNicConfig: true}
  configDaemonEnvVars: {HTTP_PROXY: x}
`,
			want: map[string]Status{
				"spec.configDaemonNodeSelector": Changed, "spec.enableInjector": Unsupported, "spec.enableOperatorWebhook": Changed,
				"spec.logLevel": Changed, "spec.disableDrain": Unsupported, "spec.enableOvsOffload": Unsupported,
				"spec.configurationMode": Unsupported, "spec.useCDI": Changed, "spec.disablePlugins": Unsupported,
				"spec.featureGates": Unsupported, "spec.configDaemonEnvVars": Unsupported,
			},
			detail: map[string]string{
				"spec.configDaemonNodeSelector": "--node-selector=node-role.kubernetes.io/worker=",
				"spec.useCDI":                   "--node-cdi",
				"spec.logLevel":                 "--log-level=2",
				"spec.featureGates":             "parallelNicConfig",
			},
		},
		{
			name: "SNO's defaults",
			in:   head + "spec: {enableInjector: false, enableOperatorWebhook: false, disableDrain: false, configurationMode: daemon}\n",
			want: map[string]Status{"spec.enableInjector": Mapped, "spec.enableOperatorWebhook": Mapped, "spec.disableDrain": Mapped, "spec.configurationMode": Mapped},
		},
	}, Options{}, false)
}
