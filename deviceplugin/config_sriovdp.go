package deviceplugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// The sriov-network-device-plugin format, taken unchanged so that an
// existing ConfigMap keeps working:
//
//	{"resourceList": [{"resourceName": "...", "resourcePrefix": "...",
//	  "deviceType": "netDevice"|"accelerator", "excludeTopology": false,
//	  "selectors": {...} or [{...}, ...], "additionalInfo": {...}}]}
//
// Its decoder is encoding/json, which matches keys case-insensitively, so
// configs written as "IsRdma" or "NeedVhostNet" are accepted the same way.

type sriovdpFile struct {
	ResourceList []sriovdpResource `json:"resourceList"`
}

type sriovdpResource struct {
	ResourcePrefix  string                       `json:"resourcePrefix,omitempty"`
	ResourceName    string                       `json:"resourceName"`
	DeviceType      string                       `json:"deviceType,omitempty"`
	ExcludeTopology bool                         `json:"excludeTopology,omitempty"`
	Selectors       sriovdpSelectors             `json:"selectors,omitempty"`
	AdditionalInfo  map[string]map[string]string `json:"additionalInfo,omitempty"`
	// IsRdma at the resource level is the format's first placement of it.
	IsRdma bool `json:"isRdma,omitempty"`
	// SelectorObj(s) are the plugin's own in-memory fields, which its
	// encoder writes back as null; they carry nothing.
	SelectorObj  json.RawMessage `json:"SelectorObj,omitempty" sluice:"ignore"`
	SelectorObjs json.RawMessage `json:"SelectorObjs,omitempty" sluice:"ignore"`
}

type sriovdpSelector struct {
	Vendors      []string `json:"vendors,omitempty"`
	Devices      []string `json:"devices,omitempty"`
	Drivers      []string `json:"drivers,omitempty"`
	PciAddresses []string `json:"pciAddresses,omitempty"`
	PfNames      []string `json:"pfNames,omitempty"`
	RootDevices  []string `json:"rootDevices,omitempty"`
	LinkTypes    []string `json:"linkTypes,omitempty"`
	IsRdma       bool     `json:"isRdma,omitempty"`
	NeedVhostNet bool     `json:"needVhostNet,omitempty"`
	// Selectors sluice cannot evaluate: accepted when empty, refused
	// otherwise, since ignoring them would select more devices than asked.
	DDPProfiles []string `json:"ddpProfiles,omitempty"`
	VdpaType    string   `json:"vdpaType,omitempty"`
	PKeys       []string `json:"pKeys,omitempty"`
	AcpiIndexes []string `json:"acpiIndexes,omitempty"`
	AuxTypes    []string `json:"auxTypes,omitempty"`
}

// sriovdpSelectors is "selectors": one object (older versions) or a list
// of objects (newer ones), a device matching any of them.
type sriovdpSelectors []sriovdpSelector

func (s *sriovdpSelectors) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var one sriovdpSelector
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = sriovdpSelectors{one}
		return nil
	}
	var list []sriovdpSelector
	if err := json.Unmarshal(b, &list); err != nil {
		return err
	}
	*s = list
	return nil
}

func (s *sriovdpSelectors) checkKeys(path string, raw json.RawMessage) error {
	t := reflect.TypeFor[sriovdpSelector]()
	switch jsonKind(raw) {
	case "an object":
		return checkKeys(path, raw, t)
	case "a list":
		return checkKeys(path, raw, reflect.TypeFor[[]sriovdpSelector]())
	}
	return fmt.Errorf("%s: got %s, want a selector object or a list of them", path, jsonKind(raw))
}

