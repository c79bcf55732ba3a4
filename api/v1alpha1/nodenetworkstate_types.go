package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VFRange is an inclusive range of VF indices, "first-last".
// +kubebuilder:validation:Pattern=`^[0-9]{1,3}-[0-9]{1,3}$`
// +kubebuilder:validation:MaxLength=7
type VFRange string

// VFGroup is a range of one PF's VFs that one policy configures and one
// device-plugin pool advertises.
type VFGroup struct {
	// Policy is the NetworkNodePolicy this group comes from.
	Policy string `json:"policy"`
	// PolicyGeneration is the policy's generation this group was rendered from.
	// +optional
	PolicyGeneration int64 `json:"policyGeneration,omitempty"`
	// ResourceName is the pool the group's VFs are advertised in.
	ResourceName string `json:"resourceName"`
	// VFRange is the group's VF indices.
	VFRange VFRange `json:"vfRange"`
	// DeviceType is the driver the VFs are bound to.
	DeviceType DeviceType `json:"deviceType"`
	// MTU of the group's VFs; 0 leaves it as created.
	// +optional
	MTU int32 `json:"mtu,omitempty"`
	// RDMA exposes the VFs' RDMA devices.
	// +optional
	RDMA bool `json:"rdma,omitempty"`
	// SoftRoCE gives each pod a soft-RoCE device on its VF (instead of the
	// VF's own RDMA device).
	// +optional
	SoftRoCE bool `json:"softRoCE,omitempty"`
	// Trust, when set, is applied to every VF of the group.
	// +optional
	Trust *bool `json:"trust,omitempty"`
	// SpoofChk, when set, is applied to every VF of the group.
	// +optional
	SpoofChk *bool `json:"spoofChk,omitempty"`
	// ExcludeTopology advertises the group's VFs without NUMA affinity.
	// +optional
	ExcludeTopology bool `json:"excludeTopology,omitempty"`
	// NeedVhostNet adds /dev/vhost-net and /dev/net/tun to allocations.
	// +optional
	NeedVhostNet bool `json:"needVhostNet,omitempty"`
	// DRA: the group's pool is allocated by the DRA driver, not the device
	// plugin.
	// +optional
	DRA bool `json:"dra,omitempty"`
}

// InterfaceSpec is the desired state of one PF.
type InterfaceSpec struct {
	// PCIAddress identifies the PF.
	PCIAddress PCIAddress `json:"pciAddress"`
	// Name is the PF's netdev name when the state was rendered (informational;
	// the PCI address is what the agent acts on).
	// +optional
	Name string `json:"name,omitempty"`
	// NumVfs is the number of VFs the PF must have.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=256
	NumVfs int32 `json:"numVfs"`
	// MTU of the PF; 0 leaves it as found.
	// +optional
	MTU int32 `json:"mtu,omitempty"`
	// LinkType the PF is expected to have.
	// +optional
	LinkType LinkType `json:"linkType,omitempty"`
	// ExternallyManaged: the PF's VFs are created outside sluice; the agent
	// never changes their count and needs at least numVfs of them.
	// +optional
	ExternallyManaged bool `json:"externallyManaged,omitempty"`
	// VFGroups partition the PF's VFs between policies.
	// +optional
	// +listType=atomic
	VFGroups []VFGroup `json:"vfGroups,omitempty"`
}

