package deviceplugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-net/sluice/api/v1alpha1"
	"k8s.io/apimachinery/pkg/api/validate/content"
)

// Fuzz targets for the device plugin's config file, one per format so that
// each gets its own corpus and fuzzing time; all three go through
// ParseConfig and check the same properties (checkParse). Seeds are in
// testdata/fuzz/<target>.

// FuzzParseConfigNative: {"resourcePrefix", "pools"}, what the node agent
// writes from its NodeNetworkState.
func FuzzParseConfigNative(f *testing.F) {
	f.Add([]byte(`{"resourcePrefix":"sluice.dev","pools":[{"resourceName":"rdma_a","deviceType":"netdevice","selectors":{"pfNames":["ens1f0#0-3","ens1f1"],"linkTypes":["ether"],"isRdma":true}},{"resourceName":"hca","rdmaHcaMax":100,"selectors":{"pfNames":["ens1f0"]}},{"resourceName":"all","rdmaHcaMax":8,"rdmaSharing":"WholeSet","selectors":{"ifNames":["ib0"],"linkTypes":["infiniband"]}}]}`), "")
	f.Add([]byte(`{"pools":[{"resourceName":"igb-roce","deviceType":"netdevice","softRoCE":true,"selectors":{"vendors":["8086"],"devices":["10ca"],"rootDevices":["0000:00:04.0"]}}]}`), "example.com")
	f.Fuzz(checkParse)
}

// FuzzParseConfigSRIOVDP: sriov-network-device-plugin's {"resourceList"}.
func FuzzParseConfigSRIOVDP(f *testing.F) {
	f.Add([]byte(`{"resourceList":[{"resourceName":"intel_sriov_netdevice","selectors":{"vendors":["8086"],"devices":["154c","10ed"],"drivers":["i40evf","ixgbevf"]}},{"resourceName":"mlnx_sriov_rdma","resourcePrefix":"mellanox.com","isRdma":true,"selectors":{"vendors":["15b3"],"devices":["1018"],"drivers":["mlx5_ib"]}}]}`), "intel.com")
	f.Add([]byte(`{"resourceList":[{"resourceName":"qat","deviceType":"accelerator","selectors":[{"vendors":["8086"],"devices":["37c9"],"drivers":["vfio-pci"]}],"additionalInfo":{"*":{"net":"a"}}}]}`), "")
	f.Fuzz(checkParse)
}

// FuzzParseConfigRDMAShared: k8s-rdma-shared-dev-plugin's {"configList"}.
func FuzzParseConfigRDMAShared(f *testing.F) {
	f.Add([]byte(`{"periodicUpdateInterval":300,"configList":[{"resourceName":"hca_shared_devices_a","rdmaHcaMax":1000,"devices":["ib0","ib1"]},{"resourceName":"hca_shared_devices_b","resourcePrefix":"nvidia.com","rdmaHcaMax":500,"selectors":{"vendors":["15b3"],"deviceIDs":["1017"],"drivers":["mlx5_core"],"ifNames":["ib3","ib4"],"linkTypes":["infiniband"]}}]}`), "rdma")
	f.Fuzz(checkParse)
}

// checkParse is the property every format shares. A refusal names where the
// fault is, from the top of the file, in the file's own terms; an accepted
// file gives pools that hold the invariants the device plugin relies on,
// and written back out in its format parses to the same pools.
func checkParse(t *testing.T, data []byte, defaultPrefix string) {
	c, err := ParseConfig(data, defaultPrefix)
	// ParseConfig trims white space (bytes.TrimSpace, wider than JSON's).
	var top map[string]json.RawMessage
	isObject := json.Unmarshal(bytes.TrimSpace(data), &top) == nil && top != nil
	if err != nil {
		checkParseError(t, data, err, top, isObject)
		return
	}
	if defaultPrefix == "" {
		defaultPrefix = DefaultResourcePrefix
	}

	// The format is the top-level key's, and every list entry is a pool.
	key := map[Format]string{FormatNative: "pools", FormatSRIOVDP: "resourceList", FormatRDMAShared: "configList"}[c.Format]
	var entries []json.RawMessage
	for k, v := range top {
		if strings.EqualFold(k, key) {
			entries = nil
			_ = json.Unmarshal(v, &entries)
		}
	}
	if key == "" || len(entries) != len(c.Pools) {
		t.Fatalf("format %q with %d pools from %d entries", c.Format, len(c.Pools), len(entries))
	}
	checkPools(t, c)

	// Written back out in its own format: the same pools.
	out, err := encodeConfig(c)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	c2, err := ParseConfig(out, defaultPrefix)
	if err != nil {
		t.Fatalf("the pools of\n%s\nwritten back out as\n%s\nare refused: %v", data, out, err)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip through\n%s\n%+v\nbecame\n%+v", out, c.Pools, c2.Pools)
	}
}