func parseSRIOVDP(data []byte, defaultPrefix string) (*Config, error) {
	if err := checkKeys("", data, reflect.TypeFor[sriovdpFile]()); err != nil {
		return nil, err
	}
	var top struct {
		ResourceList []json.RawMessage `json:"resourceList"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, valueError("config", err)
	}
	c := &Config{Format: FormatSRIOVDP}
	for i, raw := range top.ResourceList {
		path := fmt.Sprintf("resourceList[%d]", i)
		var r sriovdpResource
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, valueError(path, err)
		}
		p, err := sriovdpPool(path, r, defaultPrefix)
		if err != nil {
			return nil, err
		}
		c.Pools = append(c.Pools, p)
	}
	return c, nil
}

func sriovdpPool(path string, r sriovdpResource, defaultPrefix string) (Pool, error) {
	p := Pool{Prefix: r.ResourcePrefix, Name: r.ResourceName, ExcludeTopology: r.ExcludeTopology, RDMA: r.IsRdma}
	if p.Prefix == "" {
		p.Prefix = defaultPrefix
	}
	accel := false
	switch strings.ToLower(r.DeviceType) {
	case "", "netdevice":
	case "accelerator":
		accel = true
	case "auxnetdevice":
		return Pool{}, fmt.Errorf("%s.deviceType %q: sluice serves PCI VFs, not auxiliary devices (subfunctions): use \"netDevice\" or \"accelerator\"", path, r.DeviceType)
	default:
		return Pool{}, fmt.Errorf("%s.deviceType %q: use \"netDevice\" or \"accelerator\"", path, r.DeviceType)
	}
	p.Accelerator = accel
	if accel && r.IsRdma {
		return Pool{}, fmt.Errorf("%s.isRdma applies to netDevice pools, not accelerator ones: remove it or set deviceType to netDevice", path)
	}
	if len(r.AdditionalInfo) > 0 {
		p.AdditionalInfo = r.AdditionalInfo
	}
	if len(r.Selectors) == 0 {
		// No selectors: every VF, as the plugin does.
		r.Selectors = sriovdpSelectors{{}}
	}
	for j, rs := range r.Selectors {
		spath := path + ".selectors"
		if len(r.Selectors) > 1 {
			spath = fmt.Sprintf("%s[%d]", spath, j)
		}
		if err := unsupportedSelectors(spath, rs); err != nil {
			return Pool{}, err
		}
		if accel {
			for name, set := range map[string]bool{"pfNames": len(rs.PfNames) > 0, "rootDevices": len(rs.RootDevices) > 0,
				"linkTypes": len(rs.LinkTypes) > 0, "isRdma": rs.IsRdma, "needVhostNet": rs.NeedVhostNet} {
				if set {
					return Pool{}, fmt.Errorf("%s.%s applies to netDevice pools, not accelerator ones: remove it or set deviceType to netDevice", spath, name)
				}
			}
		}
		sel, err := selectorOf(spath, rawSelector{
			Vendors: rs.Vendors, Devices: rs.Devices, Drivers: rs.Drivers, PFNames: rs.PfNames,
			RootDevices: rs.RootDevices, PCIAddresses: rs.PciAddresses, LinkTypes: rs.LinkTypes,
			IsRdma: rs.IsRdma || r.IsRdma,
		})
		if err != nil {
			return Pool{}, err
		}
		p.Selectors = append(p.Selectors, sel)
		p.RDMA = p.RDMA || rs.IsRdma
		p.NeedVhostNet = p.NeedVhostNet || rs.NeedVhostNet
	}
	return p, nil
}

func unsupportedSelectors(path string, s sriovdpSelector) error {
	switch {
	case len(s.DDPProfiles) > 0:
		return fmt.Errorf("%s.ddpProfiles: sluice does not read Intel DDP profiles: remove the selector and select the VFs by pfNames or rootDevices", path)
	case s.VdpaType != "":
		return fmt.Errorf("%s.vdpaType: sluice does not serve vDPA devices: remove the selector (and the pool if it is vDPA only)", path)
	case len(s.PKeys) > 0:
		return fmt.Errorf("%s.pKeys: sluice does not read InfiniBand partition keys: remove the selector and select the VFs by pfNames or rootDevices", path)
	case len(s.AcpiIndexes) > 0:
		return fmt.Errorf("%s.acpiIndexes: sluice does not read ACPI indexes: remove the selector and select the PFs by rootDevices or pfNames", path)
	case len(s.AuxTypes) > 0:
		return fmt.Errorf("%s.auxTypes: sluice serves PCI VFs, not auxiliary devices: remove the selector", path)
	}
	return nil
}
