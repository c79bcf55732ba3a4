package plugin

import (
	"encoding/json"
	"io"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// printResult writes r as CNI version ver.
//
// A result of the 1.x types is encoded once, as result100, and not through
// its PrintTo: the library's (*Result).MarshalJSON, there only to leave an
// empty "dns" out, encodes the result, decodes it into a map and encodes
// the map again, then PrintTo indents it. That round trip was the costliest
// step of ADD's tail on the emulated node (3.2 ms median of a 130 ms ADD,
// docs/benchmarks.md). The JSON holds the same fields with the same values
// (result_test.go compares them); older versions go through the library.
func printResult(w io.Writer, r types.Result, ver string) error {
	out, err := r.GetAsVersion(ver)
	if err != nil {
		return cniError(types.ErrIncompatibleCNIVersion, "cannot return the result as CNI %s: %v", ver, err)
	}
	c, ok := out.(*current.Result)
	if !ok {
		return out.PrintTo(w)
	}
	res := result100{CNIVersion: c.CNIVersion, Interfaces: c.Interfaces, IPs: c.IPs, Routes: c.Routes}
	if !c.DNS.IsEmpty() {
		res.DNS = &c.DNS
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// result100 is current.Result's JSON without its MarshalJSON: the same
// field names and omissions, and "dns" left out when empty.
type result100 struct {
	CNIVersion string               `json:"cniVersion,omitempty"`
	Interfaces []*current.Interface `json:"interfaces,omitempty"`
	IPs        []*current.IPConfig  `json:"ips,omitempty"`
	Routes     []*types.Route       `json:"routes,omitempty"`
	DNS        *types.DNS           `json:"dns,omitempty"`
}
