package migrate

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluice-net/sluice/deviceplugin"
)

// The resource prefixes the incumbents' device plugins use when a
// resource does not set one.
const (
	SNDPDefaultPrefix = "intel.com"
	RSDPDefaultPrefix = "rdma"
)

// CheckDevicePluginConfigMap checks a ConfigMap holding a
// sriov-network-device-plugin ("resourceList") or
// k8s-rdma-shared-dev-plugin ("configList") config against sluice's device
// plugin, which reads both formats unchanged: one entry per resource, or
// the parser's error naming the field.
func CheckDevicePluginConfigMap(in *Object, _ Options, c *conv) error {
	data, _, err := unstructured.NestedStringMap(in.U.Object, "data")
	if err != nil {
		return c.refuse("data", fmt.Sprintf("not a map of strings: %v", err))
	}
	found := false
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
			return c.refuse(field, fmt.Sprintf("%s config that sluice's device plugin refuses: %v", plugin, err))
		}
		run := fmt.Sprintf("sluice device-plugin --config-file <this file> --resource-prefix %s", prefix)
		for _, p := range cfg.Pools {
			res := p.Prefix + "/" + p.Name
			switch {
			case p.SharedMax > 0:
				c.add(fmt.Sprintf("%s: configList[%s]", field, p.Name), Changed, run,
					fmt.Sprintf("%s is served from this config unchanged, but shared differently: sluice advertises rdmaHcaMax (%d) units per matched RDMA device and gives one device per unit, where k8s-rdma-shared-dev-plugin advertises %d units for the resource and gives every matched device with each; a pool matching several HCAs (multi-rail) hands a pod fewer of them", res, p.SharedMax, p.SharedMax))
			default:
				c.add(fmt.Sprintf("%s: resourceList[%s]", field, p.Name), Mapped, run, res+" is served from this config unchanged (docs/migrating.md lists what differs in the devices' environment and files)")
			}
		}
		if _, ok := top["periodicUpdateInterval"]; ok {
			c.add(field+": periodicUpdateInterval", Changed, "", "accepted and unused: sluice's device plugin rescans on link events and on its --resync period")
		}
	}
	if !found {
		c.add("data", Unsupported, "", `holds no sriov-network-device-plugin ("resourceList") or k8s-rdma-shared-dev-plugin ("configList") config; skipped`)
	}
	return nil
}
