package migrate

import "testing"

// TestConvertPolicy: every field of SriovNetworkNodePolicy's spec (SNO
// v1.6 api/v1), and the values sluice refuses.
func TestConvertPolicy(t *testing.T) {
	const head = "apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetworkNodePolicy\nmetadata: {name: p, namespace: sriov-network-operator}\n"
	ns := map[string]Status{"metadata.namespace": Changed}
	with := func(extra map[string]Status) map[string]Status {
		out := map[string]Status{}
		for k, v := range ns {
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
  resourceName: mlx_RDMA
  nodeSelector: {feature.node.kubernetes.io/network-sriov.capable: "true"}
  priority: 10
  mtu: 9000
  numVfs: 8
  nicSelector: {vendor: "15b3", deviceID: "101b", rootDevices: ["0000:3b:00.0"], pfNames: ["ens1f0#0-3"], netFilter: "openstack/NetworkID:abc"}
  deviceType: netdevice
  isRdma: true
  needVhostNet: true
  linkType: ETH
  eSwitchMode: legacy
  vdpaType: ""
  excludeTopology: true
  externallyManaged: true
  bridge: {}
`,
			want: with(map[string]Status{
				"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Mapped, "spec.mtu": Mapped,
				"spec.numVfs": Mapped, "spec.nicSelector.vendor": Mapped, "spec.nicSelector.deviceID": Mapped,
				"spec.nicSelector.rootDevices": Mapped, "spec.nicSelector.pfNames": Mapped, "spec.nicSelector.netFilter": Changed,
				"spec.deviceType": Mapped, "spec.isRdma": Mapped, "spec.needVhostNet": Mapped, "spec.linkType": Changed,
				"spec.eSwitchMode": Mapped, "spec.excludeTopology": Mapped, "spec.externallyManaged": Mapped, "spec.bridge": Mapped,
			}),
			detail: map[string]string{
				"spec.resourceName":          "sluice.dev/mlx_RDMA instead of openshift.io/mlx_RDMA",
				"spec.linkType":              "never switches",
				"spec.nicSelector.netFilter": "selects no PF",
			},
			wantSpec: `
resourceName: mlx_RDMA
nodeSelector: {feature.node.kubernetes.io/network-sriov.capable: "true"}
priority: 10
mtu: 9000
numVfs: 8
nicSelector: {vendor: "15b3", deviceID: "101b", rootDevices: ["0000:3b:00.0"], pfNames: ["ens1f0#0-3"], netFilter: "openstack/NetworkID:abc"}
deviceType: netdevice
isRdma: true
needVhostNet: true
linkType: ETH
excludeTopology: true
externallyManaged: true
`,
		},
		{
			name:     "minimal: absent priority is SNO's 0, written out",
			in:       head + "spec: {resourceName: intelnics, numVfs: 4, nodeSelector: {}, nicSelector: {pfNames: [ens2f0]}}\n",
			want:     with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Mapped, "spec.nicSelector.pfNames": Mapped}),
			detail:   map[string]string{"spec.priority": "priority: 0 is written out"},
			wantSpec: "{resourceName: intelnics, numVfs: 4, priority: 0, nicSelector: {pfNames: [ens2f0]}}",
		},
		{
			name:     "numVfs 0 and vfio-pci",
			in:       head + "spec: {resourceName: dpdk, numVfs: 0, priority: 99, deviceType: vfio-pci, nicSelector: {rootDevices: ['0000:af:00.1']}}\n",
			want:     with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Mapped, "spec.numVfs": Changed, "spec.nicSelector.rootDevices": Mapped, "spec.deviceType": Mapped}),
			detail:   map[string]string{"spec.numVfs": "advertised nothing, and neither does this policy", "spec.nodeSelector": "every node"},
			wantSpec: "{resourceName: dpdk, numVfs: 0, priority: 99, deviceType: vfio-pci, nicSelector: {rootDevices: ['0000:af:00.1']}}",
		},
		{
			// SNO renders a device-plugin pool of the PF's own device ID
			// for such a policy; the operator renders the same pool.
			name:     "numVfs 0 by vendor and device: the PFs served whole",
			in:       head + "spec: {resourceName: whole, numVfs: 0, priority: 10, isRdma: true, nicSelector: {vendor: '15b3', deviceID: '101d'}}\n",
			want:     with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Mapped, "spec.numVfs": Changed, "spec.nicSelector.vendor": Mapped, "spec.nicSelector.deviceID": Mapped, "spec.isRdma": Mapped}),
			detail:   map[string]string{"spec.numVfs": "advertised whole as sluice.dev/whole once it has none"},
			wantSpec: "{resourceName: whole, numVfs: 0, priority: 10, isRdma: true, nicSelector: {vendor: '15b3', deviceID: '101d'}}",
		},
		{
			name:     "numVfs 0 and externallyManaged: the VF count left alone",
			in:       head + "spec: {resourceName: ext, numVfs: 0, priority: 10, externallyManaged: true, nicSelector: {vendor: '8086'}}\n",
			want:     with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Mapped, "spec.numVfs": Changed, "spec.nicSelector.vendor": Mapped, "spec.externallyManaged": Mapped}),
			detail:   map[string]string{"spec.numVfs": "leaves the VF count alone, as SNO does"},
			wantSpec: "{resourceName: ext, numVfs: 0, priority: 10, externallyManaged: true, nicSelector: {vendor: '8086'}}",
		},
		{
			name:    "switchdev is refused",
			in:      head + "spec: {resourceName: ovs, numVfs: 4, eSwitchMode: switchdev, nicSelector: {vendor: '15b3'}}\n",
			wantErr: "spec.eSwitchMode",
			want:    with(map[string]Status{"spec.eSwitchMode": Unsupported}),
			detail:  map[string]string{"spec.eSwitchMode": "legacy SR-IOV mode only"},
		},
		{
			name:    "vDPA is refused",
			in:      head + "spec: {resourceName: vdpa, numVfs: 4, eSwitchMode: legacy, vdpaType: virtio, nicSelector: {vendor: '15b3'}}\n",
			wantErr: "spec.vdpaType",
			want:    with(map[string]Status{"spec.eSwitchMode": Mapped, "spec.vdpaType": Unsupported}),
		},
		{
			name:    "an OVS bridge is refused",
			in:      head + "spec: {resourceName: br, numVfs: 4, bridge: {ovs: {bridge: {datapathType: netdev}}}, nicSelector: {vendor: '15b3'}}\n",
			wantErr: "spec.bridge",
			want:    with(map[string]Status{"spec.bridge": Unsupported}),
		},
		{
			name:    "netFilter alone would select every PF: refused",
			in:      head + "spec: {resourceName: osp, numVfs: 4, nicSelector: {netFilter: 'openstack/NetworkID:abc'}}\n",
			wantErr: "spec.nicSelector",
			want: with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Mapped,
				"spec.nicSelector.netFilter": Changed, "spec.nicSelector": Unsupported}),
		},
		{
			name:    "a vendor sluice cannot match is refused",
			in:      head + "spec: {resourceName: x, numVfs: 4, nicSelector: {vendor: '0x8086'}}\n",
			wantErr: "spec.nicSelector.vendor",
			want:    with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Mapped, "spec.nicSelector.vendor": Unsupported}),
		},
		{
			name:    "a PCI address without its domain is refused",
			in:      head + "spec: {resourceName: x, numVfs: 4, nicSelector: {rootDevices: ['3b:00.0']}}\n",
			wantErr: "spec.nicSelector.rootDevices[0]",
			want:    with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Mapped, "spec.nicSelector.rootDevices[0]": Unsupported}),
		},
		{
			name:    "a VF range beyond numVfs is refused",
			in:      head + "spec: {resourceName: x, numVfs: 4, nicSelector: {pfNames: ['ens1f0#2-7']}}\n",
			wantErr: "spec.nicSelector.pfNames[0]",
			want:    with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Mapped, "spec.nicSelector.pfNames[0]": Unsupported}),
		},
		{
			name:    "numVfs above 256",
			in:      head + "spec: {resourceName: x, numVfs: 300, nicSelector: {vendor: '8086'}}\n",
			wantErr: "spec.numVfs",
			want:    with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Unsupported}),
		},
		{
			name:    "mtu below 576",
			in:      head + "spec: {resourceName: x, numVfs: 3, mtu: 500, nicSelector: {vendor: '8086'}}\n",
			wantErr: "spec.mtu",
			want:    with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Mapped, "spec.mtu": Unsupported}),
		},
		{
			name:    "isRdma with vfio-pci",
			in:      head + "spec: {resourceName: x, numVfs: 3, deviceType: vfio-pci, isRdma: true, nicSelector: {vendor: '15b3'}}\n",
			wantErr: "spec.isRdma",
			want: with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Mapped,
				"spec.nicSelector.vendor": Mapped, "spec.deviceType": Mapped, "spec.isRdma": Unsupported}),
		},
		{
			name:    "a resourceName sluice cannot serve",
			in:      head + "spec: {resourceName: 'a.b', numVfs: 3, nicSelector: {vendor: '15b3'}}\n",
			wantErr: "spec.resourceName",
			want:    with(map[string]Status{"spec.resourceName": Unsupported}),
		},
		{
			name:    "a number where a string belongs names the field",
			in:      head + "spec: {resourceName: x, numVfs: 3, linkType: 5, nicSelector: {vendor: '15b3'}}\n",
			wantErr: "spec.linkType",
			want: with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Mapped,
				"spec.nicSelector.vendor": Mapped, "spec.linkType": Unsupported}),
		},
		{
			name: "an unknown field is reported, not dropped silently",
			in:   head + "spec: {resourceName: x, numVfs: 3, nicSelector: {vendor: '15b3', pfName: [ens1]}, isRDMA: true}\n",
			want: with(map[string]Status{"spec.resourceName": Changed, "spec.nodeSelector": Mapped, "spec.priority": Changed, "spec.numVfs": Mapped,
				"spec.nicSelector.vendor": Mapped, "spec.nicSelector.pfName": Unsupported, "spec.isRDMA": Unsupported}),
			detail:   map[string]string{"spec.isRDMA": "Check its spelling"},
			wantSpec: "{resourceName: x, numVfs: 3, priority: 0, nicSelector: {vendor: '15b3'}}",
		},
	}
	runCases(t, cases, Options{}, false)
}

// TestConvertPolicyKeepsPrefix: with sluice's prefix set to SNO's, the
// resource name is carried over unchanged.
func TestConvertPolicyKeepsPrefix(t *testing.T) {
	runCases(t, []fieldCase{{
		name:     "same prefix",
		in:       "apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetworkNodePolicy\nmetadata: {name: p}\nspec: {resourceName: x, numVfs: 1, priority: 5, nodeSelector: {a: b}, nicSelector: {deviceID: '1017'}}\n",
		want:     map[string]Status{"spec.resourceName": Mapped, "spec.nodeSelector": Mapped, "spec.priority": Mapped, "spec.numVfs": Mapped, "spec.nicSelector.deviceID": Mapped},
		wantSpec: "{resourceName: x, numVfs: 1, priority: 5, nodeSelector: {a: b}, nicSelector: {deviceID: '1017'}}",
	}}, Options{ResourcePrefix: "openshift.io"}, false)
}
