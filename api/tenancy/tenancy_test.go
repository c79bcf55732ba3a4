package tenancy

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

func TestTenantRefusal(t *testing.T) {
	// Everything a tenant may set.
	open := sluicev1.VFNetworkSpec{
		ResourceName: "pool", NetworkNamespace: "team-a", SpoofChk: sluicev1.On, Trust: sluicev1.Off,
		LinkState: "disable", MaxTxRate: 1000, MTU: 9000, RDMA: true, IPAM: `{"type":"host-local"}`,
		Capabilities: `{"ips": true, "mac": false}`, LogLevel: "debug",
	}
	cases := []struct {
		name   string
		mutate func(*sluicev1.VFNetworkSpec)
		// want are the fields the refusal names, with their fix.
		want []string
	}{
		{"allowed", func(*sluicev1.VFNetworkSpec) {}, nil},
		{"own namespace unset", func(s *sluicev1.VFNetworkSpec) { s.NetworkNamespace = "" }, nil},
		{"other namespace", func(s *sluicev1.VFNetworkSpec) { s.NetworkNamespace = "team-b" },
			[]string{`spec.networkNamespace "team-b": it renders only into its own namespace, team-a; remove spec.networkNamespace`}},
		{"trust", func(s *sluicev1.VFNetworkSpec) { s.Trust = sluicev1.On }, []string{`spec.trust "on"`, `set it to "off"`}},
		{"spoofChk", func(s *sluicev1.VFNetworkSpec) { s.SpoofChk = sluicev1.Off }, []string{`spec.spoofChk "off"`, `set it to "on"`}},
		{"vlan", func(s *sluicev1.VFNetworkSpec) { s.VLAN, s.VLANQoS, s.VLANProto = 100, 3, "802.1ad" },
			[]string{"spec.vlan 100", "remove spec.vlan;", "spec.vlanQoS 3", "remove spec.vlanQoS", `spec.vlanProto "802.1ad"`, "remove spec.vlanProto"}},
		{"minTxRate", func(s *sluicev1.VFNetworkSpec) { s.MinTxRate = 10 }, []string{"spec.minTxRate 10", "remove spec.minTxRate"}},
		{"mac capability", func(s *sluicev1.VFNetworkSpec) { s.Capabilities = "{\n \"mac\" :true}" },
			[]string{`spec.capabilities "mac": true`, `set "mac" to false or leave it out ("ips" is allowed)`}},
		{"metaPlugins", func(s *sluicev1.VFNetworkSpec) { s.MetaPlugins = `{"type":"host-device","device":"eth0"}` },
			[]string{"spec.metaPlugins: chained plugins run on the node", "remove spec.metaPlugins"}},
		{"logFile", func(s *sluicev1.VFNetworkSpec) { s.LogFile = "/etc/shadow" },
			[]string{`spec.logFile "/etc/shadow"`, "remove spec.logFile"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "net", Namespace: "team-a"}, Spec: open}
			tc.mutate(&n.Spec)
			got := Refusal(n, "sluice-system")
			if len(tc.want) == 0 {
				if got != "" {
					t.Fatalf("refused: %s", got)
				}
				return
			}
			for _, w := range append(tc.want, "a VFNetwork outside namespace sluice-system may not ask for this: ",
				"A platform admin can make this attachment as a VFNetwork in sluice-system with spec.networkNamespace: ") {
				if !strings.Contains(got, w) {
					t.Errorf("refusal %q does not say %q", got, w)
				}
			}
			// The same VFNetwork in the operator's namespace is the platform's.
			n.Namespace = "sluice-system"
			if got := Refusal(n, "sluice-system"); got != "" {
				t.Errorf("platform VFNetwork refused: %s", got)
			}
		})
	}
}

func TestUseRefusal(t *testing.T) {
	const platform = "sluice-system"
	vfn := func(ns, networkNS string, mutate func(*sluicev1.VFNetworkSpec)) *sluicev1.VFNetwork {
		n := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "net", Namespace: ns},
			Spec: sluicev1.VFNetworkSpec{ResourceName: "pool", NetworkNamespace: networkNS}}
		if mutate != nil {
			mutate(&n.Spec)
		}
		return n
	}
	vlan := func(s *sluicev1.VFNetworkSpec) { s.VLAN = 100 }
	cases := []struct {
		name string
		n    *sluicev1.VFNetwork
		ns   string
		// want is in the refusal; empty: allowed.
		want []string
	}{
		{"tenant, own namespace", vfn("team-a", "", nil), "team-a", nil},
		{"tenant, other namespace", vfn("team-a", "", nil), "team-b",
			[]string{"VFNetwork team-a/net is namespace team-a's", "not team-b's", "create the VFNetwork in team-b"}},
		{"tenant asking for a VLAN", vfn("team-a", "", vlan), "team-a",
			[]string{"the operator renders nothing for it: a VFNetwork outside namespace sluice-system may not ask for this: spec.vlan 100"}},
		{"platform, for the namespace", vfn(platform, "team-a", vlan), "team-a", nil},
		{"platform, for another namespace", vfn(platform, "team-b", vlan), "team-a",
			[]string{"platform VFNetwork for namespace team-b", "not team-a", "spec.networkNamespace: team-a"}},
		{"platform, for its own namespace", vfn(platform, "", nil), "team-a",
			[]string{"platform VFNetwork for namespace sluice-system"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := UseRefusal(tc.n, platform, tc.ns)
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("refused: %s", got)
			}
			if len(tc.want) > 0 && got == "" {
				t.Fatal("allowed")
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("refusal %q does not say %q", got, w)
				}
			}
		})
	}
}
