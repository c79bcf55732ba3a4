package controllers

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

func TestRenderCNIConfig(t *testing.T) {
	cases := []struct {
		name     string
		spec     sluicev1.VFNetworkSpec
		softRoCE bool
		// resource is the pool's device-plugin resource; empty: sluice.dev/<resourceName>.
		resource string
		want     string
		wantErr  string // substring of an *invalidSpecError
	}{
		// sriov-network-operator's spellings of vlanProto render as sluice-cni and sriov-cni write them.
		{"vlanProto 802.1q", sluicev1.VFNetworkSpec{ResourceName: "a", VLAN: 5, VLANProto: "802.1q"}, false, "",
			`{"cniVersion":"1.0.0","name":"net","type":"sluice-cni","vlan":5,"vlanProto":"802.1Q"}`, ""},
		{"vlanProto 802.1AD", sluicev1.VFNetworkSpec{ResourceName: "a", VLAN: 5, VLANProto: "802.1AD"}, false, "",
			`{"cniVersion":"1.0.0","name":"net","type":"sluice-cni","vlan":5,"vlanProto":"802.1ad"}`, ""},
		{"capabilities and logging", sluicev1.VFNetworkSpec{ResourceName: "a", Capabilities: "{\n \"mac\": true, \"ips\": true }",
			LogLevel: "debug", LogFile: "/var/log/sriov.log", IPAM: `{"type":"static"}`}, false, "",
			`{"cniVersion":"1.0.0","name":"net","type":"sluice-cni","ipam":{"type":"static"},"capabilities":{"ips":true,"mac":true},"logLevel":"debug","logFile":"/var/log/sriov.log"}`, ""},
		{"capabilities empty object", sluicev1.VFNetworkSpec{ResourceName: "a", Capabilities: "{}"}, false, "",
			`{"cniVersion":"1.0.0","name":"net","type":"sluice-cni"}`, ""},
		// metaPlugins as sriov-network-operator takes them: objects separated by commas.
		{"metaPlugins", sluicev1.VFNetworkSpec{ResourceName: "a", VLAN: 7, Capabilities: `{"mac":true}`,
			MetaPlugins: "{\n \"type\": \"tuning\",\n \"sysctl\": {\"net.ipv4.conf.IFNAME.arp_notify\": \"1\"}\n},\n{\"type\": \"sbr\"}\n"}, false, "",
			`{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"sluice-cni","vlan":7,"capabilities":{"mac":true}},{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.arp_notify":"1"}},{"type":"sbr"}]}`, ""},
		{"metaPlugins a list", sluicev1.VFNetworkSpec{ResourceName: "a", MetaPlugins: ` [{"type":"tuning","mac":"02:00:00:00:00:01"}]`}, false, "",
			`{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"sluice-cni"},{"type":"tuning","mac":"02:00:00:00:00:01"}]}`, ""},
		{"metaPlugins not JSON", sluicev1.VFNetworkSpec{MetaPlugins: `type: tuning`}, false, "", "", "spec.metaPlugins is not JSON objects separated by commas"},
		{"metaPlugins trailing comma", sluicev1.VFNetworkSpec{MetaPlugins: `{"type":"tuning"},`}, false, "", "", "spec.metaPlugins is not JSON objects"},
		{"metaPlugins escaping the list", sluicev1.VFNetworkSpec{MetaPlugins: `{"type":"tuning"}],"x":[{"type":"y"}`}, false, "", "", "spec.metaPlugins is not JSON objects"},
		{"metaPlugins empty list", sluicev1.VFNetworkSpec{MetaPlugins: `[]`}, false, "", "", "spec.metaPlugins is an empty list"},
		{"metaPlugins a string", sluicev1.VFNetworkSpec{MetaPlugins: `{"type":"tuning"}, "sbr"`}, false, "", "", "spec.metaPlugins[1] is not a JSON object (a string)"},
		{"metaPlugins without type", sluicev1.VFNetworkSpec{MetaPlugins: `{"type":"tuning"},{"sysctl":{}}`}, false, "", "", `spec.metaPlugins[1] has no "type"`},
		{"metaPlugins type twice", sluicev1.VFNetworkSpec{MetaPlugins: `{"type":"tuning","Type":"sbr"}`}, false, "", "", `spec.metaPlugins[0] has 2 keys naming the plugin (type, Type)`},
		{"capabilities not switches", sluicev1.VFNetworkSpec{Capabilities: `{"mac":"yes"}`}, false, "", "", "spec.capabilities is not a JSON object of switches"},
		{"capability sluice-cni ignores", sluicev1.VFNetworkSpec{Capabilities: `{"mac":true,"portMappings":true,"bandwidth":true}`}, false, "", "",
			"spec.capabilities has bandwidth, portMappings: sluice-cni honours only mac and ips; put other capabilities on the meta plugin"},
		{"minimal", sluicev1.VFNetworkSpec{ResourceName: "a"}, false, "", `{"cniVersion":"1.0.0","name":"net","type":"sluice-cni"}`, ""},
		{"every field", sluicev1.VFNetworkSpec{
			ResourceName: "a", VLAN: 10, VLANQoS: 2, VLANProto: "802.1ad", SpoofChk: sluicev1.On, Trust: sluicev1.Off,
			LinkState: "disable", MinTxRate: 10, MaxTxRate: 20, MTU: 1500, RDMA: true, IPAM: "{\n  \"type\": \"static\"\n}",
		}, false, "", `{"cniVersion":"1.0.0","name":"net","type":"sluice-cni","vlan":10,"vlanQoS":2,"vlanProto":"802.1ad","spoofchk":"on","trust":"off","link_state":"disable","min_tx_rate":10,"max_tx_rate":20,"mtu":1500,"rdma":true,"ipam":{"type":"static"}}`, ""},
		{"soft-RoCE pool", sluicev1.VFNetworkSpec{ResourceName: "igb-roce"}, true,
			"", `{"cniVersion":"1.0.0","name":"net","type":"sluice-cni","rdma":true,"softRoCE":{"cdiKind":"sluice.dev/igb-roce"}}`, ""},
		// The CDI kind is the device plugin's resource, prefix included.
		{"soft-RoCE pool, own prefix", sluicev1.VFNetworkSpec{ResourceName: "igb-roce"}, true, "example.com/igb-roce",
			`{"cniVersion":"1.0.0","name":"net","type":"sluice-cni","rdma":true,"softRoCE":{"cdiKind":"example.com/igb-roce"}}`, ""},
		{"ipam not JSON", sluicev1.VFNetworkSpec{IPAM: `type=host-local`}, false, "", "", "spec.ipam is not a JSON object"},
		{"ipam an array", sluicev1.VFNetworkSpec{IPAM: `[{"type":"host-local"}]`}, false, "", "", "spec.ipam is not a JSON object"},
		{"ipam without type", sluicev1.VFNetworkSpec{IPAM: `{"subnet":"10.0.0.0/8"}`}, false, "", "", `no "type"`},
		{"ipam type not a string", sluicev1.VFNetworkSpec{IPAM: `{"type":7}`}, false, "", "", `no "type"`},
		{"ipam type in another case", sluicev1.VFNetworkSpec{ResourceName: "a", IPAM: `{"Type":"static"}`}, false, "",
			`{"cniVersion":"1.0.0","name":"net","type":"sluice-cni","ipam":{"Type":"static"}}`, ""},
		{"ipam type twice", sluicev1.VFNetworkSpec{IPAM: `{"type":"host-local","subnet":"10.0.0.0/8","TYPE":"dhcp"}`}, false, "", "",
			`spec.ipam has 2 keys naming the IPAM plugin (type, TYPE): keep one "type"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "net"}, Spec: tc.spec}
			resource := tc.resource
			if resource == "" {
				resource = DefaultResourcePrefix + "/" + tc.spec.ResourceName
			}
			got, err := renderCNIConfig(n, resource, tc.softRoCE)
			if tc.wantErr != "" {
				var inv *invalidSpecError
				if !errors.As(err, &inv) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want an invalid spec error with %q", err, tc.wantErr)
				}
				wantReason := ReasonInvalidSpec
				if strings.HasPrefix(tc.wantErr, "spec.ipam") || strings.Contains(tc.wantErr, `"type"`) && n.Spec.IPAM != "" {
					wantReason = ReasonInvalidIPAM
				}
				if inv.condReason != wantReason {
					t.Errorf("Ready reason %s, want %s", inv.condReason, wantReason)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %s, %v\nwant %s", got, err, tc.want)
			}
			// sluice-cni reads back what the spec says (the check knows
			// only the default prefix).
			if tc.resource == "" {
				checkRenderedForCNI(t, n, tc.softRoCE, got)
			}
		})
	}
}
