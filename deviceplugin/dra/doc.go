// Package dra is sluice's Dynamic Resource Allocation driver: it publishes
// the VFs of the pools whose NetworkNodePolicy asks for allocation DRA in
// ResourceSlices, one device per VF, from the device plugin's own scans
// (deviceplugin.Options.OnScan), so that both paths see one discovery.
//
// The kubelet plugin (Driver) publishes the slices and keeps them exact on
// every rescan (slices.go), and prepares claims: the PF-side settings of
// their configs, CDI specs for the VFs' device nodes, and a checkpoint per
// claim (prepare.go). Its NRI plugin (nri.go, StartNRI) moves each
// prepared VF's netdev into its pod's network namespace when the runtime
// creates the sandbox, runs the config's IPAM plugin (ipam.go), reports
// the interface in the claim's status (status.go), and gives the VF back
// when the sandbox stops, when the runtime no longer runs it, or at
// Unprepare. It streams each published device's health to the kubelet
// (health.go). See docs/dra.md.
package dra
