package deviceplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// The k8s-rdma-shared-dev-plugin format, taken unchanged:
//
//	{"periodicUpdateInterval": 300, "configList": [{"resourceName": "...",
//	  "resourcePrefix": "...", "rdmaHcaMax": 1000, "devices": ["ib0"],
//	  "selectors": {"vendors", "deviceIDs", "drivers", "ifNames", "linkTypes"}}]}
//
// As that plugin does, the resource advertises rdmaHcaMax units in total
// and each unit hands out the char devices of every selected RDMA device
// (Pool.WholeSet); rdmaHcaMax 0, or none, registers the resource with no
// units.

type rdmaSharedFile struct {
	// PeriodicUpdateInterval is the plugin's rescan period in seconds;
	// sluice rescans on events and on --resync, so it is accepted and unused.
	PeriodicUpdateInterval *int               `json:"periodicUpdateInterval,omitempty"`
	ConfigList             []rdmaSharedConfig `json:"configList"`
}

type rdmaSharedConfig struct {
	ResourceName   string `json:"resourceName"`
	ResourcePrefix string `json:"resourcePrefix,omitempty"`
	RdmaHcaMax     int    `json:"rdmaHcaMax"`
	// Devices is the older spelling of selectors.ifNames.
	Devices   []string           `json:"devices,omitempty"`
	Selectors rdmaSharedSelector `json:"selectors,omitempty"`
}

type rdmaSharedSelector struct {
	Vendors   []string `json:"vendors,omitempty"`
	DeviceIDs []string `json:"deviceIDs,omitempty"`
	Drivers   []string `json:"drivers,omitempty"`
	IfNames   []string `json:"ifNames,omitempty"`
	LinkTypes []string `json:"linkTypes,omitempty"`
}

func parseRDMAShared(data []byte, defaultPrefix string) (*Config, error) {
	if err := checkKeys("", data, reflect.TypeFor[rdmaSharedFile]()); err != nil {
		return nil, err
	}
	var top struct {
		PeriodicUpdateInterval *int              `json:"periodicUpdateInterval"`
		ConfigList             []json.RawMessage `json:"configList"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, valueError("config", err)
	}
	if top.PeriodicUpdateInterval != nil && *top.PeriodicUpdateInterval < 0 {
		return nil, fmt.Errorf("periodicUpdateInterval %d: use 0 or more seconds", *top.PeriodicUpdateInterval)
	}
	c := &Config{Format: FormatRDMAShared}
	for i, raw := range top.ConfigList {
		path := fmt.Sprintf("configList[%d]", i)
		var r rdmaSharedConfig
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, valueError(path, err)
		}
		// As k8s-rdma-shared-dev-plugin: 0 (or none) registers the
		// resource with no units, a negative value is refused.
		if r.RdmaHcaMax < 0 || r.RdmaHcaMax > maxShared {
			return nil, fmt.Errorf("%s.rdmaHcaMax %d: set how many pods may share the selected RDMA devices, 1 to %d (0 advertises none)", path, r.RdmaHcaMax, maxShared)
		}
		p := Pool{Prefix: r.ResourcePrefix, Name: r.ResourceName, SharedMax: r.RdmaHcaMax, WholeSet: true, RDMA: true}
		if p.Prefix == "" {
			p.Prefix = defaultPrefix
		}
		s := r.Selectors
		ifNames := s.IfNames
		if len(r.Devices) > 0 {
			if len(ifNames) > 0 {
				return nil, fmt.Errorf("%s.devices and %s.selectors.ifNames both name interfaces: keep selectors.ifNames only", path, path)
			}
			ifNames = r.Devices
		}
		sel, err := selectorOf(path+".selectors", rawSelector{
			Vendors: s.Vendors, Devices: s.DeviceIDs, Drivers: s.Drivers, IfNames: ifNames, LinkTypes: s.LinkTypes, IsRdma: true,
		})
		if err != nil {
			err = renameField(err, ".selectors.devices", ".selectors.deviceIDs")
			if len(r.Devices) > 0 {
				err = renameField(err, ".selectors.ifNames", ".devices")
			}
			return nil, err
		}
		p.Selectors = []Selector{sel}
		c.Pools = append(c.Pools, p)
	}
	return c, nil
}

// renameField rewrites a field name in an error from a shared helper to
// the name the format uses.
func renameField(err error, from, to string) error {
	return errors.New(strings.Replace(err.Error(), from, to, 1))
}
