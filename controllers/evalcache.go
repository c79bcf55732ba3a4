package controllers

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// evalCache remembers each node's merge evaluation (selected policies and
// findings) for as long as the node's labels, its discovered PFs and the
// policies stay the same. Every policy's status needs every node's
// evaluation and every NodeNetworkState event re-evaluates every policy;
// without the cache each event would re-merge all nodes once per policy.
// It only ever holds what the merge would compute again, so losing it
// (a restart) changes nothing but the time taken.
type evalCache struct {
	mu sync.Mutex
	// policies is the fingerprint of the policies the entries were
	// computed with; a different one empties the cache.
	policies string
	nodes    map[string]evalEntry
}

type evalEntry struct {
	labels map[string]string
	ifaces []sluicev1.InterfaceStatus
	result MergeResult
}

// policyFingerprint identifies everything about a set of policies the
// merge depends on: names, generations (every spec change bumps it),
// creation times (precedence) and deletion.
func policyFingerprint(policies []*sluicev1.NetworkNodePolicy) string {
	parts := make([]string, len(policies))
	for i, p := range policies {
		parts[i] = p.Name + "/" + strconv.FormatInt(p.Generation, 10) + "/" + strconv.FormatInt(p.CreationTimestamp.Unix(), 10) +
			"/" + strconv.FormatBool(p.DeletionTimestamp != nil)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// evaluate returns the node's evaluation under m, whose policies have the
// given fingerprint, from the cache when its inputs did not change.
func (c *evalCache) evaluate(m *Merger, fingerprint string, node NodeInput) MergeResult {
	c.mu.Lock()
	if c.policies != fingerprint {
		c.policies, c.nodes = fingerprint, map[string]evalEntry{}
	}
	e, ok := c.nodes[node.Name]
	c.mu.Unlock()
	if ok && maps.Equal(e.labels, node.Labels) && sameSelectionInputs(e.ifaces, node.Interfaces) {
		return e.result
	}
	res := m.Evaluate(node)
	entry := evalEntry{labels: maps.Clone(node.Labels), ifaces: pfInputs(node.Interfaces), result: res}
	c.mu.Lock()
	if c.policies == fingerprint {
		c.nodes[node.Name] = entry
	}
	c.mu.Unlock()
	return res
}

// prune forgets nodes that are gone once they outnumber the live ones.
func (c *evalCache) prune(live map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.nodes) <= 2*len(live)+16 {
		return
	}
	for name := range c.nodes {
		if !live[name] {
			delete(c.nodes, name)
		}
	}
}

// pfInputs copies what sameSelectionInputs compares, without the VFs.
func pfInputs(ifaces []sluicev1.InterfaceStatus) []sluicev1.InterfaceStatus {
	out := make([]sluicev1.InterfaceStatus, len(ifaces))
	for i, in := range ifaces {
		out[i] = sluicev1.InterfaceStatus{Name: in.Name, PCIAddress: in.PCIAddress, Vendor: in.Vendor,
			DeviceID: in.DeviceID, LinkType: in.LinkType, TotalVfs: in.TotalVfs}
	}
	return out
}
