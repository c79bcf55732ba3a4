// Package migrate converts the configuration of sriov-network-operator
// (SNO), sriov-network-device-plugin (SNDP), k8s-rdma-shared-dev-plugin
// (RSDP) and sriov-cni into sluice's: SriovNetworkNodePolicy into
// NetworkNodePolicy, SriovNetwork and SriovIBNetwork into VFNetwork,
// SriovNetworkPoolConfig and SriovOperatorConfig into settings of those and
// of the operator, RSDP ConfigMaps into NetworkNodePolicies with sharedRdma
// (one per resource), SNDP ConfigMaps checked against sluice's device
// plugin, and NetworkAttachmentDefinitions of sriov-cni rewritten to
// sluice-cni.
//
// Every conversion (Convert) is a pure function from incumbent objects to sluice
// objects and a Report: one Entry per field of the input, saying whether it
// was mapped unchanged, changed (and how), or is unsupported (and why, and
// what to do instead). Nothing is dropped without an entry. A value whose
// conversion would make a selector match more than it did (a NIC selector
// sluice cannot express, a switchdev or vDPA policy whose PFs sluice would
// configure in legacy mode) is refused: the object is not converted and the
// error names the object, the field and the fix.
//
// The SNO objects are read as unstructured data (the SNO Go module is not a
// dependency). The fields handled are those of sriov-network-operator's
// api/v1 as of v1.6.0 (main at 249e200, August 2026); a field not in that
// list is reported as unsupported.
package migrate
