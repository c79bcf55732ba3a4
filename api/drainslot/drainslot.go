// Package drainslot is the contract between the operator and the node
// agents on the drain slots: the Leases that bound how many nodes drain
// at once, cluster-wide. The operator creates Name(0) .. Name(n-1) in its
// namespace, n being its --max-unavailable (which it passes to every
// agent); an agent evicts pods only while it holds one of them.
//
// Agents only read and update the slots: their Role
// (config/rbac/agent_role.yaml) grants the Leases by name, which RBAC
// cannot do for create, and which keeps them away from the operator's
// leader election Lease in the same namespace. It names Name(0) ..
// Name(Max-1), so n is at most Max.
package drainslot

import (
	"fmt"
	"strconv"
)

const (
	// Prefix of the slots' names: sluice-drain-0, sluice-drain-1, ...
	Prefix = "sluice-drain-"
	// Max is the number of slots the agent's Role grants, the largest
	// --max-unavailable.
	Max = 16
)

// Name is slot i's Lease name.
func Name(i int) string { return Prefix + strconv.Itoa(i) }

// Names are the names of slots 0 .. n-1.
func Names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = Name(i)
	}
	return out
}

// Validate checks a --max-unavailable value: at least one slot, and no
// more than the agent's Role grants.
func Validate(maxUnavailable int) error {
	switch {
	case maxUnavailable < 1:
		return fmt.Errorf("max-unavailable is %d: at least one node must be allowed to drain at a time", maxUnavailable)
	case maxUnavailable > Max:
		return fmt.Errorf("max-unavailable is %d: at most %d nodes may drain at once, as the agent's Role (config/rbac/agent_role.yaml) grants the drain slot Leases %s..%s by name; lower --max-unavailable, or list more slots in that Role and raise drainslot.Max", maxUnavailable, Max, Name(0), Name(Max-1))
	}
	return nil
}