// PoolSelectors choose the devices of a device-plugin pool. The fields and
// their meaning follow sriov-network-device-plugin's selectors, so an
// existing resourceList config maps onto them unchanged.
type PoolSelectors struct {
	// Vendors are VF PCI vendor IDs.
	// +optional
	// +listType=atomic
	Vendors []string `json:"vendors,omitempty"`
	// Devices are VF PCI device IDs.
	// +optional
	// +listType=atomic
	Devices []string `json:"devices,omitempty"`
	// Drivers are VF kernel drivers (iavf, mlx5_core, vfio-pci, ...).
	// +optional
	// +listType=atomic
	Drivers []string `json:"drivers,omitempty"`
	// PFNames are PF netdev names with optional VF ranges ("ens1f0#0-3").
	// +optional
	// +listType=atomic
	PFNames []string `json:"pfNames,omitempty"`
	// RootDevices are PF PCI addresses.
	// +optional
	// +listType=atomic
	RootDevices []string `json:"rootDevices,omitempty"`
	// LinkTypes are PF link types as the kernel names them (ether, infiniband).
	// +optional
	// +listType=atomic
	LinkTypes []string `json:"linkTypes,omitempty"`
	// IsRdma selects only devices with an RDMA device and hands out its char
	// devices with them.
	// +optional
	IsRdma bool `json:"isRdma,omitempty"`
	// IfNames are the netdev names (PF or VF) of the functions whose RDMA
	// devices a shared RDMA pool (rdmaHcaMax > 0) shares; a VF pool refuses
	// them.
	// +optional
	// +listType=atomic
	IfNames []string `json:"ifNames,omitempty"`
}

// DevicePluginPool is one extended resource the device plugin advertises.
type DevicePluginPool struct {
	// ResourceName is the name after the prefix.
	ResourceName string `json:"resourceName"`
	// ResourcePrefix defaults to sluice.dev.
	// +optional
	ResourcePrefix string `json:"resourcePrefix,omitempty"`
	// DeviceType the pool's VFs must be bound as.
	// +optional
	DeviceType DeviceType `json:"deviceType,omitempty"`
	// Selectors choose the pool's devices.
	Selectors PoolSelectors `json:"selectors"`
	// RDMAHcaMax, when above zero, makes this a shared RDMA pool, shared as
	// rdmaSharing says.
	// +optional
	// +kubebuilder:validation:Minimum=0
	RDMAHcaMax int32 `json:"rdmaHcaMax,omitempty"`
	// RDMASharing is how a shared RDMA pool shares: PerDevice (the default)
	// advertises rdmaHcaMax units per selected RDMA device and gives one
	// device per unit; WholeSet advertises rdmaHcaMax units in total and
	// gives every selected device with each unit, as
	// k8s-rdma-shared-dev-plugin does. Only with rdmaHcaMax > 0.
	// +optional
	RDMASharing RDMASharing `json:"rdmaSharing,omitempty"`
	// SoftRoCE makes each allocation name the device as a CDI device
	// (<prefix>/<resourceName>=<PCI address>) whose spec sluice-cni writes
	// when it creates the pod's soft-RoCE device; the runtime resolves it
	// when it creates the containers.
	// +optional
	SoftRoCE bool `json:"softRoCE,omitempty"`
	// ExcludeTopology advertises the pool's devices without their NUMA
	// node (sriov-network-device-plugin's excludeTopology).
	// +optional
	ExcludeTopology bool `json:"excludeTopology,omitempty"`
	// NeedVhostNet adds /dev/vhost-net and /dev/net/tun to every allocation
	// (sriov-network-device-plugin's needVhostNet).
	// +optional
	NeedVhostNet bool `json:"needVhostNet,omitempty"`
}

// NodeNetworkStateSpec is the desired state the operator renders for a node.
// The operator writes it whole, with server-side apply: it is one unit
// (atomic), so an apply replaces it entirely, whoever wrote it before.
// +structType=atomic
type NodeNetworkStateSpec struct {
	// Interfaces is the desired state of each configured PF. A PF not listed
	// is left alone (or returned to zero VFs if sluice configured it before).
	// +optional
	// +listType=map
	// +listMapKey=pciAddress
	Interfaces []InterfaceSpec `json:"interfaces,omitempty"`
	// RDMAMode is the desired kernel RDMA netns mode; empty leaves it as found.
	// +optional
	RDMAMode RDMAMode `json:"rdmaMode,omitempty"`
	// Pools is the device-plugin configuration rendered for this node: the
	// pools the kubelet device plugin serves. DRA pools are not among them.
	// +optional
	// +listType=atomic
	Pools []DevicePluginPool `json:"pools,omitempty"`
	// DRAPools are the pools whose policies ask for DRA allocation, in the
	// same form: the node's DRA driver publishes their devices in
	// ResourceSlices. A resourceName is in Pools or DRAPools, never both.
	// +optional
	// +listType=atomic
	DRAPools []DevicePluginPool `json:"draPools,omitempty"`
	// DryRun is the state dry-run policies would produce; the agent only
	// reports what applying it would do.
	// +optional
	DryRun *DryRunSpec `json:"dryRun,omitempty"`
}

