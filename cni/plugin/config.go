package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"regexp"
	"strings"
	"unicode"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// Default directories on a node.
const (
	// DefaultCacheDir holds one entry per attachment (containerID and
	// ifname): the VF's state before ADD, which DEL puts back.
	DefaultCacheDir = nodefiles.DefaultCacheDir
	// DefaultLockDir holds one lock file per VF.
	DefaultLockDir = nodefiles.DefaultLockDir
)

// BaseConf is the part of the network configuration every command reads.
// DEL, GC and STATUS read only this, so that a setting ADD would refuse
// never stops a clean-up.
type BaseConf struct {
	types.PluginConf
	// DeviceID is the VF's PCI address, which Multus fills in from the
	// device plugin's allocation.
	DeviceID string `json:"deviceID,omitempty"`
	// CacheDir, AttachmentsDir, LockDir, StatsDir and DRAClaimsDir (the
	// DRA driver's claim checkpoints, whose holds ADD reads) override the
	// node defaults (tests use them).
	CacheDir       string `json:"cacheDir,omitempty"`
	AttachmentsDir string `json:"attachmentsDir,omitempty"`
	LockDir        string `json:"lockDir,omitempty"`
	StatsDir       string `json:"statsDir,omitempty"`
	DRAClaimsDir   string `json:"draClaimsDir,omitempty"`
	// RuntimeConfig is what the runtime (Multus) passes for the
	// capabilities the configuration declares: "mac" sets the VF's MAC,
	// "ips" the addresses the IPAM plugin (static, host-local) assigns,
	// which it reads from the same configuration.
	RuntimeConfig struct {
		DeviceID string   `json:"deviceID,omitempty"`
		MAC      string   `json:"mac,omitempty"`
		IPs      []string `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitempty"`
}

// NetConf is the network configuration: sriov-cni's fields, so existing
// configurations work, plus mtu and rdma.
type NetConf struct {
	BaseConf
	VLAN      *int   `json:"vlan,omitempty"`
	VLANQoS   *int   `json:"vlanQoS,omitempty"`
	VLANProto string `json:"vlanProto,omitempty"`
	MAC       string `json:"mac,omitempty"`
	SpoofChk  string `json:"spoofchk,omitempty"`
	Trust     string `json:"trust,omitempty"`
	LinkState string `json:"link_state,omitempty"`
	MinTxRate *int   `json:"min_tx_rate,omitempty"`
	MaxTxRate *int   `json:"max_tx_rate,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
	// RDMA asks for the VF's RDMA device: moved into the pod's namespace
	// when the node is in exclusive RDMA mode.
	RDMA bool `json:"rdma,omitempty"`
	// SoftRoCE asks for a soft-RoCE device on the VF in the pod (the
	// operator sets it for a soft-RoCE pool's networks).
	SoftRoCE *SoftRoCEConf `json:"softRoCE,omitempty"`
	// LogLevel and LogFile are sriov-cni's logging settings.
	LogConf
}

// SoftRoCEConf names the CDI device the pod's soft-RoCE device is handed
// out as: <CDIKind>=<VF PCI address>, spec written into CDIDir.
type SoftRoCEConf struct {
	CDIKind string `json:"cdiKind"`
	// CDIDir overrides the runtime's dynamic spec directory (tests).
	CDIDir string `json:"cdiDir,omitempty"`
}

func (s *SoftRoCEConf) cdiDir() string { return or(s.CDIDir, nodefiles.DefaultCDIDir) }

func (c *BaseConf) cacheDir() string { return or(c.CacheDir, DefaultCacheDir) }
func (c *BaseConf) attachmentsDir() string {
	return or(c.AttachmentsDir, nodefiles.DefaultAttachmentsDir)
}
func (c *BaseConf) lockDir() string { return or(c.LockDir, DefaultLockDir) }
func (c *BaseConf) draClaimsDir() string {
	return or(c.DRAClaimsDir, nodefiles.DefaultDRAClaimsDir)
}

// deviceID is runtimeConfig.deviceID, else the top-level deviceID.
func (c *BaseConf) deviceID() string { return or(c.RuntimeConfig.DeviceID, c.DeviceID) }

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// podArgs are the CNI_ARGS the plugin uses.
type podArgs struct {
	MAC, PodNamespace, PodName, PodUID string
}

// parseArgs reads CNI_ARGS ("K=V;K=V"); keys it does not use are ignored.
func parseArgs(s string) (podArgs, error) {
	var a podArgs
	if s == "" {
		return a, nil
	}
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return a, invalidEnv("CNI_ARGS: %q is not KEY=VALUE; separate pairs with ';'", kv)
		}
		switch k {
		case "MAC":
			a.MAC = v
		case "K8S_POD_NAMESPACE":
			a.PodNamespace = v
		case "K8S_POD_NAME":
			a.PodName = v
		case "K8S_POD_UID":
			a.PodUID = v
		}
	}
	return a, nil
}

// Config is a validated ADD or CHECK request.
type Config struct {
	NetConf
	Args podArgs
	// PCI is the VF's PCI address, MACAddr the MAC to set (nil for none).
	PCI     string
	MACAddr net.HardwareAddr
	// VF is the PF-side configuration to apply.
	VF host.VFConfig
}

var pciAddrRE = regexp.MustCompile(`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]$`)

// decode unmarshals a configuration, telling malformed JSON or a document
// that is not an object (code 6) from a field of the wrong type (code 7,
// naming the field).
func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field == "" {
				// The document itself: there is no field to name.
				return types.NewError(types.ErrDecodingFailure, fmt.Sprintf(`network configuration is a JSON %s, not an object: write it as {"cniVersion": ..., "name": ..., "type": "sluice-cni", ...}`, typeErr.Value), "")
			}
			return invalidConfig("field %q is a JSON %s, it must be %s", jsonFieldPath(reflect.TypeOf(v), typeErr.Field), typeErr.Value, jsonKind(typeErr.Type))
		}
		return types.NewError(types.ErrDecodingFailure, "network configuration is not valid JSON: "+err.Error(), "")
	}
	return nil
}

// jsonFieldPath is encoding/json's path to a field with the Go names of the
// embedded structs on the way (BaseConf.PluginConf.ipam) left out, so that
// it is the configuration's (ipam).
func jsonFieldPath(t reflect.Type, path string) string {
	embedded := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			if f := t.Field(i); f.Anonymous && !embedded[f.Name] {
				embedded[f.Name] = true
				walk(f.Type)
			}
		}
	}
	walk(t)
	segs := strings.Split(path, ".")
	for len(segs) > 1 && embedded[segs[0]] {
		segs = segs[1:]
	}
	return strings.Join(segs, ".")
}

// jsonKind says what JSON a Go type decodes from, for whoever writes the
// configuration.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer (in range)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// loadBaseConf reads what DEL, GC and STATUS need.
func loadBaseConf(data []byte) (*BaseConf, error) {
	c := &BaseConf{}
	if err := decode(data, c); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadConf reads and validates an ADD or CHECK request: the network
// configuration, CNI_ARGS and the interface and container names. Every
// check runs before anything on the node changes, and it reads nothing of
// the node, so the operator's tests use it to check that what the operator
// renders is what sluice-cni accepts.
func LoadConf(args *skel.CmdArgs) (*Config, error) {
	if err := validateEnv(args); err != nil {
		return nil, err
	}
	c := &Config{}
	if err := decode(args.StdinData, &c.NetConf); err != nil {
		return nil, err
	}
	pa, err := parseArgs(args.Args)
	if err != nil {
		return nil, err
	}
	c.Args = pa

	c.PCI = c.deviceID()
	switch {
	case c.PCI == "":
		return nil, invalidConfig(`deviceID is missing: the VF's PCI address (e.g. "0000:03:02.3") comes from the device plugin through Multus, or from runtimeConfig.deviceID`)
	case !pciAddrRE.MatchString(c.PCI):
		return nil, invalidConfig("deviceID %q is not a PCI address: write it as domain:bus:device.function, e.g. 0000:03:02.3", c.PCI)
	}

	if err := c.validateVLAN(); err != nil {
		return nil, err
	}
	if err := c.validateMAC(); err != nil {
		return nil, err
	}
	if err := c.validateSwitches(); err != nil {
		return nil, err
	}
	if err := c.validateRates(); err != nil {
		return nil, err
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return nil, invalidConfig("mtu %d is out of range: use 68-65535, or leave it out to keep the VF's MTU", c.MTU)
	}
	if err := c.validateIPs(); err != nil {
		return nil, err
	}
	if err := c.LogConf.validate(); err != nil {
		return nil, err
	}
	if c.SoftRoCE != nil && !cdiKindRE.MatchString(c.SoftRoCE.CDIKind) {
		return nil, invalidConfig("softRoCE.cdiKind %q is not a CDI kind: write it as vendor/class, the pool's resource name (e.g. sluice.dev/igb-roce)", c.SoftRoCE.CDIKind)
	}
	return c, nil
}

