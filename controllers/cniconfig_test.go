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
		wantErr  string // substring of an *invalidIPAMError
	}{
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
				var inv *invalidIPAMError
				if !errors.As(err, &inv) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want an invalid IPAM error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %s, %v\nwant %s", got, err, tc.want)
			}
		})
	}
}
