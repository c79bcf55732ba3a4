package migrate

import (
	"encoding/json"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin"
)

// The resource prefixes the incumbents' device plugins use when a
// resource does not set one.
const (
	SNDPDefaultPrefix = "intel.com"
	RSDPDefaultPrefix = "rdma"
)

// convertDevicePluginConfigMap converts a ConfigMap holding a
// sriov-network-device-plugin ("resourceList") or
// k8s-rdma-shared-dev-plugin ("configList") config. Each
// k8s-rdma-shared-dev-plugin resource becomes a NetworkNodePolicy with
// sharedRdma (convertRSDP). A sriov-network-device-plugin config is checked
// against sluice's device plugin, which reads it unchanged: one entry per
// resource. A config the device plugin refuses is refused, naming the
// field.
func convertDevicePluginConfigMap(in *Object, opts Options, c *conv) ([]*sluicev1.NetworkNodePolicy, error) {
	opts = opts.withDefaults()
	data, _, err := unstructured.NestedStringMap(in.U.Object, "data")
	if err != nil {
		return nil, c.refuse("data", fmt.Sprintf("not a map of strings: %v", err))
	}
	found := false
	var policies []*sluicev1.NetworkNodePolicy
	for _, key := range sortedKeys(data) {
		var top map[string]json.RawMessage
		if json.Unmarshal([]byte(data[key]), &top) != nil {
			continue
		}
		field := "data." + key
		var prefix, plugin string
		switch {
		case top["resourceList"] != nil:
			prefix, plugin = SNDPDefaultPrefix, "sriov-network-device-plugin"
		case top["configList"] != nil:
			prefix, plugin = RSDPDefaultPrefix, "k8s-rdma-shared-dev-plugin"
		default:
			continue
		}
		found = true
		cfg, err := deviceplugin.ParseConfig([]byte(data[key]), prefix)
		if err != nil {
			return nil, c.refuse(field, fmt.Sprintf("%s config that sluice's device plugin refuses: %v", plugin, err))
		}
		listKey := "resourceList"
		if prefix == RSDPDefaultPrefix {
			listKey = "configList"
		}
		var resources []map[string]json.RawMessage
		_ = json.Unmarshal(top[listKey], &resources)
		if prefix == RSDPDefaultPrefix {
			ps, err := convertRSDP(field, cfg, resources, opts, c)
			if err != nil {
				return nil, err
			}
			policies = append(policies, ps...)
		} else {
			run := fmt.Sprintf("sluice device-plugin --config-file <this file> --resource-prefix %s", prefix)
			for i, p := range cfg.Pools {
				at := fmt.Sprintf("%s: %s[%s]", field, listKey, p.Name)
				c.add(at, Mapped, run, fmt.Sprintf("served as %s from this config unchanged", p.Prefix+"/"+p.Name))
				if i < len(resources) {
					reportResourceFields(at, resources[i], p.SharedMax, c)
				}
			}
		}
		if _, ok := top["periodicUpdateInterval"]; ok {
			c.add(field+": periodicUpdateInterval", Changed, "", "accepted and unused: sluice's device plugin rescans on link events and on its --resync period")
		}
	}
	if !found {
		c.add("data", Unsupported, "", `holds no sriov-network-device-plugin ("resourceList") or k8s-rdma-shared-dev-plugin ("configList") config; skipped`)
	}
	return policies, nil
}

// reportResourceFields records each key of one resource (and of its
// selectors) that sluice's device plugin accepted: what differs from the
// incumbent is changed, the rest mapped.
func reportResourceFields(at string, r map[string]json.RawMessage, sharedMax int, c *conv) {
	for _, k := range sortedKeys(r) {
		f := at + "." + k
		switch k {
		case "selectors":
			reportSelectors(f, r[k], c)
		case "rdmaHcaMax":
			c.add(f, Mapped, "", fmt.Sprintf("%d units for the resource, each with the char devices of every matched RDMA device, as k8s-rdma-shared-dev-plugin gives them", sharedMax))
		case "devices":
			c.add(f, Mapped, "", "the older spelling of selectors.ifNames")
		case "additionalInfo":
			var info map[string]json.RawMessage
			_ = json.Unmarshal(r[k], &info)
			if len(info) == 0 {
				c.add(f, Changed, "", `empty: the INFO variable gets no "extra" map, where sriov-network-device-plugin gives "extra": {}`)
			} else {
				c.add(f, Mapped, "", `in the INFO variable's "extra" map`)
			}
		default:
			c.add(f, Mapped, "", "")
		}
	}
}

// reportSelectors records the keys of "selectors": one object or a list.
func reportSelectors(at string, raw json.RawMessage, c *conv) {
	var list []map[string]json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		var one map[string]json.RawMessage
		if json.Unmarshal(raw, &one) != nil {
			return
		}
		reportSelector(at, one, c)
		return
	}
	for i, sel := range list {
		reportSelector(fmt.Sprintf("%s[%d]", at, i), sel, c)
	}
}

func reportSelector(at string, sel map[string]json.RawMessage, c *conv) {
	for _, k := range sortedKeys(sel) {
		f := at + "." + k
		switch k {
		case "drivers":
			var drivers []string
			_ = json.Unmarshal(sel[k], &drivers)
			if slices.Contains(drivers, "uio_pci_generic") {
				c.add(f, Changed, "", "uio_pci_generic: matched, and sluice hands such devices /dev/uioN and a \"uio\" INFO entry, as sriov-network-device-plugin does for igb_uio only (it gives uio_pci_generic devices neither)")
				continue
			}
			c.add(f, Mapped, "", "")
		case "ddpProfiles", "vdpaType", "pKeys", "acpiIndexes", "auxTypes":
			c.add(f, Mapped, "", "empty: selects nothing more (sluice refuses it set, as it cannot evaluate it)")
		default:
			c.add(f, Mapped, "", "")
		}
	}
}
