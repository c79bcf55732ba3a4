package deviceplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/sluice-net/sluice/api/v1alpha1"
	"k8s.io/apimachinery/pkg/api/validate/content"
)

// DefaultResourcePrefix is the resource prefix of pools that do not set one.
const DefaultResourcePrefix = "sluice.dev"

// Config is the set of pools to serve, whatever format it was written in.
type Config struct {
	// Format names the file format the pools came from.
	Format Format
	Pools  []Pool
}

// Format is a config file format.
type Format string

const (
	// FormatNative is what the node agent writes: {"resourcePrefix", "pools"}.
	FormatNative Format = "native"
	// FormatSRIOVDP is sriov-network-device-plugin's {"resourceList"}.
	FormatSRIOVDP Format = "sriov-network-device-plugin"
	// FormatRDMAShared is k8s-rdma-shared-dev-plugin's {"configList"}.
	FormatRDMAShared Format = "k8s-rdma-shared-dev-plugin"
)

// Pool is one extended resource.
type Pool struct {
	// Prefix and Name make the resource name Prefix/Name.
	Prefix, Name string
	// Driver is the driver class the pool's VFs must be bound to: netdevice,
	// vfio-pci, or empty for any (a VF bound otherwise is Unhealthy).
	Driver v1alpha1.DeviceType
	// Selectors choose the pool's devices: a device belongs to the pool when
	// it matches any of them.
	Selectors []Selector
	// SharedMax above zero makes a shared RDMA pool. Per device (WholeSet
	// false), each selected RDMA device is advertised SharedMax times and a
	// unit hands out that one device.
	SharedMax int
	// WholeSet makes a shared RDMA pool that shares the selected RDMA
	// devices as one set, as k8s-rdma-shared-dev-plugin does: the pool
	// advertises SharedMax units in total ("0" to SharedMax-1; none while
	// no RDMA device is selected, and none ever with SharedMax 0, that
	// plugin's rdmaHcaMax 0) and every unit hands out the char devices of
	// every selected RDMA device, with no environment variable.
	WholeSet bool
	// RDMA hands out the RDMA char devices of the pool's VFs.
	RDMA bool
	// SoftRoCE names every allocated VF as a CDI device (Prefix/Name=<PCI
	// address>) whose spec sluice-cni writes when it creates the pod's
	// soft-RoCE device (package attachment).
	SoftRoCE bool
	// Accelerator pools serve VFs that have no netdev (QAT and the like).
	Accelerator bool
	// NeedVhostNet adds /dev/vhost-net and /dev/net/tun to every allocation.
	NeedVhostNet bool
	// ExcludeTopology leaves NUMA affinity out of the advertised devices.
	ExcludeTopology bool
	// DRA pools are scanned like the others but not registered with the
	// kubelet: the DRA driver publishes their devices in ResourceSlices.
	DRA bool
	// AdditionalInfo is extra device information for the INFO variable,
	// keyed by device ID or "*" for every device (sriov-network-device-plugin's
	// additionalInfo).
	AdditionalInfo map[string]map[string]string
}

// Resource is the pool's extended resource name.
func (p *Pool) Resource() string { return p.Prefix + "/" + p.Name }

// Shared reports whether the pool shares RDMA devices: per device with
// SharedMax above zero, or as a whole set (which may advertise nothing).
func (p *Pool) Shared() bool { return p.SharedMax > 0 || p.WholeSet }

// Selector is one set of conditions; a device must meet every non-empty one.
type Selector struct {
	// Vendors and Devices are PCI IDs, lower-case hex without 0x.
	Vendors, Devices []string
	Drivers          []string
	// PFNames select by PF netdev, optionally a subset of its VFs.
	PFNames []PFName
	// RootDevices are PF PCI addresses.
	RootDevices []string
	// PCIAddresses are the devices' own PCI addresses.
	PCIAddresses []string
	// LinkTypes are "eth" or "ib" (normalised from ether/infiniband).
	LinkTypes []string
	// IfNames are the netdevs of shared RDMA candidates (PF or VF).
	IfNames []string
	// RDMA selects only devices with an RDMA device.
	RDMA bool
}

