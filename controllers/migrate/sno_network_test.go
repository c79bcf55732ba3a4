package migrate

import "testing"

// TestConvertNetwork: every field of SriovNetwork's spec (SNO v1.6 api/v1).
func TestConvertNetwork(t *testing.T) {
	const head = "apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetwork\nmetadata: {name: net1, namespace: sriov-network-operator}\n"
	base := map[string]Status{"metadata.namespace": Changed, "metadata.name": Changed, "spec.resourceName": Changed}
	with := func(extra map[string]Status) map[string]Status {
		out := map[string]Status{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	cases := []fieldCase{
		{
			name: "every field",
			in: head + `spec:
  networkNamespace: tenant-a
  resourceName: intelnics
  capabilities: '{"mac": true, "ips": true}'
  ipam: |
    {"type": "host-local", "subnet": "10.56.217.0/24"}
  vlan: 100
  vlanQoS: 3
  vlanProto: 802.1AD
  spoofChk: "off"
  trust: "on"
  linkState: enable
  minTxRate: 100
  maxTxRate: 1000
  metaPlugins: |
    {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.accept_redirects": "1"}},
    {"type": "bandwidth", "capabilities": {"bandwidth": true}}
  logLevel: debug
  logFile: /var/log/sriov.log
`,
			want: with(map[string]Status{
				"spec.networkNamespace": Mapped, "spec.capabilities": Mapped, "spec.ipam": Mapped, "spec.vlan": Mapped,
				"spec.vlanQoS": Mapped, "spec.vlanProto": Mapped, "spec.spoofChk": Mapped, "spec.trust": Mapped,
				"spec.linkState": Mapped, "spec.minTxRate": Mapped, "spec.maxTxRate": Mapped, "spec.metaPlugins": Mapped,
				"spec.logLevel": Mapped, "spec.logFile": Mapped,
			}),
			detail: map[string]string{
				"spec.capabilities": `"mac": true is for platform VFNetworks only`,
				"metadata.name":     "NetworkAttachmentDefinition tenant-a/net1",
				"spec.resourceName": "sluice.dev/intelnics (was openshift.io/intelnics)",
				"spec.metaPlugins":  "chained after sluice-cni",
				// The operator must run in sluice-system: elsewhere the
				// VFNetwork is a tenant's and refused for these.
				"metadata.namespace": "sluice-system must be the namespace the operator runs in (its --namespace), else the VFNetwork is a tenant's and is refused for spec.networkNamespace, spec.trust, spec.spoofChk, spec.vlan, spec.vlanQoS, spec.vlanProto, spec.minTxRate, spec.capabilities, spec.metaPlugins, spec.logFile",
			},
			wantSpec: `
networkNamespace: tenant-a
resourceName: intelnics
capabilities: '{"ips":true,"mac":true}'
ipam: '{"subnet":"10.56.217.0/24","type":"host-local"}'
vlan: 100
vlanQoS: 3
vlanProto: 802.1AD
spoofChk: "off"
trust: "on"
linkState: enable
minTxRate: 100
maxTxRate: 1000
metaPlugins: |-
  {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.accept_redirects": "1"}},
  {"type": "bandwidth", "capabilities": {"bandwidth": true}}
logLevel: debug
logFile: /var/log/sriov.log
`,
		},
		{
			name:     "absent networkNamespace keeps the NAD in SNO's namespace",
			in:       head + "spec: {resourceName: intelnics, vlan: 5, vlanProto: 802.1q, logLevel: info, capabilities: '{}'}\n",
			want:     with(map[string]Status{"spec.networkNamespace": Changed, "spec.vlan": Mapped, "spec.vlanProto": Mapped, "spec.logLevel": Mapped, "spec.capabilities": Mapped}),
			detail:   map[string]string{"spec.networkNamespace": "sriov-network-operator", "spec.logLevel": "SNO's default"},
			wantSpec: "{resourceName: intelnics, networkNamespace: sriov-network-operator, vlan: 5, vlanProto: 802.1q, logLevel: info}",
		},
		{
			name:     "QoS and 802.1ad without a VLAN tag nothing; an absent logLevel is SNO's info",
			in:       head + "spec: {resourceName: intelnics, networkNamespace: a, vlanQoS: 2, vlanProto: 802.1ad, ipam: '{}'}\n",
			want:     with(map[string]Status{"spec.networkNamespace": Mapped, "spec.vlanQoS": Changed, "spec.vlanProto": Changed, "spec.ipam": Changed, "spec.logLevel": Changed}),
			detail:   map[string]string{"spec.logLevel": "absent: SNO's CRD defaults it to info"},
			wantSpec: "{resourceName: intelnics, networkNamespace: a, logLevel: info}",
		},
		{
			name: "capabilities sluice-cni does not declare; logging SNO's CRD would not take",
			in: head + `spec:
  resourceName: intelnics
  networkNamespace: a
  capabilities: '{"mac": true, "infinibandGUID": true, "bandwidth": false}'
  logLevel: Warning
  logFile: sriov.log
`,
			want: with(map[string]Status{
				"spec.networkNamespace": Mapped, "spec.capabilities": Changed, "spec.capabilities.infinibandGUID": Changed,
				"spec.logLevel": Changed, "spec.logFile": Unsupported,
			}),
			detail: map[string]string{
				"spec.capabilities":                `written {"mac":true}: bandwidth, infinibandGUID left out`,
				"spec.capabilities.infinibandGUID": "does nothing with it",
				"spec.logLevel":                    "written warning",
				"spec.logFile":                     "relative",
				"metadata.namespace":               "refused for spec.networkNamespace, spec.capabilities",
			},
			wantSpec: `{resourceName: intelnics, networkNamespace: a, capabilities: '{"mac":true}', logLevel: warning}`,
		},
		{
			name: "ips without ipam, metaPlugins as a list, an unknown logLevel",
			in: head + `spec:
  resourceName: intelnics
  networkNamespace: a
  capabilities: '{"ips": true, "mac": false}'
  metaPlugins: '[{"type": "tuning", "mtu": 1400}]'
  logLevel: verbose
`,
			want: with(map[string]Status{"spec.networkNamespace": Mapped, "spec.capabilities": Changed, "spec.metaPlugins": Mapped, "spec.logLevel": Changed}),
			detail: map[string]string{
				"spec.capabilities": "sluice-cni refuses its attachment",
				"spec.logLevel":     "sriov-cni logged at info",
			},
			wantSpec: `{resourceName: intelnics, networkNamespace: a, capabilities: '{"ips":true,"mac":false}', metaPlugins: '[{"type": "tuning", "mtu": 1400}]', logLevel: info}`,
		},
		{
			name:     "only capabilities sluice-cni does not declare",
			in:       head + "spec: {resourceName: intelnics, logLevel: error, capabilities: '{\"portMappings\": true}'}\n",
			want:     with(map[string]Status{"spec.networkNamespace": Changed, "spec.capabilities": Changed, "spec.capabilities.portMappings": Changed, "spec.logLevel": Mapped}),
			detail:   map[string]string{"spec.capabilities": "neither mac nor ips", "spec.capabilities.portMappings": `declare "portMappings" in that plugin's`},
			wantSpec: "{resourceName: intelnics, networkNamespace: sriov-network-operator, logLevel: error}",
		},
		{
			name:    "capabilities that are not switches",
			in:      head + "spec: {resourceName: x, networkNamespace: a, capabilities: 'mac'}\n",
			wantErr: "spec.capabilities",
			want:    with(map[string]Status{"spec.networkNamespace": Mapped, "spec.capabilities": Unsupported}),
			detail:  map[string]string{"spec.capabilities": `write it as '{"mac": true, "ips": true}'`},
		},
		{
			name:    "a meta plugin without a type",
			in:      head + "spec: {resourceName: x, networkNamespace: a, metaPlugins: '{\"type\": \"tuning\"}, {\"sysctl\": {}}'}\n",
			wantErr: "spec.metaPlugins",
			want:    with(map[string]Status{"spec.networkNamespace": Mapped, "spec.metaPlugins": Unsupported}),
			detail:  map[string]string{"spec.metaPlugins": `spec.metaPlugins[1] has no "type"`},
		},
		{
			name:    "a pool name a VFNetwork cannot hold",
			in:      head + "spec: {resourceName: mlx_RDMA}\n",
			wantErr: "spec.resourceName",
			want:    map[string]Status{"metadata.namespace": Changed, "spec.resourceName": Unsupported},
			detail:  map[string]string{"spec.resourceName": "--rewrite-nads"},
		},
		{
			name:    "ipam without a type",
			in:      head + "spec: {resourceName: x, networkNamespace: a, ipam: '{\"subnet\": \"10.0.0.0/8\"}'}\n",
			wantErr: "spec.ipam",
			want:    with(map[string]Status{"spec.networkNamespace": Mapped, "spec.ipam": Unsupported}),
		},
		{
			name:    "minTxRate above maxTxRate",
			in:      head + "spec: {resourceName: x, networkNamespace: a, minTxRate: 10, maxTxRate: 5}\n",
			wantErr: "spec.minTxRate",
			want:    with(map[string]Status{"spec.networkNamespace": Mapped, "spec.minTxRate": Unsupported, "spec.maxTxRate": Mapped}),
		},
	}
	runCases(t, cases, Options{}, false)
}

// TestConvertIBNetwork: every field of SriovIBNetwork's spec.
func TestConvertIBNetwork(t *testing.T) {
	runCases(t, []fieldCase{{
		name: "every field",
		in: `apiVersion: sriovnetwork.openshift.io/v1
kind: SriovIBNetwork
metadata: {name: ib1, namespace: sriov-network-operator}
spec:
  networkNamespace: hpc
  resourceName: mellanoxibs
  capabilities: '{"infinibandGUID": true, "ips": true}'
  ipam: '{"type": "whereabouts", "range": "192.168.5.0/24"}'
  linkState: auto
  metaPlugins: '{"type": "rdma"}'
  vlan: 4
`,
		want: map[string]Status{
			"metadata.namespace": Changed, "metadata.name": Changed, "kind": Changed, "spec.resourceName": Changed,
			"spec.networkNamespace": Mapped, "spec.capabilities": Changed, "spec.capabilities.infinibandGUID": Unsupported,
			"spec.ipam": Mapped, "spec.linkState": Mapped, "spec.metaPlugins": Mapped, "spec.vlan": Unsupported,
		},
		detail: map[string]string{
			"kind": "no InfiniBand GUID", "spec.capabilities": `written {"ips":true}: infinibandGUID left out`,
			"spec.capabilities.infinibandGUID": "assigns no InfiniBand GUID", "spec.vlan": "not a field of SriovIBNetwork",
			"metadata.namespace": "refused for spec.networkNamespace, spec.metaPlugins",
		},
		wantSpec: `{networkNamespace: hpc, resourceName: mellanoxibs, capabilities: '{"ips":true}', ipam: '{"range":"192.168.5.0/24","type":"whereabouts"}', linkState: auto, metaPlugins: '{"type": "rdma"}'}`,
	}}, Options{}, false)
}

// TestConvertNetworkNameClash: an SriovNetwork and an SriovIBNetwork of one
// name would make one VFNetwork: the second is refused.
func TestConvertNetworkNameClash(t *testing.T) {
	in := `apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetwork
metadata: {name: nw}
spec: {resourceName: a, networkNamespace: x}
---
apiVersion: sriovnetwork.openshift.io/v1
kind: SriovIBNetwork
metadata: {name: nw}
spec: {resourceName: b, networkNamespace: y}
`
	objs, err := DecodeBytes([]byte(in), "t")
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(objs, Options{}, false)
	if len(res.Objects) != 1 || len(res.Errors) != 1 {
		t.Fatalf("objects %d errors %v, want 1 and 1", len(res.Objects), res.Errors)
	}
}
