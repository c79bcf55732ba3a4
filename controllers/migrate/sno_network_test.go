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
  metaPlugins: '{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.accept_redirects": "1"}}'
  logLevel: debug
  logFile: /var/log/sriov.log
`,
			want: with(map[string]Status{
				"spec.networkNamespace": Mapped, "spec.capabilities": Unsupported, "spec.ipam": Mapped, "spec.vlan": Mapped,
				"spec.vlanQoS": Mapped, "spec.vlanProto": Changed, "spec.spoofChk": Mapped, "spec.trust": Mapped,
				"spec.linkState": Mapped, "spec.minTxRate": Mapped, "spec.maxTxRate": Mapped, "spec.metaPlugins": Unsupported,
				"spec.logLevel": Unsupported, "spec.logFile": Unsupported,
			}),
			detail: map[string]string{
				"spec.capabilities":  "ips, mac",
				"metadata.name":      "NetworkAttachmentDefinition tenant-a/net1",
				"spec.resourceName":  "sluice.dev/intelnics (was openshift.io/intelnics)",
				"spec.metaPlugins":   "no plugins chained",
				"metadata.namespace": "sluice-system",
			},
			wantSpec: `
networkNamespace: tenant-a
resourceName: intelnics
ipam: '{"subnet":"10.56.217.0/24","type":"host-local"}'
vlan: 100
vlanQoS: 3
vlanProto: 802.1ad
spoofChk: "off"
trust: "on"
linkState: enable
minTxRate: 100
maxTxRate: 1000
`,
		},
		{
			name:     "absent networkNamespace keeps the NAD in SNO's namespace",
			in:       head + "spec: {resourceName: intelnics, vlan: 5, vlanProto: 802.1q, logLevel: info, capabilities: '{}'}\n",
			want:     with(map[string]Status{"spec.networkNamespace": Changed, "spec.vlan": Mapped, "spec.vlanProto": Changed, "spec.logLevel": Changed, "spec.capabilities": Mapped}),
			detail:   map[string]string{"spec.networkNamespace": "sriov-network-operator"},
			wantSpec: "{resourceName: intelnics, networkNamespace: sriov-network-operator, vlan: 5, vlanProto: 802.1Q}",
		},
		{
			name:     "QoS and 802.1ad without a VLAN tag nothing",
			in:       head + "spec: {resourceName: intelnics, networkNamespace: a, vlanQoS: 2, vlanProto: 802.1ad, ipam: '{}'}\n",
			want:     with(map[string]Status{"spec.networkNamespace": Mapped, "spec.vlanQoS": Changed, "spec.vlanProto": Changed, "spec.ipam": Changed}),
			wantSpec: "{resourceName: intelnics, networkNamespace: a}",
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
  capabilities: '{"infinibandGUID": true}'
  ipam: '{"type": "whereabouts", "range": "192.168.5.0/24"}'
  linkState: auto
  metaPlugins: '{"type": "rdma"}'
  vlan: 4
`,
		want: map[string]Status{
			"metadata.namespace": Changed, "metadata.name": Changed, "kind": Changed, "spec.resourceName": Changed,
			"spec.networkNamespace": Mapped, "spec.capabilities": Unsupported, "spec.ipam": Mapped, "spec.linkState": Mapped,
			"spec.metaPlugins": Unsupported, "spec.vlan": Unsupported,
		},
		detail:   map[string]string{"kind": "no InfiniBand GUID", "spec.capabilities": "infinibandGUID", "spec.vlan": "not a field of SriovIBNetwork"},
		wantSpec: `{networkNamespace: hpc, resourceName: mellanoxibs, ipam: '{"range":"192.168.5.0/24","type":"whereabouts"}', linkState: auto}`,
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
