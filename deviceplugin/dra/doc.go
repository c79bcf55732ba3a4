// Package dra is sluice's Dynamic Resource Allocation driver: it publishes
// the VFs of the pools whose NetworkNodePolicy asks for allocation DRA in
// ResourceSlices, one device per VF, from the device plugin's own scans
// (deviceplugin.Options.OnScan), so that both paths see one discovery.
//
// What exists: the slice content (Resources, Device) and a kubelet plugin
// (Driver) that publishes it and keeps it exact on every rescan. What does
// not: preparing a claim. Prepare and Unprepare answer that it is not
// implemented yet; configuring the VF and moving it into the pod (NRI),
// CDI for RDMA char devices, claim parameters and checkpointing come next.
package dra
