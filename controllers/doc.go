// Package controllers is the sluice operator: it merges the cluster's
// NetworkNodePolicies into each node's NodeNetworkState spec, reports how far
// every policy is applied, renders a NetworkAttachmentDefinition for every
// VFNetwork and keeps the node agent's DaemonSet in place.
//
// The merge itself (merge.go, nicselector.go, pools.go) is pure: it takes a
// node's labels and discovered interfaces plus the policies and returns the
// NodeNetworkState spec and what went wrong per policy. The reconcilers only
// read their inputs from the informer caches and write the results.
package controllers