// goTypeRE matches Go type names in a message meant for whoever writes the
// config.
var goTypeRE = regexp.MustCompile(`\b(v1alpha1|deviceplugin|json|reflect)\.[A-Z]\w*|struct \{|map\[|\[\][a-z*]`)

// checkParseError: the message starts with where the fault is: "config" or
// a top-level key of the file (pools[2].selectors.vendors[0], ...).
func checkParseError(t *testing.T, data []byte, err error, top map[string]json.RawMessage, isObject bool) {
	t.Helper()
	msg := err.Error()
	// Keys and values of the file appear in messages as written.
	if goType := goTypeRE.FindString(msg); goType != "" && !bytes.Contains(data, []byte(goType)) {
		t.Fatalf("error %q names the Go type %q, not what to write", msg, goType)
	}
	if strings.HasPrefix(msg, "config ") || strings.HasPrefix(msg, "config:") || strings.HasPrefix(msg, "config.") {
		return
	}
	if !isObject {
		t.Fatalf("error %q for a file that is not a JSON object does not say so", msg)
	}
	for k := range top {
		if len(msg) > len(k) && strings.EqualFold(msg[:len(k)], k) && strings.ContainsRune(".[: ", rune(msg[len(k)])) {
			return
		}
	}
	t.Fatalf("error %q does not start with the field at fault", msg)
}

var (
	hexIDRE = regexp.MustCompile(`^[0-9a-f]{4}$`)
	pciRE   = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
)

// isNetdevName: a name the kernel gives an interface (IFNAMSIZ, dev_valid_name).
func isNetdevName(s string) bool {
	return len(s) >= 1 && len(s) <= 15 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\v\f\r\x00")
}

// checkPools checks the invariants the device plugin relies on.
func checkPools(t *testing.T, c *Config) {
	t.Helper()
	seen := map[string]bool{}
	for i, p := range c.Pools {
		fail := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("pool %d (%+v): %s", i, p, fmt.Sprintf(format, a...))
		}
		if p.Name == "" || len(content.IsLabelKey(p.Resource())) > 0 || seen[p.Resource()] {
			fail("resource %q empty, invalid or repeated", p.Resource())
		}
		seen[p.Resource()] = true
		if p.Prefix == "kubernetes.io" || strings.HasSuffix(p.Prefix, ".kubernetes.io") {
			fail("reserved prefix")
		}
		switch p.Driver {
		case "", v1alpha1.DeviceTypeNetdevice, v1alpha1.DeviceTypeVfioPci:
		default:
			fail("driver %q", p.Driver)
		}
		if p.SharedMax < 0 || p.SharedMax > maxShared {
			fail("SharedMax %d", p.SharedMax)
		}
		if p.Shared() && (!p.RDMA || p.Driver != "" || p.SoftRoCE || p.Accelerator) {
			fail("a shared RDMA pool must be RDMA, of any driver, not soft-RoCE nor accelerator")
		}
		if c.Format == FormatRDMAShared && !p.Shared() {
			fail("a k8s-rdma-shared-dev-plugin pool is shared")
		}
		if p.SoftRoCE && (p.Driver == v1alpha1.DeviceTypeVfioPci || p.Selectors[0].RDMA) {
			fail("soft-RoCE with vfio-pci or isRdma")
		}
		if p.Accelerator && (p.RDMA || p.NeedVhostNet) {
			fail("an accelerator pool with RDMA or vhost-net")
		}
		if (p.Accelerator || p.NeedVhostNet || p.ExcludeTopology || p.AdditionalInfo != nil) && c.Format != FormatSRIOVDP {
			fail("sriov-network-device-plugin settings in format %q", c.Format)
		}
		if len(p.Selectors) == 0 {
			fail("no selector")
		}
		anyRDMA := false
		for _, s := range p.Selectors {
			anyRDMA = anyRDMA || s.RDMA
			if p.Shared() && !s.RDMA {
				fail("a shared pool's selector without RDMA")
			}
			for _, l := range [][]string{s.Vendors, s.Devices} {
				for _, v := range l {
					if !hexIDRE.MatchString(v) {
						fail("PCI ID %q", v)
					}
				}
			}
			for _, l := range [][]string{s.RootDevices, s.PCIAddresses} {
				for _, v := range l {
					if !pciRE.MatchString(v) {
						fail("PCI address %q", v)
					}
				}
			}
			for _, v := range s.LinkTypes {
				if v != "eth" && v != "ib" {
					fail("link type %q", v)
				}
			}
			for _, v := range s.Drivers {
				if v == "" || v != strings.TrimSpace(v) {
					fail("driver %q", v)
				}
			}
			// A netdev name that cannot exist selects nothing: it is a
			// typo the file's author should hear about.
			for _, v := range s.IfNames {
				if !isNetdevName(v) {
					fail("ifName %q is not a netdev name", v)
				}
			}
			for _, pf := range s.PFNames {
				if !isNetdevName(pf.Name) || strings.Contains(pf.Name, "#") {
					fail("pfName %q is not a netdev name", pf.Name)
				}
				if pf.VFs != nil && len(pf.VFs) == 0 {
					fail("pfName %q with an empty VF list", pf.Name)
				}
				for _, r := range pf.VFs {
					if r.First < 0 || r.First > r.Last {
						fail("pfName %q VF range %d-%d", pf.Name, r.First, r.Last)
					}
				}
			}
		}
		if p.RDMA != anyRDMA {
			fail("pool RDMA %v, its selectors' %v", p.RDMA, anyRDMA)
		}
	}
}

