package plugin

import (
	"bytes"
	"encoding/json"
	"net"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// TestPrintResultMatchesLibrary compares printResult's JSON with the
// library's PrintTo for results of every shape ADD returns, and the
// versions a runtime asks for: the same fields with the same values.
func TestPrintResultMatchesLibrary(t *testing.T) {
	_, addr4, _ := net.ParseCIDR("10.56.0.7/24")
	addr4.IP = net.ParseIP("10.56.0.7")
	_, addr6, _ := net.ParseCIDR("fd00::7/64")
	addr6.IP = net.ParseIP("fd00::7")
	_, dst, _ := net.ParseCIDR("10.0.0.0/8")
	iface := &current.Interface{Name: "net1", Mac: "02:00:00:00:00:01", Mtu: 9000, Sandbox: "/var/run/netns/pod", PciID: "0000:01:10.0"}
	results := map[string]*current.Result{
		"no IPAM": {CNIVersion: current.ImplementedSpecVersion, Interfaces: []*current.Interface{iface}},
		"addresses, routes and DNS": {
			CNIVersion: current.ImplementedSpecVersion, Interfaces: []*current.Interface{iface},
			IPs: []*current.IPConfig{
				{Interface: current.Int(0), Address: *addr4, Gateway: net.ParseIP("10.56.0.1")},
				{Interface: current.Int(0), Address: *addr6},
			},
			Routes: []*types.Route{{Dst: *dst, GW: net.ParseIP("10.56.0.1"), MTU: 1400, Priority: 5}},
			DNS:    types.DNS{Nameservers: []string{"10.96.0.10"}, Domain: "cluster.local", Search: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
		},
		"address, no DNS": {
			CNIVersion: current.ImplementedSpecVersion, Interfaces: []*current.Interface{iface},
			IPs: []*current.IPConfig{{Interface: current.Int(0), Address: *addr4}},
		},
		"HTML in a name": {CNIVersion: current.ImplementedSpecVersion, Interfaces: []*current.Interface{{Name: "a<b>&c", Sandbox: "/x"}}},
	}
	for name, r := range results {
		for _, ver := range []string{"1.1.0", "1.0.0", "0.4.0", "0.3.1"} {
			var got bytes.Buffer
			if err := printResult(&got, r, ver); err != nil {
				t.Fatalf("%s as %s: %v", name, ver, err)
			}
			lib, err := r.GetAsVersion(ver)
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if err := lib.PrintTo(&want); err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got.Bytes(), &g); err != nil {
				t.Fatalf("%s as %s: printResult wrote invalid JSON %s: %v", name, ver, got.Bytes(), err)
			}
			if err := json.Unmarshal(want.Bytes(), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s as %s:\n got %s\nwant %s", name, ver, got.Bytes(), want.Bytes())
			}
			// Through libcni's own decoding, as a runtime reads it.
			back, err := current.NewResult(got.Bytes())
			if ver[0] == '1' && (err != nil || !reflect.DeepEqual(back.(*current.Result).Interfaces, r.Interfaces)) {
				t.Errorf("%s as %s: read back %v, %v", name, ver, back, err)
			}
		}
	}
}

// TestResult100MirrorsLibrary fails when the library's Result gains,
// loses or renames a field, which result100 would otherwise drop.
func TestResult100MirrorsLibrary(t *testing.T) {
	lib, ours := reflect.TypeFor[current.Result](), reflect.TypeFor[result100]()
	if lib.NumField() != ours.NumField() {
		t.Fatalf("current.Result has %d fields, result100 %d: mirror the library's fields in result100", lib.NumField(), ours.NumField())
	}
	for i := range lib.NumField() {
		l, o := lib.Field(i), ours.Field(i)
		if l.Name != o.Name || l.Tag.Get("json") != o.Tag.Get("json") {
			t.Errorf("field %d: library %s `json:%q`, result100 %s `json:%q`", i, l.Name, l.Tag.Get("json"), o.Name, o.Tag.Get("json"))
		}
	}
}
