package migrate

import (
	"fmt"
	"strings"
)

const operatorConfigKind = "SriovOperatorConfig"

// convertOperatorConfig reports how each field of an SriovOperatorConfig
// (SNO v1.6 api/v1 fields) maps onto sluice's operator flags; it makes no
// object.
func convertOperatorConfig(in *Object, c *conv) error {
	spec, ok, err := specOf(in)
	if err != nil {
		return c.refuse("spec", err.Error())
	}
	if !ok {
		c.add("spec", Mapped, "", "absent: SNO's defaults, which sluice's match")
		return nil
	}
	bad := func(err error) error { return c.refuse(fieldOf(err, spec), err.Error()) }

	if v, ok, err := spec.stringMap("configDaemonNodeSelector"); err != nil {
		return bad(err)
	} else if ok && len(v) > 0 {
		c.add("spec.configDaemonNodeSelector", Changed, "operator --node-selector", fmt.Sprintf("operator flag --node-selector=%s: the nodes sluice's agent DaemonSet runs on", joinMap(v)))
	}
	flags := []struct {
		key, on, off string
		st           Status
		target       string
	}{
		{"enableInjector", "sluice has no network-resources-injector: pods must request the pool's resource themselves (resources.limits: <prefix>/<resourceName>: 1) next to their networks annotation", "", Unsupported, ""},
		{"enableOperatorWebhook", "sluice validates its objects with the CRDs' schemas and CEL rules and a ValidatingAdmissionPolicy (config/admission); there is no webhook to enable", "", Changed, ""},
		{"disableDrain", "sluice's agent always drains a node before changing VFs that pods use; to avoid drains, change policies only where no pod uses the VFs, or try the change with spec.dryRun first", "", Unsupported, ""},
		{"enableOvsOffload", "OVS hardware offload needs switchdev, which sluice does not configure; keep offloaded PFs under SNO", "", Unsupported, ""},
		{"useCDI", "operator flag --node-cdi: the agent's device plugin hands devices out as CDI names", "", Changed, "operator --node-cdi"},
	}
	for _, f := range flags {
		v, ok, err := spec.boolean(f.key)
		if err != nil {
			return bad(err)
		}
		switch {
		case !ok:
		case v:
			c.add("spec."+f.key, f.st, f.target, f.on)
		default:
			c.add("spec."+f.key, Mapped, "", "false: nothing to carry over")
		}
	}
	if v, ok, err := spec.integer("logLevel"); err != nil {
		return bad(err)
	} else if ok {
		c.add("spec.logLevel", Changed, "operator --log-level", fmt.Sprintf("operator flag --log-level=%d (verbosity: V(0) to V(%d) messages, as JSON lines on stderr)", v, v))
	}
	if v, ok, err := spec.str("configurationMode"); err != nil {
		return bad(err)
	} else if ok && v != "" {
		if v == "daemon" {
			c.add("spec.configurationMode", Mapped, "", "daemon: sluice's agent is a DaemonSet that applies the node's state while it runs")
		} else {
			c.add("spec.configurationMode", Unsupported, "", fmt.Sprintf("%q: sluice installs no systemd service; its agent applies the node's state when it starts (after a reboot too), so VFs exist once the agent's pod runs", v))
		}
	}
	if v, ok, err := spec.strings("disablePlugins"); err != nil {
		return bad(err)
	} else if ok && len(v) > 0 {
		c.add("spec.disablePlugins", Unsupported, "", fmt.Sprintf("%s: SNO's config-daemon vendor plugins; sluice's agent has none to disable", strings.Join(v, ", ")))
	}
	if raw, ok := spec.get("featureGates"); ok {
		m, _ := raw.(map[string]any)
		if len(m) > 0 {
			c.add("spec.featureGates", Unsupported, "", fmt.Sprintf("%s: SNO's experimental features; sluice has no feature gates, see docs/migrating.md for what each SNO feature becomes", strings.Join(sortedKeys(m), ", ")))
		}
	}
	if v, ok, err := spec.stringMap("configDaemonEnvVars"); err != nil {
		return bad(err)
	} else if ok && len(v) > 0 {
		c.add("spec.configDaemonEnvVars", Unsupported, "", fmt.Sprintf("%s: environment of SNO's config daemon; sluice's agent reads none of them", strings.Join(sortedKeys(v), ", ")))
	}
	c.reportUnread(spec, operatorConfigKind)
	return nil
}