// DryRunSpec is a desired state the agent evaluates but does not apply.
type DryRunSpec struct {
	// Policies are the dry-run policies folded into Interfaces.
	// +listType=atomic
	Policies []string `json:"policies"`
	// Interfaces is the desired state with the dry-run policies applied.
	// +optional
	// +listType=atomic
	Interfaces []InterfaceSpec `json:"interfaces,omitempty"`
}

// SyncStatus is where the agent is in applying the spec.
// +kubebuilder:validation:Enum=Succeeded;InProgress;Failed
type SyncStatus string

const (
	SyncSucceeded  SyncStatus = "Succeeded"
	SyncInProgress SyncStatus = "InProgress"
	SyncFailed     SyncStatus = "Failed"
)

// RDMADeviceStatus describes an RDMA device and what a pod needs to use it.
type RDMADeviceStatus struct {
	// Name is the kernel name (mlx5_3, rxe0).
	Name string `json:"name"`
	// CharDevices are the /dev/infiniband paths (uverbsN, rdma_cm, umadN, issmN).
	// +optional
	// +listType=atomic
	CharDevices []string `json:"charDevices,omitempty"`
	// PortState is port 1's state (ACTIVE, DOWN, ...).
	// +optional
	PortState string `json:"portState,omitempty"`
	// LinkLayer is port 1's link layer (Ethernet, InfiniBand).
	// +optional
	LinkLayer string `json:"linkLayer,omitempty"`
}

// VFStatus is one discovered VF.
type VFStatus struct {
	// VFID is the VF's index on its PF.
	VFID int32 `json:"vfID"`
	// PCIAddress of the VF.
	PCIAddress string `json:"pciAddress"`
	// Name is the VF's netdev, empty when it has none (vfio-pci).
	// +optional
	Name string `json:"name,omitempty"`
	// MAC is the administrative MAC set on the PF for this VF.
	// +optional
	MAC string `json:"mac,omitempty"`
	// Vendor and DeviceID are the VF's PCI IDs.
	// +optional
	Vendor string `json:"vendor,omitempty"`
	// +optional
	DeviceID string `json:"deviceID,omitempty"`
	// Driver is the bound kernel driver.
	// +optional
	Driver string `json:"driver,omitempty"`
	// MTU of the VF netdev.
	// +optional
	MTU int32 `json:"mtu,omitempty"`
	// VLAN set on the PF for this VF.
	// +optional
	VLAN int32 `json:"vlan,omitempty"`
	// Trust and SpoofChk as the PF reports them.
	// +optional
	Trust bool `json:"trust,omitempty"`
	// +optional
	SpoofChk bool `json:"spoofChk,omitempty"`
	// RDMA is the VF's RDMA device, if any.
	// +optional
	RDMA *RDMADeviceStatus `json:"rdma,omitempty"`
}

