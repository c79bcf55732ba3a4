package dradevice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ClaimConfigAPIVersion and ClaimConfigKind identify ClaimConfig in the
// opaque parameters of a DeviceClass's or a ResourceClaim's config for the
// driver:
//
//	config:
//	- opaque:
//	    driver: sluice.dev
//	    parameters:
//	      apiVersion: sluice.dev/v1alpha1
//	      kind: VFClaimConfig
//	      vlan: 100
//	      trust: "off"
const (
	ClaimConfigAPIVersion = "sluice.dev/v1alpha1"
	ClaimConfigKind       = "VFClaimConfig"
)

// ClaimConfig is how a claim's VFs are configured: either a VFNetwork
// (VFNetwork) or the settings inline (VLAN, VLANQoS, MTU, Trust, SpoofChk,
// IPAM), never both; MAC and IfName go with either.
//
// Prepare resolves a VFNetwork into the settings it gives (its VLAN, QoS,
// MTU, trust, spoof checking and IPAM, deviceplugin/dra's vfnetwork.go),
// applies the PF-side settings (VLAN, QoS, MAC, trust, spoof checking) and
// records the config, resolved, in the claim's checkpoint; MTU, IPAM and
// IfName apply when the DRA driver's NRI plugin moves the VF's netdev into
// the pod's network namespace at sandbox creation.
type ClaimConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// VFNetwork names a VFNetwork whose settings apply.
	VFNetwork *ObjectRef `json:"vfNetwork,omitempty"`
	// VLAN is the tag the PF applies to the VF's traffic, 0-4094 (0: none).
	VLAN *int `json:"vlan,omitempty"`
	// VLANQoS is the 802.1p priority of the tag, 0-7; it needs a VLAN.
	VLANQoS *int `json:"vlanQoS,omitempty"`
	// MTU of the VF's netdev in the pod, 68-9216.
	MTU *int `json:"mtu,omitempty"`
	// MAC of the VF, a unicast Ethernet address ("02:00:00:00:00:01"). It
	// may apply to one device only.
	MAC string `json:"mac,omitempty"`
	// Trust ("on" or "off") lets the pod change its MAC and enter
	// promiscuous mode.
	Trust string `json:"trust,omitempty"`
	// SpoofChk ("on" or "off") drops frames whose source MAC is not the
	// VF's.
	SpoofChk string `json:"spoofChk,omitempty"`
	// IPAM is a CNI IPAM configuration, a JSON object with a "type"
	// ({"type": "host-local", "subnet": "10.56.217.0/24"}).
	IPAM json.RawMessage `json:"ipam,omitempty"`
	// IfName is the VF's interface name in the pod. It may apply to one
	// device only.
	IfName string `json:"ifName,omitempty"`
}