// encodeConfig writes pools back out in the format they came from, every
// value explicit (prefixes, selectors as lists).
func encodeConfig(c *Config) ([]byte, error) {
	switch c.Format {
	case FormatNative:
		f := NativeFile{Pools: []v1alpha1.DevicePluginPool{}}
		for _, p := range c.Pools {
			s := p.Selectors[0]
			var sharing v1alpha1.RDMASharing
			if p.WholeSet {
				sharing = v1alpha1.RDMASharingWholeSet
			}
			f.Pools = append(f.Pools, v1alpha1.DevicePluginPool{
				ResourceName: p.Name, ResourcePrefix: p.Prefix, DeviceType: p.Driver,
				RDMAHcaMax: int32(p.SharedMax), RDMASharing: sharing, SoftRoCE: p.SoftRoCE,
				Selectors: v1alpha1.PoolSelectors{
					Vendors: s.Vendors, Devices: s.Devices, Drivers: s.Drivers, PFNames: encodePFNames(s.PFNames),
					RootDevices: s.RootDevices, LinkTypes: encodeLinkTypes(s.LinkTypes), IfNames: s.IfNames, IsRdma: s.RDMA,
				},
			})
		}
		return json.Marshal(f)
	case FormatSRIOVDP:
		f := sriovdpFile{ResourceList: []sriovdpResource{}}
		for _, p := range c.Pools {
			r := sriovdpResource{ResourcePrefix: p.Prefix, ResourceName: p.Name, DeviceType: "netDevice",
				ExcludeTopology: p.ExcludeTopology, AdditionalInfo: p.AdditionalInfo}
			if p.Accelerator {
				r.DeviceType = "accelerator"
			}
			for _, s := range p.Selectors {
				r.Selectors = append(r.Selectors, sriovdpSelector{
					Vendors: s.Vendors, Devices: s.Devices, Drivers: s.Drivers, PciAddresses: s.PCIAddresses,
					PfNames: encodePFNames(s.PFNames), RootDevices: s.RootDevices, LinkTypes: encodeLinkTypes(s.LinkTypes),
					IsRdma: s.RDMA, NeedVhostNet: p.NeedVhostNet,
				})
			}
			f.ResourceList = append(f.ResourceList, r)
		}
		return json.Marshal(f)
	case FormatRDMAShared:
		f := rdmaSharedFile{ConfigList: []rdmaSharedConfig{}}
		for _, p := range c.Pools {
			s := p.Selectors[0]
			f.ConfigList = append(f.ConfigList, rdmaSharedConfig{
				ResourceName: p.Name, ResourcePrefix: p.Prefix, RdmaHcaMax: p.SharedMax,
				Selectors: rdmaSharedSelector{Vendors: s.Vendors, DeviceIDs: s.Devices, Drivers: s.Drivers,
					IfNames: s.IfNames, LinkTypes: encodeLinkTypes(s.LinkTypes)},
			})
		}
		return json.Marshal(f)
	}
	return nil, fmt.Errorf("format %q", c.Format)
}

func encodePFNames(pfs []PFName) []string {
	out := []string{}
	for _, pf := range pfs {
		s := pf.Name
		if pf.VFs != nil {
			var rs []string
			for _, r := range pf.VFs {
				rs = append(rs, fmt.Sprintf("%d-%d", r.First, r.Last))
			}
			s += "#" + strings.Join(rs, ",")
		}
		out = append(out, s)
	}
	return out
}

func encodeLinkTypes(l []string) []string {
	out := []string{}
	for _, v := range l {
		out = append(out, map[string]string{"eth": "ether", "ib": "infiniband"}[v])
	}
	return out
}