// PFName is a PF netdev name with an optional set of VF indices.
type PFName struct {
	Name string
	// VFs are inclusive index ranges; nil means every VF.
	VFs []VFRange
}

// VFRange is an inclusive range of VF indices.
type VFRange struct{ First, Last int }

// Has reports whether the VF index is selected.
func (p PFName) Has(index int) bool {
	if p.VFs == nil {
		return true
	}
	for _, r := range p.VFs {
		if index >= r.First && index <= r.Last {
			return true
		}
	}
	return false
}

// ParseConfig parses any of the three formats, told apart by their top-level
// key: "pools" (native), "resourceList" (sriov-network-device-plugin) or
// "configList" (k8s-rdma-shared-dev-plugin).
func ParseConfig(data []byte, defaultPrefix string) (*Config, error) {
	if defaultPrefix == "" {
		defaultPrefix = DefaultResourcePrefix
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("config is empty: write {\"pools\": []} for no pools")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf(`config is a JSON %s, not an object: write {"pools": [...]}, {"resourceList": [...]} or {"configList": [...]}`, te.Value)
		}
		return nil, fmt.Errorf("config is not a JSON object: %w", err)
	}
	var (
		c   *Config
		err error
	)
	switch {
	case hasKey(top, "pools"):
		c, err = parseNative(data, defaultPrefix)
	case hasKey(top, "resourceList"):
		c, err = parseSRIOVDP(data, defaultPrefix)
	case hasKey(top, "configList"):
		c, err = parseRDMAShared(data, defaultPrefix)
	default:
		return nil, errors.New(`config has none of "pools" (sluice), "resourceList" (sriov-network-device-plugin) or "configList" (k8s-rdma-shared-dev-plugin)`)
	}
	if err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// hasKey looks a key up as encoding/json matches fields: exactly, else
// case-insensitively.
func hasKey(m map[string]json.RawMessage, key string) bool {
	for k := range m {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// validate checks what every format shares: resource names are valid and
// unique.
func (c *Config) validate() error {
	seen := map[string]int{}
	for i := range c.Pools {
		p := &c.Pools[i]
		field := c.poolField(i)
		if p.Name == "" {
			return fmt.Errorf("%s.resourceName is empty: name the pool, e.g. \"rdma_a\"", field)
		}
		if errs := content.IsLabelKey(p.Resource()); len(errs) > 0 {
			return fmt.Errorf("%s: resource name %q is not a valid extended resource name (%s): use a DNS prefix and a name of letters, digits, '-', '_' or '.'", field, p.Resource(), strings.Join(errs, "; "))
		}
		if p.Prefix == "kubernetes.io" || strings.HasSuffix(p.Prefix, ".kubernetes.io") {
			return fmt.Errorf("%s.resourcePrefix %q: the kubernetes.io domain is reserved: use your own, e.g. %q", field, p.Prefix, DefaultResourcePrefix)
		}
		if j, dup := seen[p.Resource()]; dup {
			return fmt.Errorf("%s: resource %q is already defined by %s: give one of them another resourceName", field, p.Resource(), c.poolField(j))
		}
		seen[p.Resource()] = i
	}
	return nil
}

func (c *Config) poolField(i int) string {
	switch c.Format {
	case FormatSRIOVDP:
		return fmt.Sprintf("resourceList[%d]", i)
	case FormatRDMAShared:
		return fmt.Sprintf("configList[%d]", i)
	}
	if c.Pools[i].DRA {
		// The native format lists DRA pools after the others.
		first := slices.IndexFunc(c.Pools, func(p Pool) bool { return p.DRA })
		return fmt.Sprintf("draPools[%d]", i-first)
	}
	return fmt.Sprintf("pools[%d]", i)
}

var (
	pciIDRe   = regexp.MustCompile(`^[0-9a-f]{4}$`)
	pciAddrRe = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
)

// pciIDs normalises PCI vendor or device IDs ("0x15B3" -> "15b3").
func pciIDs(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, s := range in {
		v := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "0x")
		if !pciIDRe.MatchString(v) {
			return nil, fmt.Errorf("%s[%d] %q is not a PCI ID: use 4 hex digits, e.g. \"15b3\"", field, i, s)
		}
		out = append(out, v)
	}
	return out, nil
}

// pciAddresses normalises PCI addresses to lower case.
func pciAddresses(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, s := range in {
		v := strings.ToLower(strings.TrimSpace(s))
		if !pciAddrRe.MatchString(v) {
			return nil, fmt.Errorf("%s[%d] %q is not a PCI address: use domain:bus:device.function, e.g. \"0000:3b:00.0\"", field, i, s)
		}
		out = append(out, v)
	}
	return out, nil
}

// linkTypes normalises link types to the host layer's "eth" and "ib".
func linkTypes(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, s := range in {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "ether", "eth", "ethernet":
			out = append(out, "eth")
		case "infiniband", "ib":
			out = append(out, "ib")
		default:
			return nil, fmt.Errorf("%s[%d] %q is not a link type: use \"ether\" or \"infiniband\"", field, i, s)
		}
	}
	return out, nil
}

