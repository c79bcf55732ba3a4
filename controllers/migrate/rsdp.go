package migrate

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin"
)

// convertRSDP converts the configList of a k8s-rdma-shared-dev-plugin
// config, which sluice's device plugin accepted (cfg), into one
// NetworkNodePolicy with sharedRdma per resource: the operator renders it
// into each node's pools as the same whole-set sharing. resources are the
// entries as written, in cfg's order, for the per-field report.
func convertRSDP(field string, cfg *deviceplugin.Config, resources []map[string]json.RawMessage, opts Options, c *conv) ([]*sluicev1.NetworkNodePolicy, error) {
	var out []*sluicev1.NetworkNodePolicy
	for i := range cfg.Pools {
		p := &cfg.Pools[i]
		at := fmt.Sprintf("%s: configList[%s]", field, p.Name)
		var raw map[string]json.RawMessage
		if i < len(resources) {
			raw = resources[i]
		}
		policy, err := rsdpPolicy(at, p, raw, opts, c)
		if err != nil {
			return nil, err
		}
		if policy != nil {
			out = append(out, policy)
		}
	}
	return out, nil
}

// rsdpPolicy is the policy of one configList entry, nil when the entry
// advertises nothing (rdmaHcaMax 0), as the report then says.
func rsdpPolicy(at string, p *deviceplugin.Pool, raw map[string]json.RawMessage, opts Options, c *conv) (*sluicev1.NetworkNodePolicy, error) {
	if !policyResourceNameRE.MatchString(p.Name) || len(p.Name) > 63 {
		return nil, c.refuse(at+".resourceName", fmt.Sprintf("%q: a NetworkNodePolicy's resourceName takes letters, digits, '-' and '_', starting and ending with a letter or digit, at most 63 characters; rename the resource (and the pods' requests)", p.Name))
	}
	sel := p.Selectors[0]
	if len(sel.Vendors)+len(sel.Devices)+len(sel.Drivers)+len(sel.IfNames)+len(sel.LinkTypes) == 0 {
		return nil, c.refuse(at+".selectors", "selects no device (k8s-rdma-shared-dev-plugin refuses such an entry too): set at least one of vendors, deviceIDs, drivers, ifNames or linkTypes")
	}
	name := policyNameOf(p.Name)
	resource := opts.ResourcePrefix + "/" + p.Name
	if p.SharedMax == 0 {
		c.add(at, Unsupported, "", fmt.Sprintf("no NetworkNodePolicy written: with rdmaHcaMax 0 (or none) k8s-rdma-shared-dev-plugin registers %s with no units, and a sharedRdma policy needs maxPods 1 to 10000. Set rdmaHcaMax to how many pods may share the devices to get one; sluice's device plugin serves this file as it is (no units) with --config-file", p.Resource()))
		reportRSDPFields(at, raw, p, c)
		return nil, nil
	}
	detail := fmt.Sprintf("NetworkNodePolicy %s with sharedRdma (the operator renders the same sharing: %d units, each with every matched RDMA device); pods request %s", name, p.SharedMax, resource)
	if p.Resource() != resource {
		detail += fmt.Sprintf(" instead of %s: change their requests, or run the operator with --resource-prefix %s", p.Resource(), p.Prefix)
	}
	if name != p.Name {
		detail += fmt.Sprintf("; the policy is named %s, as object names take lower case and '-' only", name)
	}
	detail += ". It selects every node: k8s-rdma-shared-dev-plugin served the nodes its DaemonSet ran on, so add those nodes' labels as spec.nodeSelector"
	c.add(at, Changed, "NetworkNodePolicy "+name, detail)
	reportRSDPFields(at, raw, p, c)
	return &sluicev1.NetworkNodePolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: sluicev1.GroupVersion.String(), Kind: "NetworkNodePolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: sluicev1.NetworkNodePolicySpec{
			ResourceName: p.Name,
			SharedRDMA: &sluicev1.SharedRDMASpec{
				MaxPods:   int32(p.SharedMax),
				Vendors:   slices.Clone(sel.Vendors),
				DeviceIDs: slices.Clone(sel.Devices),
				Drivers:   slices.Clone(sel.Drivers),
				IfNames:   slices.Clone(sel.IfNames),
				LinkTypes: slices.Clone(sel.LinkTypes),
			},
		},
	}, nil
}

// policyNameOf makes an object name of a resource name: lower case, '_'
// as '-'.
func policyNameOf(resource string) string {
	return strings.ReplaceAll(strings.ToLower(resource), "_", "-")
}

// reportRSDPFields records each key of one configList entry and where it
// went in the policy.
func reportRSDPFields(at string, raw map[string]json.RawMessage, p *deviceplugin.Pool, c *conv) {
	for _, k := range sortedKeys(raw) {
		f := at + "." + k
		switch k {
		case "resourceName":
			c.add(f, Mapped, "spec.resourceName", "")
		case "resourcePrefix":
			c.add(f, Changed, "", fmt.Sprintf("%q: a policy's pool takes the operator's --resource-prefix, one for every pool (sluice.dev by default): run the operator with --resource-prefix %s to keep %s, or change the pods' requests", p.Prefix, p.Prefix, p.Resource()))
		case "rdmaHcaMax":
			if p.SharedMax == 0 {
				c.add(f, Unsupported, "spec.sharedRdma.maxPods", "0: advertises nothing under k8s-rdma-shared-dev-plugin, and maxPods takes 1 to 10000")
				continue
			}
			c.add(f, Mapped, "spec.sharedRdma.maxPods", fmt.Sprintf("%d units for the resource on each node, each with the char devices of every matched RDMA device", p.SharedMax))
		case "devices":
			c.add(f, Changed, "spec.sharedRdma.ifNames", "the older spelling of selectors.ifNames, written as sharedRdma.ifNames")
		case "selectors":
			var sel map[string]json.RawMessage
			_ = json.Unmarshal(raw[k], &sel)
			for _, sk := range sortedKeys(sel) {
				target := map[string]string{"vendors": "vendors", "deviceIDs": "deviceIDs", "drivers": "drivers", "ifNames": "ifNames", "linkTypes": "linkTypes"}[sk]
				if target == "" {
					// The device plugin refuses other keys: not reached.
					c.add(f+"."+sk, Unsupported, "", "not a k8s-rdma-shared-dev-plugin selector")
					continue
				}
				c.add(f+"."+sk, Mapped, "spec.sharedRdma."+target, "")
			}
		default:
			c.add(f, Mapped, "", "")
		}
	}
}