// cdiKindRE is a CDI kind: a vendor (domain-like) and a class.
var cdiKindRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.\-]*[a-zA-Z0-9])?/[a-zA-Z0-9]([a-zA-Z0-9_\-]*[a-zA-Z0-9])?$`)

// validateEnv checks what the runtime passes in the environment; skel does
// the same for the binary, this covers callers of the command functions.
func validateEnv(args *skel.CmdArgs) error {
	if err := validateIfName(args.IfName); err != nil {
		return err
	}
	return validateContainerID(args.ContainerID)
}

var containerIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

func validateContainerID(id string) error {
	if !containerIDRE.MatchString(id) {
		return invalidEnv("CNI_CONTAINERID %q is not valid: it must start with a letter or digit and hold only letters, digits, '_', '.' and '-'", id)
	}
	return nil
}

func validateIfName(name string) error {
	switch {
	case name == "":
		return invalidEnv("CNI_IFNAME is empty: give the interface name in the pod, e.g. net1")
	case len(name) > 15:
		return invalidEnv("CNI_IFNAME %q is %d characters long: Linux interface names have at most 15", name, len(name))
	case name == "." || name == "..":
		return invalidEnv("CNI_IFNAME %q is not a valid interface name", name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || unicode.IsSpace(r) {
			return invalidEnv("CNI_IFNAME %q contains %q: interface names cannot contain '/', ':' or white space", name, r)
		}
	}
	return nil
}

func (c *Config) validateVLAN() error {
	vlan, qos := 0, 0
	if c.VLAN != nil {
		vlan = *c.VLAN
	}
	if c.VLANQoS != nil {
		qos = *c.VLANQoS
	}
	if vlan < 0 || vlan > 4094 {
		return invalidConfig("vlan %d is out of range: use 0-4094 (0 for no VLAN)", vlan)
	}
	if qos < 0 || qos > 7 {
		return invalidConfig("vlanQoS %d is out of range: use 0-7", qos)
	}
	if qos != 0 && vlan == 0 {
		return invalidConfig("vlanQoS %d needs a vlan: set vlan to 1-4094, or remove vlanQoS", qos)
	}
	proto := host.VLANProto8021Q
	switch strings.ToLower(c.VLANProto) {
	case "", "802.1q":
	case "802.1ad":
		proto = host.VLANProto8021AD
		if vlan == 0 {
			return invalidConfig(`vlanProto "802.1ad" needs a vlan: set vlan to 1-4094, or remove vlanProto`)
		}
	default:
		return invalidConfig(`vlanProto %q is not supported: use "802.1Q" or "802.1ad"`, c.VLANProto)
	}
	// Like sriov-cni, the VLAN is always set (0 when not asked), so a VF
	// never keeps a tag from a previous user.
	c.VF.VLAN, c.VF.QoS, c.VF.VLANProto = &vlan, qos, proto
	return nil
}

// validateMAC picks the MAC: runtimeConfig.mac, else CNI_ARGS MAC, else
// the configuration's mac.
func (c *Config) validateMAC() error {
	field, s := "mac", c.MAC
	if c.Args.MAC != "" {
		field, s = "CNI_ARGS MAC", c.Args.MAC
	}
	if c.RuntimeConfig.MAC != "" {
		field, s = "runtimeConfig.mac", c.RuntimeConfig.MAC
	}
	if s == "" {
		return nil
	}
	mac, err := net.ParseMAC(s)
	if err == nil && len(mac) != 6 {
		err = errors.New("not a 6-byte Ethernet address")
	}
	if err == nil && mac[0]&1 == 1 {
		err = errors.New("a multicast address cannot be an interface's address")
	}
	if err != nil {
		if field == "CNI_ARGS MAC" {
			return invalidEnv("%s %q is not usable (%v): give a unicast MAC such as 02:00:00:00:00:01", field, s, err)
		}
		return invalidConfig("%s %q is not usable (%v): give a unicast MAC such as 02:00:00:00:00:01", field, s, err)
	}
	c.MACAddr = mac
	ms := mac.String()
	c.VF.MAC = &ms
	return nil
}

// validateIPs checks runtimeConfig.ips, the addresses a pod asks for
// (Multus passes them with the "ips" capability): each an IP address,
// with or without prefix length, and an IPAM plugin to assign them, which
// reads them from the configuration sluice-cni hands it.
func (c *Config) validateIPs() error {
	for i, s := range c.RuntimeConfig.IPs {
		if _, _, err := net.ParseCIDR(s); err != nil && net.ParseIP(s) == nil {
			return invalidConfig("runtimeConfig.ips entry %d, %q, is not an IP address: give addresses such as 10.56.217.20/24 in the pod's k8s.v1.cni.cncf.io/networks \"ips\"", i, s)
		}
	}
	if len(c.RuntimeConfig.IPs) > 0 && c.IPAM.Type == "" {
		return invalidConfig(`runtimeConfig.ips asks for %s but the network has no ipam to assign them: set ipam to {"type": "static"} (a VFNetwork's spec.ipam), or drop "ips" from the pod's request`, strings.Join(c.RuntimeConfig.IPs, ", "))
	}
	return nil
}

func onOffField(field, v string) (*bool, error) {
	switch v {
	case "":
		return nil, nil
	case "on":
		t := true
		return &t, nil
	case "off":
		f := false
		return &f, nil
	}
	return nil, invalidConfig(`%s %q is not valid: use "on" or "off"`, field, v)
}

func (c *Config) validateSwitches() error {
	var err error
	if c.VF.SpoofChk, err = onOffField("spoofchk", c.SpoofChk); err != nil {
		return err
	}
	if c.VF.Trust, err = onOffField("trust", c.Trust); err != nil {
		return err
	}
	switch c.LinkState {
	case "":
	case "auto", "enable", "disable":
		ls := c.LinkState
		c.VF.LinkState = &ls
	default:
		return invalidConfig(`link_state %q is not valid: use "auto", "enable" or "disable"`, c.LinkState)
	}
	return nil
}

func (c *Config) validateRates() error {
	for _, r := range []struct {
		field string
		rate  *int
	}{{"min_tx_rate", c.MinTxRate}, {"max_tx_rate", c.MaxTxRate}} {
		switch {
		case r.rate == nil:
		case *r.rate < 0:
			return invalidConfig("%s %d is negative: give Mbps, 0 for no limit", r.field, *r.rate)
		case int64(*r.rate) > math.MaxUint32:
			// The kernel takes a u32 (IFLA_VF_RATE): more would be cut to
			// its low 32 bits, another rate than asked.
			return invalidConfig("%s %d is above %d, the most the kernel takes: give Mbps, 0 for no limit", r.field, *r.rate, uint32(math.MaxUint32))
		}
	}
	if c.MinTxRate != nil && c.MaxTxRate != nil && *c.MaxTxRate != 0 && *c.MinTxRate > *c.MaxTxRate {
		return invalidConfig("min_tx_rate %d is above max_tx_rate %d: lower min_tx_rate or raise max_tx_rate", *c.MinTxRate, *c.MaxTxRate)
	}
	c.VF.MinTxRate, c.VF.MaxTxRate = c.MinTxRate, c.MaxTxRate
	return nil
}

// Error codes beyond the spec's (100 and up are the plugin's own).
const (
	// ErrVFUnavailable: the VF is attached to another pod, or its netdev
	// is not in the host namespace.
	ErrVFUnavailable uint = 100
)

func invalidConfig(format string, a ...any) error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, a...), "")
}

func invalidEnv(format string, a ...any) error {
	return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf(format, a...), "")
}

func cniError(code uint, format string, a ...any) error {
	return types.NewError(code, fmt.Sprintf(format, a...), "")
}