// names checks a list of names (drivers, netdevs) has no empty entry.
func names(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("%s[%d] is empty: remove it or name one", field, i)
		}
		out = append(out, s)
	}
	return out, nil
}

// netdevs checks a list of network interface names.
func netdevs(field string, in []string) ([]string, error) {
	out, err := names(field, in)
	if err != nil {
		return nil, err
	}
	for i, s := range out {
		if err := netdevName(s); err != nil {
			return nil, fmt.Errorf("%s[%d] %q %w: write the netdev's name, e.g. \"ib0\"", field, i, s, err)
		}
	}
	return out, nil
}

// netdevName checks a network interface name as the kernel does
// (dev_valid_name): a name it refuses can never select a device.
func netdevName(s string) error {
	switch {
	case len(s) > 15:
		return fmt.Errorf("is %d bytes long, more than the kernel's 15", len(s))
	case s == "." || s == "..":
		return errors.New("is not an interface name")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '/', ':', ' ', '\t', '\n', '\v', '\f', '\r', 0:
			return fmt.Errorf("holds %q, which interface names cannot", c)
		}
	}
	return nil
}

// pfNames parses "ens1f0", "ens1f0#0-3" and "ens1f0#0,2-7,9".
func pfNames(field string, in []string) ([]PFName, error) {
	out := make([]PFName, 0, len(in))
	for i, s := range in {
		p, err := parsePFName(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePFName(s string) (PFName, error) {
	name, list, hasRange := strings.Cut(strings.TrimSpace(s), "#")
	if name == "" {
		return PFName{}, fmt.Errorf("%q has no PF name: write e.g. \"ens1f0\" or \"ens1f0#0-3\"", s)
	}
	if err := netdevName(name); err != nil {
		return PFName{}, fmt.Errorf("%q: PF name %q %w: write the PF's netdev name, e.g. \"ens1f0\" or \"ens1f0#0-3\"", s, name, err)
	}
	p := PFName{Name: name}
	if !hasRange {
		return p, nil
	}
	p.VFs = []VFRange{}
	for _, part := range strings.Split(list, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		if !isRange {
			b = a
		}
		first, err1 := atoiStrict(a)
		last, err2 := atoiStrict(b)
		if err1 != nil || err2 != nil || last < first {
			return PFName{}, fmt.Errorf("VF list %q in %q: write VF indices and first-last ranges with first <= last, e.g. \"ens1f0#0,2-7\"", list, s)
		}
		p.VFs = append(p.VFs, VFRange{First: first, Last: last})
	}
	return p, nil
}

func atoiStrict(s string) (int, error) {
	if s == "" || len(s) > 4 {
		return 0, errors.New("bad index")
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("bad index")
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}
