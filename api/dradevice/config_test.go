package dradevice

import (
	"strings"
	"testing"
)

const head = `"apiVersion": "sluice.dev/v1alpha1", "kind": "VFClaimConfig"`

func TestDecodeClaimConfig(t *testing.T) {
	c, err := DecodeClaimConfig([]byte(`{` + head + `, "vlan": 100, "vlanQoS": 3, "mtu": 9000, "mac": "02:00:00:00:00:01",
		"trust": "on", "spoofChk": "off", "ipam": {"type": "host-local", "subnet": "10.0.0.0/24"}, "ifName": "net1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if *c.VLAN != 100 || *c.VLANQoS != 3 || *c.MTU != 9000 || c.MAC != "02:00:00:00:00:01" || c.Trust != "on" || c.SpoofChk != "off" ||
		!strings.Contains(string(c.IPAM), "host-local") || c.IfName != "net1" {
		t.Errorf("decoded %+v", c)
	}
	c, err = DecodeClaimConfig([]byte(`{` + head + `, "vfNetwork": {"name": "rail-a"}, "mac": "02:00:00:00:00:01", "ifName": "net1"}`))
	if err != nil || c.VFNetwork == nil || c.VFNetwork.Name != "rail-a" {
		t.Errorf("vfNetwork with mac and ifName: %+v, %v", c, err)
	}
	if c, err := DecodeClaimConfig([]byte(`{` + head + `}`)); err != nil || c.VLAN != nil {
		t.Errorf("empty config: %+v, %v", c, err)
	}
}

// TestClaimConfigErrors: every rejected configuration is rejected with an
// error that names the field and says what to write instead.
func TestClaimConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       []string
	}{
		{"unknown field", `{` + head + `, "vlanId": 5}`, []string{"vlanId: unknown field", "vlan, vlanQoS"}},
		{"unknown nested field", `{` + head + `, "vfNetwork": {"nam": "x"}}`, []string{"vfNetwork.nam: unknown field", "the fields are name, namespace"}},
		{"wrong case", `{` + head + `, "VLAN": 5}`, []string{"VLAN: unknown field", "case-sensitive"}},
		{"wrong type", `{` + head + `, "vlan": "100"}`, []string{"vlan: got JSON string, want an integer"}},
		{"trust as bool", `{` + head + `, "trust": true}`, []string{"trust: got JSON bool, want a string"}},
		{"not JSON", `{` + head + `,`, []string{"parameters:"}},
		{"empty", ``, []string{"parameters: empty"}},
		{"null", `null`, []string{"parameters: null"}},
		{"list", `[]`, []string{"parameters: got JSON array, want a JSON object"}},
		{"trailing data", `{` + head + `} {}`, []string{"data after the VFClaimConfig object"}},
		{"apiVersion", `{"apiVersion": "v1", "kind": "VFClaimConfig"}`, []string{`apiVersion: "v1"`, "set apiVersion: sluice.dev/v1alpha1"}},
		{"no apiVersion", `{"kind": "VFClaimConfig"}`, []string{`apiVersion: ""`}},
		{"kind", `{"apiVersion": "sluice.dev/v1alpha1", "kind": "VFConfig"}`, []string{`kind: "VFConfig" is unknown`, "set kind: VFClaimConfig"}},
		{"vlan high", `{` + head + `, "vlan": 4095}`, []string{"vlan: 4095 is out of range: use 0-4094"}},
		{"vlan negative", `{` + head + `, "vlan": -1}`, []string{"vlan: -1 is out of range"}},
		{"qos high", `{` + head + `, "vlan": 5, "vlanQoS": 8}`, []string{"vlanQoS: 8 is out of range: use 0-7"}},
		{"qos without vlan", `{` + head + `, "vlanQoS": 2}`, []string{"vlanQoS: 2 needs a vlan above 0"}},
		{"mtu low", `{` + head + `, "mtu": 67}`, []string{"mtu: 67 is out of range: use 68-9216"}},
		{"mtu high", `{` + head + `, "mtu": 9217}`, []string{"mtu: 9217 is out of range"}},
		{"mac syntax", `{` + head + `, "mac": "02:00:00:00:00"}`, []string{`mac: "02:00:00:00:00" is not an Ethernet MAC address`, "e.g. 02:00:00:00:00:01"}},
		{"mac infiniband", `{` + head + `, "mac": "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01"}`, []string{"is not an Ethernet MAC address"}},
		{"mac multicast", `{` + head + `, "mac": "01:00:5e:00:00:01"}`, []string{"mac: 01:00:5e:00:00:01 is a multicast address: use a unicast one"}},
		{"mac zero", `{` + head + `, "mac": "00:00:00:00:00:00"}`, []string{"mac: 00:00:00:00:00:00 is the zero address"}},
		{"trust word", `{` + head + `, "trust": "yes"}`, []string{`trust: "yes" is neither "on" nor "off"`}},
		{"spoofChk word", `{` + head + `, "spoofChk": "true"}`, []string{`spoofChk: "true" is neither "on" nor "off"`}},
		{"ipam not object", `{` + head + `, "ipam": "host-local"}`, []string{"ipam: not a JSON object"}},
		{"ipam without type", `{` + head + `, "ipam": {"subnet": "10.0.0.0/24"}}`, []string{`ipam: has no "type"`}},
		{"ipam path type", `{` + head + `, "ipam": {"type": "../bin/sh"}}`, []string{`ipam: type "../bin/sh" is not a plugin name`}},
		{"ifName long", `{` + head + `, "ifName": "abcdefghijklmnop"}`, []string{"ifName: \"abcdefghijklmnop\" is 16 characters long: Linux interface names have at most 15"}},
		{"ifName slash", `{` + head + `, "ifName": "net/1"}`, []string{`ifName: "net/1" contains '/'`}},
		{"ifName space", `{` + head + `, "ifName": "net 1"}`, []string{`ifName: "net 1" contains ' '`}},
		{"ifName dot", `{` + head + `, "ifName": ".."}`, []string{`ifName: ".." is not a valid interface name`}},
		{"vfNetwork and inline", `{` + head + `, "vfNetwork": {"name": "a"}, "vlan": 5, "ipam": {"type": "static"}}`,
			[]string{"vfNetwork: set together with vlan, ipam", "remove vlan, ipam, or the vfNetwork reference"}},
		{"vfNetwork name", `{` + head + `, "vfNetwork": {"name": "Rail_A"}}`, []string{`vfNetwork.name: "Rail_A" is not a VFNetwork name`}},
		{"vfNetwork no name", `{` + head + `, "vfNetwork": {}}`, []string{`vfNetwork.name: "" is not a VFNetwork name`}},
		{"vfNetwork namespace", `{` + head + `, "vfNetwork": {"name": "a", "namespace": "a.b"}}`, []string{`vfNetwork.namespace: "a.b" is not a namespace name`}},
		{"several at once", `{` + head + `, "vlan": 5000, "mtu": 1}`, []string{"vlan: 5000", "mtu: 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeClaimConfig([]byte(tc.json))
			if err == nil {
				t.Fatalf("%s accepted", tc.json)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to say %q", err, w)
				}
			}
		})
	}
}
