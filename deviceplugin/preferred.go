package deviceplugin

import (
	"sort"
)

// preferred picks size devices out of available, keeping mustInclude: all
// on one NUMA node if it can (the node with the most must-include devices,
// else the one with the most available ones), spread evenly over the PFs
// (or, for shared pools, the RDMA devices) of that node, then spilling to
// the next best node. Unknown IDs are passed over.
func preferred(pd *PoolDevices, available, mustInclude []string, size int) []string {
	chosen := make([]string, 0, size)
	taken := make(map[string]bool, size)
	perGroup := map[string]int{}
	mustPerNode := map[int]int{}
	for _, id := range mustInclude {
		if taken[id] {
			continue
		}
		taken[id] = true
		chosen = append(chosen, id)
		if d, ok := pd.Device(id); ok {
			perGroup[d.Group]++
			mustPerNode[d.NUMANode]++
		}
	}
	if len(chosen) >= size {
		return chosen
	}

	// Candidates per NUMA node, per group, in ID order.
	type group struct {
		key  string
		devs []string
	}
	nodes := map[int]map[string]*group{}
	perNode := map[int]int{}
	for _, id := range available {
		d, ok := pd.Device(id)
		if !ok || taken[id] {
			continue
		}
		taken[id] = true
		gs := nodes[d.NUMANode]
		if gs == nil {
			gs = map[string]*group{}
			nodes[d.NUMANode] = gs
		}
		g := gs[d.Group]
		if g == nil {
			g = &group{key: d.Group}
			gs[d.Group] = g
		}
		g.devs = append(g.devs, id)
		perNode[d.NUMANode]++
	}

	order := make([]int, 0, len(nodes))
	for n := range nodes {
		order = append(order, n)
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if mustPerNode[a] != mustPerNode[b] {
			return mustPerNode[a] > mustPerNode[b]
		}
		if perNode[a] != perNode[b] {
			return perNode[a] > perNode[b]
		}
		if (a < 0) != (b < 0) {
			return b < 0 // a known node before "unknown"
		}
		return a < b
	})

	for _, n := range order {
		groups := make([]*group, 0, len(nodes[n]))
		for _, g := range nodes[n] {
			sort.Strings(g.devs)
			groups = append(groups, g)
		}
		sort.Slice(groups, func(i, j int) bool { return groups[i].key < groups[j].key })
		for len(chosen) < size {
			// The group with the fewest chosen devices, then the most left.
			var best *group
			for _, g := range groups {
				if len(g.devs) == 0 {
					continue
				}
				if best == nil || perGroup[g.key] < perGroup[best.key] ||
					(perGroup[g.key] == perGroup[best.key] && len(g.devs) > len(best.devs)) {
					best = g
				}
			}
			if best == nil {
				break
			}
			chosen = append(chosen, best.devs[0])
			best.devs = best.devs[1:]
			perGroup[best.key]++
		}
		if len(chosen) >= size {
			break
		}
	}
	return chosen
}
