package controllers

import (
	"slices"
	"strings"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// renderPools turns the VF groups of a node into its device-plugin pools:
// one pool per resourceName, selecting its VFs by "pf#first-last" entries,
// one per VF group of that resource.
//
// Only pfNames is set among the device selectors. The device plugin, like
// sriov-network-device-plugin, ORs the entries of one selector list and ANDs
// the selector fields, so adding rootDevices (or vendors, drivers) could only
// narrow a pool that pfNames with ranges already pins down exactly; and a
// rootDevices list would select whole PFs, VFs of other groups included.
//
// Groups of DRA policies make the second list, in the same form: the device
// plugin serves the first, the DRA driver the second, and the merge keeps a
// resourceName in one of them (policies that disagree on allocation conflict).
//
// The output is sorted so that a repeated merge renders the same spec.
func renderPools(ifaces []sluicev1.InterfaceSpec) (devicePlugin, dra []sluicev1.DevicePluginPool) {
	byName := map[string]*sluicev1.DevicePluginPool{}
	isDRA := map[string]bool{}
	for _, in := range ifaces {
		for _, g := range in.VFGroups {
			p := byName[g.ResourceName]
			if p == nil {
				p = &sluicev1.DevicePluginPool{
					ResourceName: g.ResourceName,
					DeviceType:   g.DeviceType,
					Selectors:    sluicev1.PoolSelectors{IsRdma: g.RDMA},
					SoftRoCE:     g.SoftRoCE,
					// The merge keeps policies that disagree on these
					// out of one pool, so the first group speaks for all.
					ExcludeTopology: g.ExcludeTopology,
					NeedVhostNet:    g.NeedVhostNet,
				}
				byName[g.ResourceName] = p
				isDRA[g.ResourceName] = g.DRA
			}
			p.Selectors.PFNames = append(p.Selectors.PFNames, in.Name+"#"+string(g.VFRange))
		}
	}
	for name, p := range byName {
		slices.Sort(p.Selectors.PFNames)
		if isDRA[name] {
			dra = append(dra, *p)
		} else {
			devicePlugin = append(devicePlugin, *p)
		}
	}
	byResource := func(a, b sluicev1.DevicePluginPool) int { return strings.Compare(a.ResourceName, b.ResourceName) }
	slices.SortFunc(devicePlugin, byResource)
	slices.SortFunc(dra, byResource)
	return devicePlugin, dra
}
