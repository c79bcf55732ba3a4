package v1alpha1

// RDMASharing is how a shared RDMA pool shares its RDMA devices.
// +kubebuilder:validation:Enum=PerDevice;WholeSet
type RDMASharing string

const (
	// RDMASharingPerDevice advertises rdmaHcaMax units per selected RDMA
	// device and hands out one device per unit (sluice's original sharing).
	RDMASharingPerDevice RDMASharing = "PerDevice"
	// RDMASharingWholeSet advertises rdmaHcaMax units in total and hands out
	// every selected RDMA device with each unit, as
	// k8s-rdma-shared-dev-plugin does.
	RDMASharingWholeSet RDMASharing = "WholeSet"
)

// SharedRDMASpec makes a NetworkNodePolicy a shared RDMA pool, as a
// k8s-rdma-shared-dev-plugin configList entry: the RDMA devices its
// selectors choose on each node (of PFs or existing VFs) are shared by up
// to maxPods pods, every one of which gets all of them. The policy creates
// no VFs. Within the selectors the entries of one list are ORed and the
// lists ANDed; at least one list must be set, so that a policy never shares
// every RDMA device of a node by omission.
// +kubebuilder:validation:XValidation:rule="has(self.vendors) || has(self.deviceIDs) || has(self.drivers) || has(self.ifNames) || has(self.linkTypes)",message="sharedRdma selects no device: set at least one of vendors, deviceIDs, drivers, ifNames or linkTypes (k8s-rdma-shared-dev-plugin's selectors)"
type SharedRDMASpec struct {
	// MaxPods is how many pods (containers) may hold the pool at once on
	// each node: the resource advertises this many units
	// (k8s-rdma-shared-dev-plugin's rdmaHcaMax).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxPods int32 `json:"maxPods"`
	// Vendors are the PCI vendor IDs of the functions owning the RDMA
	// devices, e.g. 15b3.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^(0[xX])?[0-9a-fA-F]{4}$`
	Vendors []string `json:"vendors,omitempty"`
	// DeviceIDs are their PCI device IDs, e.g. 101d.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^(0[xX])?[0-9a-fA-F]{4}$`
	DeviceIDs []string `json:"deviceIDs,omitempty"`
	// Drivers are their kernel drivers, e.g. mlx5_core.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=64
	Drivers []string `json:"drivers,omitempty"`
	// IfNames are their netdev names (PF or VF), e.g. ib0.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^[^/: \t\n]{1,15}$`
	IfNames []string `json:"ifNames,omitempty"`
	// LinkTypes are the link types of their PFs: ether or infiniband.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:Enum=ether;infiniband;eth;ib
	LinkTypes []string `json:"linkTypes,omitempty"`
}
