package v1alpha1

// DeviceType is how a VF is exposed to pods.
// +kubebuilder:validation:Enum=netdevice;vfio-pci
type DeviceType string

const (
	// DeviceTypeNetdevice keeps the VF on its kernel network driver; the CNI
	// moves its netdev into the pod.
	DeviceTypeNetdevice DeviceType = "netdevice"
	// DeviceTypeVfioPci binds the VF to vfio-pci for user-space drivers (DPDK).
	DeviceTypeVfioPci DeviceType = "vfio-pci"
)

// LinkType is the link layer of a PF.
// +kubebuilder:validation:Enum=eth;ib
type LinkType string

const (
	LinkTypeEthernet   LinkType = "eth"
	LinkTypeInfiniband LinkType = "ib"
)

// RDMAMode is the kernel's RDMA network-namespace mode.
//
// shared: every RDMA device is visible in every network namespace; a pod
// gets the char devices of the device it was allocated but the device itself
// stays in the host namespace. exclusive: an RDMA device belongs to exactly
// one namespace and the CNI moves it into the pod with its VF.
// +kubebuilder:validation:Enum=shared;exclusive
type RDMAMode string

const (
	RDMAModeShared    RDMAMode = "shared"
	RDMAModeExclusive RDMAMode = "exclusive"
)

// RDMAProvider is where a pool's RDMA devices come from. hardware: the
// VF's own RDMA engine (ConnectX VFs under mlx5). soft-roce: the kernel's
// software RoCE (rdma_rxe) on the VF's netdev, for NICs with SR-IOV and no
// RDMA engine; the CNI creates the device in the pod's network namespace
// when the pod starts and removes it when the pod goes.
// +kubebuilder:validation:Enum=hardware;soft-roce
type RDMAProvider string

const (
	RDMAProviderHardware RDMAProvider = "hardware"
	RDMAProviderSoftRoCE RDMAProvider = "soft-roce"
)

// ConditionReady is the condition type every sluice object reports.
const ConditionReady = "Ready"

// ConditionConflict is set on a NetworkNodePolicy whose request on some PF
// cannot be merged with another policy's.
const ConditionConflict = "Conflict"

// ConditionDegraded is set on a NodeNetworkState when the host drifted from
// the desired state and could not be repaired.
const ConditionDegraded = "Degraded"