// ObjectRef names a namespaced object; an empty namespace is the claim's.
type ObjectRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// DecodeClaimConfig reads opaque parameters strictly: unknown fields, a
// wrong apiVersion or kind and trailing data are errors, each naming the
// field and the fix. The result is validated (Validate).
func DecodeClaimConfig(raw []byte) (*ClaimConfig, error) {
	// Names first, with their paths: encoding/json matches names in any
	// case ("VLAN" would silently be vlan) and does not say where an
	// unknown one is.
	if err := exactNames(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	c := &ClaimConfig{}
	if err := dec.Decode(c); err != nil {
		return nil, decodeError(err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Field names, exactly as spelled.
var (
	fieldNames  = []string{"apiVersion", "kind", "vfNetwork", "vlan", "vlanQoS", "mtu", "mac", "trust", "spoofChk", "ipam", "ifName"}
	objRefNames = []string{"name", "namespace"}
)

// exactNames rejects the first field (in name order) not spelled exactly as
// one of ClaimConfig's, naming it with its path, and data after the object.
func exactNames(raw []byte) error {
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&top); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("parameters: data after the %s object: give one JSON object", ClaimConfigKind)
	}
	if top == nil {
		return fmt.Errorf("parameters: null: give a %s object", ClaimConfigKind)
	}
	check := func(prefix string, m map[string]json.RawMessage, names []string) error {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !slices.Contains(names, k) {
				return fmt.Errorf("%s%s: unknown field of %s %s: the fields are %s (names are case-sensitive)",
					prefix, k, ClaimConfigAPIVersion, ClaimConfigKind, strings.Join(names, ", "))
			}
		}
		return nil
	}
	if err := check("", top, fieldNames); err != nil {
		return err
	}
	if ref, ok := top["vfNetwork"]; ok {
		var m map[string]json.RawMessage
		if json.Unmarshal(ref, &m) == nil {
			return check("vfNetwork.", m, objRefNames)
		}
	}
	return nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return fmt.Errorf("%s: got JSON %s, want %s", or(typeErr.Field, "parameters"), typeErr.Value, jsonKindOf(typeErr.Field))
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("parameters: not valid JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("parameters: empty: give a %s object", ClaimConfigKind)
	}
	return fmt.Errorf("parameters: %w", err)
}

func jsonKindOf(field string) string {
	switch field {
	case "":
		return "a JSON object"
	case "vlan", "vlanQoS", "mtu":
		return "an integer"
	case "vfNetwork":
		return `an object {"name": ..., "namespace": ...}`
	case "ipam":
		return "a JSON object"
	}
	return "a string"
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Validate checks every field; the error lists each problem with its field
// and the fix.
func (c *ClaimConfig) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.APIVersion != ClaimConfigAPIVersion {
		bad("apiVersion: %q is not sluice's: set apiVersion: %s", c.APIVersion, ClaimConfigAPIVersion)
	}
	if c.Kind != ClaimConfigKind {
		bad("kind: %q is unknown: set kind: %s", c.Kind, ClaimConfigKind)
	}
	if c.VFNetwork != nil {
		if inline := c.inlineFields(); len(inline) > 0 {
			bad("vfNetwork: set together with %s: the VFNetwork's settings apply; remove %s, or the vfNetwork reference",
				strings.Join(inline, ", "), strings.Join(inline, ", "))
		}
		if msgs := validation.IsDNS1123Subdomain(c.VFNetwork.Name); len(msgs) > 0 {
			bad("vfNetwork.name: %q is not a VFNetwork name (%s)", c.VFNetwork.Name, strings.Join(msgs, "; "))
		}
		if ns := c.VFNetwork.Namespace; ns != "" {
			if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
				bad("vfNetwork.namespace: %q is not a namespace name (%s); leave it out for the claim's namespace", ns, strings.Join(msgs, "; "))
			}
		}
	}
	vlan := 0
	if c.VLAN != nil {
		vlan = *c.VLAN
		if vlan < 0 || vlan > 4094 {
			bad("vlan: %d is out of range: use 0-4094 (0 for no VLAN)", vlan)
		}
	}
	if c.VLANQoS != nil {
		switch q := *c.VLANQoS; {
		case q < 0 || q > 7:
			bad("vlanQoS: %d is out of range: use 0-7", q)
		case q > 0 && vlan <= 0:
			bad("vlanQoS: %d needs a vlan above 0: set vlan, or leave vlanQoS out", q)
		}
	}
	if c.MTU != nil && (*c.MTU < 68 || *c.MTU > 9216) {
		bad("mtu: %d is out of range: use 68-9216, or leave it out to keep the VF's MTU", *c.MTU)
	}
	if c.MAC != "" {
		if err := validateMAC(c.MAC); err != nil {
			bad("mac: %v", err)
		}
	}
	for _, s := range []struct{ field, v string }{{"trust", c.Trust}, {"spoofChk", c.SpoofChk}} {
		if s.v != "" && s.v != "on" && s.v != "off" {
			bad(`%s: %q is neither "on" nor "off": write "on" or "off" (quoted in YAML), or leave it out`, s.field, s.v)
		}
	}
	if len(c.IPAM) > 0 {
		if err := validateIPAM(c.IPAM); err != nil {
			bad("ipam: %v", err)
		}
	}
	if c.IfName != "" {
		if err := validateIfName(c.IfName); err != nil {
			bad("ifName: %v", err)
		}
	}
	return errors.Join(errs...)
}

// inlineFields are the settings a VFNetwork would also give.
func (c *ClaimConfig) inlineFields() []string {
	var out []string
	if c.VLAN != nil {
		out = append(out, "vlan")
	}
	if c.VLANQoS != nil {
		out = append(out, "vlanQoS")
	}
	if c.MTU != nil {
		out = append(out, "mtu")
	}
	if c.Trust != "" {
		out = append(out, "trust")
	}
	if c.SpoofChk != "" {
		out = append(out, "spoofChk")
	}
	if len(c.IPAM) > 0 {
		out = append(out, "ipam")
	}
	return out
}

func validateMAC(s string) error {
	mac, err := net.ParseMAC(s)
	switch {
	case err != nil || len(mac) != 6:
		return fmt.Errorf("%q is not an Ethernet MAC address: write six hex bytes separated by ':', e.g. 02:00:00:00:00:01", s)
	case mac[0]&1 == 1:
		return fmt.Errorf("%s is a multicast address: use a unicast one (lowest bit of the first byte clear, e.g. 02:...)", mac)
	case bytes.Equal(mac, make(net.HardwareAddr, 6)):
		return fmt.Errorf("%s is the zero address: give a unicast address, or leave mac out to keep the VF's", mac)
	}
	return nil
}

func validateIPAM(raw json.RawMessage) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf(`not a JSON object: give a CNI IPAM configuration, e.g. {"type": "host-local", "subnet": "10.56.217.0/24"}`)
	}
	var typ string
	if err := json.Unmarshal(m["type"], &typ); err != nil || typ == "" {
		return fmt.Errorf(`has no "type": name the IPAM plugin, e.g. {"type": "host-local", ...}`)
	}
	if strings.ContainsAny(typ, `/\`) || typ == "." || typ == ".." {
		return fmt.Errorf("type %q is not a plugin name: give the binary's name in the CNI path, e.g. host-local", typ)
	}
	return nil
}

func validateIfName(name string) error {
	switch {
	case len(name) > 15:
		return fmt.Errorf("%q is %d characters long: Linux interface names have at most 15", name, len(name))
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a valid interface name: use e.g. net1", name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || unicode.IsSpace(r) || r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return fmt.Errorf("%q contains %q: interface names hold printable ASCII without '/', ':' or white space, e.g. net1", name, r)
		}
	}
	return nil
}