// InterfaceStatus is one discovered PF and its VFs.
type InterfaceStatus struct {
	// Name is the PF netdev.
	// +optional
	Name string `json:"name,omitempty"`
	// PCIAddress of the PF.
	PCIAddress string `json:"pciAddress"`
	// Vendor and DeviceID are the PF's PCI IDs.
	Vendor   string `json:"vendor"`
	DeviceID string `json:"deviceID"`
	// VendorName and DeviceName come from the PCI ID database.
	// +optional
	VendorName string `json:"vendorName,omitempty"`
	// +optional
	DeviceName string `json:"deviceName,omitempty"`
	// Driver is the PF's kernel driver.
	// +optional
	Driver string `json:"driver,omitempty"`
	// LinkType as the kernel reports it (eth, ib).
	// +optional
	LinkType LinkType `json:"linkType,omitempty"`
	// LinkState is up or down (carrier).
	// +optional
	LinkState string `json:"linkState,omitempty"`
	// MAC of the PF.
	// +optional
	MAC string `json:"mac,omitempty"`
	// MTU of the PF.
	// +optional
	MTU int32 `json:"mtu,omitempty"`
	// NUMANode the PF is attached to, -1 when unknown.
	NUMANode int32 `json:"numaNode"`
	// TotalVfs is the most VFs the PF supports.
	TotalVfs int32 `json:"totalVfs"`
	// NumVfs is the number of VFs it has now.
	NumVfs int32 `json:"numVfs"`
	// RDMA is the PF's own RDMA device, if any.
	// +optional
	RDMA *RDMADeviceStatus `json:"rdma,omitempty"`
	// VFs are the PF's VFs.
	// +optional
	// +listType=atomic
	VFs []VFStatus `json:"vfs,omitempty"`
}

// DrainState is where the agent is in draining for a disruptive change.
// +kubebuilder:validation:Enum=None;Waiting;Draining;Done
type DrainState string

const (
	DrainNone     DrainState = "None"
	DrainWaiting  DrainState = "Waiting"
	DrainDraining DrainState = "Draining"
	DrainDone     DrainState = "Done"
)

// DrainStatus reports the last drain decision.
type DrainStatus struct {
	// State of the drain.
	State DrainState `json:"state"`
	// Reason says why the change needs (or does not need) a drain.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Pods are namespace/name of the pods evicted or to evict.
	// +optional
	// +listType=atomic
	Pods []string `json:"pods,omitempty"`
}

// DryRunResult is what applying spec.dryRun would do.
type DryRunResult struct {
	// Policies evaluated.
	// +listType=atomic
	Policies []string `json:"policies"`
	// DrainRequired is true when a VF in use would be removed or reconfigured.
	DrainRequired bool `json:"drainRequired"`
	// PodsToEvict are namespace/name of the pods that would be evicted.
	// +optional
	// +listType=atomic
	PodsToEvict []string `json:"podsToEvict,omitempty"`
	// Changes summarises the host changes, one line per PF.
	// +optional
	// +listType=atomic
	Changes []string `json:"changes,omitempty"`
}

// NodeNetworkStateStatus is what the node agent found and did.
type NodeNetworkStateStatus struct {
	// Interfaces are the SR-IOV capable PFs found on the node.
	// +optional
	// +listType=atomic
	Interfaces []InterfaceStatus `json:"interfaces,omitempty"`
	// RDMAMode is the kernel's RDMA netns mode, empty without RDMA.
	// +optional
	RDMAMode RDMAMode `json:"rdmaMode,omitempty"`
	// SyncStatus of the last apply.
	// +optional
	SyncStatus SyncStatus `json:"syncStatus,omitempty"`
	// LastSyncError is the last apply's error, empty on success.
	// +optional
	LastSyncError string `json:"lastSyncError,omitempty"`
	// ObservedGeneration is the spec generation last applied (or attempted).
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Drain reports the last drain decision.
	// +optional
	Drain *DrainStatus `json:"drain,omitempty"`
	// DryRun reports what spec.dryRun would do.
	// +optional
	DryRun *DryRunResult `json:"dryRun,omitempty"`
	// Conditions: Ready, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NodeNetworkState is one node's desired (spec, from the operator) and
// discovered (status, from the node agent) SR-IOV state. Its name is the
// node's name.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=nns
// +kubebuilder:printcolumn:name="Sync",type=string,JSONPath=`.status.syncStatus`
// +kubebuilder:printcolumn:name="Drain",type=string,JSONPath=`.status.drain.state`
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.lastSyncError`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeNetworkState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeNetworkStateSpec   `json:"spec,omitempty"`
	Status NodeNetworkStateStatus `json:"status,omitempty"`
}

// NodeNetworkStateList is a list of NodeNetworkState.
// +kubebuilder:object:root=true
type NodeNetworkStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeNetworkState `json:"items"`
}
