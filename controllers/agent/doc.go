// Package agent is sluice's node agent: one per node, it keeps the node's
// SR-IOV NICs as its NodeNetworkState spec asks and reports what it finds.
//
// Every sync re-derives a plan from three inputs, so that a crash at any
// point is repaired by the next sync: the spec, a fresh discovery of the
// host (host.Discover) and the small state file recording which PFs sluice
// configured. The plan (plan.go, pure) says per PF what differs and which
// VFs in use a change would disrupt; the drain decision (drain.go) evicts
// only the pods using those VFs, one node per free Lease slot cluster-wide
// (slots.go); apply.go carries the plan out through the host layer, and
// the readiness gate lists a PF for the device plugin only once a fresh
// discovery shows it exactly as asked.
package agent
