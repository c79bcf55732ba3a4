package v1alpha1

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PCIAddress is a full PCI address in domain:bus:device.function form.
// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`
// +kubebuilder:validation:MaxLength=12
type PCIAddress string

// PFName selects a PF by netdev name, optionally restricted to a range of its
// VF indices: "ens1f0" or "ens1f0#0-3" (both ends included).
// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_.:@-]{1,15}(#[0-9]{1,3}-[0-9]{1,3})?$`
// +kubebuilder:validation:MaxLength=23
// +kubebuilder:validation:XValidation:rule="!self.contains('#') || int(self.split('#')[1].split('-')[0]) <= int(self.split('#')[1].split('-')[1])",message="VF range must be written first-last with first <= last, e.g. ens1f0#0-3"
type PFName string

// HexID is a 4-digit hexadecimal PCI vendor or device ID such as 15b3.
// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{4}$`
// +kubebuilder:validation:MaxLength=4
type HexID string

// PolicyLinkType is a policy's link type: eth or ib, either case.
// +kubebuilder:validation:Enum=eth;ETH;ib;IB
type PolicyLinkType string

// Normalized is the link type as PFs report it (eth, ib).
func (l PolicyLinkType) Normalized() LinkType { return LinkType(strings.ToLower(string(l))) }

// NicSelector chooses the PFs a policy configures. Every field that is set
// must match; at least one must be set, except in a sharedRdma policy,
// which leaves it empty ({}).
type NicSelector struct {
	// Vendor is the PF's PCI vendor ID, e.g. 15b3 (NVIDIA/Mellanox), 8086 (Intel).
	// +optional
	Vendor HexID `json:"vendor,omitempty"`
	// DeviceID is the PF's PCI device ID, e.g. 101b (ConnectX-6).
	// +optional
	DeviceID HexID `json:"deviceID,omitempty"`
	// PFNames are PF netdev names, each optionally with a VF index range
	// ("ens1f0#0-3") so that several policies can share one PF.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	PFNames []PFName `json:"pfNames,omitempty"`
	// RootDevices are PF PCI addresses.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	RootDevices []PCIAddress `json:"rootDevices,omitempty"`
	// NetFilter selects PFs by the network they attach to, as
	// "openstack/NetworkID:<uuid>" (sriov-network-operator's field, kept so
	// its policies load unchanged). The node agent reports no network
	// metadata yet, so a policy with a netFilter selects no PF (its Ready
	// condition says so) rather than every PF the other fields match.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	NetFilter string `json:"netFilter,omitempty"`
}

// RDMASpec asks for RDMA on the policy's VFs.
// +kubebuilder:validation:XValidation:rule="!(has(self.provider) && self.provider == 'soft-roce' && has(self.mode) && self.mode == 'exclusive')",fieldPath=".mode",message="provider soft-roce needs mode shared: a soft-RoCE device is registered in the node's initial RDMA namespace and cannot change namespace, so in exclusive mode no pod would see it; use mode shared (each pod still gets only its own device's /dev/infiniband files)"
type RDMASpec struct {
	// Enabled exposes each VF's RDMA device (and its /dev/infiniband char
	// devices) with the VF.
	Enabled bool `json:"enabled"`
	// Mode is the node's RDMA network-namespace mode. shared: RDMA devices
	// stay visible in every namespace; exclusive: the CNI moves the VF's RDMA
	// device into the pod. The node can only be in one mode: two policies
	// asking for different modes on one node conflict.
	// +optional
	// +kubebuilder:default=shared
	Mode RDMAMode `json:"mode,omitempty"`
	// Provider is where the RDMA devices come from. hardware (the default):
	// the VF's own RDMA device, as ConnectX VFs have. soft-roce: a software
	// RoCE device (rdma_rxe) created on the VF's netdev inside the pod's
	// network namespace when the pod starts, for NICs with SR-IOV but no
	// RDMA engine, so that verbs applications (perftest, UCX, NCCL, MPI) run
	// unchanged. A soft-roce pool hands its devices to containers through
	// CDI, which the container runtime must support (containerd 2.x, CRI-O
	// 1.28+).
	// +optional
	// +kubebuilder:default=hardware
	Provider RDMAProvider `json:"provider,omitempty"`
}

// Allocation is how a policy's pool is handed to pods.
// +kubebuilder:validation:Enum=DevicePlugin;DRA
type Allocation string

const (
	// AllocationDevicePlugin: pods request sluice.dev/<resourceName> and the
	// kubelet device plugin allocates the VFs.
	AllocationDevicePlugin Allocation = "DevicePlugin"
	// AllocationDRA: the node's DRA driver publishes the VFs in
	// ResourceSlices and pods claim them through a ResourceClaim of the
	// pool's DeviceClass.
	AllocationDRA Allocation = "DRA"
)

// VFConfigDefaults are the per-VF settings applied when VFs are created;
// a VFNetwork's own settings win when a pod attaches.
type VFConfigDefaults struct {
	// Trust lets the VF change its MAC and enter promiscuous mode.
	// +optional
	Trust *bool `json:"trust,omitempty"`
	// SpoofChk drops frames whose source MAC is not the VF's.
	// +optional
	SpoofChk *bool `json:"spoofChk,omitempty"`
}

// NetworkNodePolicySpec is what a platform team asks of the matching nodes.
// +kubebuilder:validation:XValidation:rule="!(((has(self.rdma) && self.rdma.enabled) || (has(self.isRdma) && self.isRdma)) && self.deviceType == 'vfio-pci')",fieldPath=".rdma",message="rdma.enabled (or isRdma) cannot be combined with deviceType vfio-pci: a VF bound to vfio-pci has no kernel RDMA device; use deviceType netdevice or disable rdma"
// +kubebuilder:validation:XValidation:rule="!(has(self.isRdma) && has(self.rdma) && self.isRdma != self.rdma.enabled)",fieldPath=".isRdma",message="isRdma and rdma.enabled disagree: isRdma is sriov-network-operator's spelling of rdma.enabled; set only one of them, or both to the same value"
// +kubebuilder:validation:XValidation:rule="!has(self.allocation) || self.allocation != 'DRA' || self.resourceName.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",fieldPath=".resourceName",message="allocation DRA names the pool's DeviceClass after resourceName, so it must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit; rename the pool or use allocation DevicePlugin"
// +kubebuilder:validation:XValidation:rule="!has(self.allocation) || self.allocation != 'DRA' || !has(self.excludeTopology) || !self.excludeTopology",fieldPath=".excludeTopology",message="excludeTopology only affects the device plugin's Topology Manager hints; a DRA pool publishes the NUMA node as a device attribute that claims may ignore: remove excludeTopology or use allocation DevicePlugin"
// +kubebuilder:validation:XValidation:rule="!has(self.allocation) || self.allocation != 'DRA' || !has(self.needVhostNet) || !self.needVhostNet",fieldPath=".needVhostNet",message="needVhostNet is not supported with allocation DRA yet: remove needVhostNet or use allocation DevicePlugin"
// +kubebuilder:validation:XValidation:rule="!has(self.allocation) || self.allocation != 'DRA' || !has(self.rdma) || !has(self.rdma.provider) || self.rdma.provider != 'soft-roce'",fieldPath=".rdma.provider",message="rdma.provider soft-roce is not supported with allocation DRA yet (its devices are created by sluice-cni): use provider hardware or allocation DevicePlugin"
// +kubebuilder:validation:XValidation:rule="!has(self.nicSelector.pfNames) || self.nicSelector.pfNames.all(p, !p.contains('#') || int(p.split('#')[1].split('-')[1]) < self.numVfs)",fieldPath=".nicSelector.pfNames",message="a VF range in nicSelector.pfNames ends at or beyond numVfs: VF indices run from 0 to numVfs-1"
// +kubebuilder:validation:XValidation:rule="has(self.sharedRdma) || has(self.nicSelector.vendor) || has(self.nicSelector.deviceID) || (has(self.nicSelector.pfNames) && size(self.nicSelector.pfNames) > 0) || (has(self.nicSelector.rootDevices) && size(self.nicSelector.rootDevices) > 0)",fieldPath=".nicSelector",message="nicSelector must set at least one of vendor, deviceID, pfNames or rootDevices (only a sharedRdma policy leaves it empty)"
// +kubebuilder:validation:XValidation:rule="!has(self.sharedRdma) || (self.numVfs == 0 && !has(self.nicSelector.vendor) && !has(self.nicSelector.deviceID) && !has(self.nicSelector.pfNames) && !has(self.nicSelector.rootDevices) && !has(self.nicSelector.netFilter))",fieldPath=".sharedRdma",message="sharedRdma shares existing RDMA devices and creates no VFs: set numVfs 0 and leave nicSelector empty ({}); choose the devices with sharedRdma's vendors, deviceIDs, drivers, ifNames and linkTypes"
// +kubebuilder:validation:XValidation:rule="!has(self.sharedRdma) || (!has(self.rdma) && !(has(self.isRdma) && self.isRdma) && !has(self.mtu) && !has(self.vfConfig) && !(has(self.externallyManaged) && self.externallyManaged) && !(has(self.needVhostNet) && self.needVhostNet) && !(has(self.dryRun) && self.dryRun) && !has(self.linkType) && (!has(self.deviceType) || self.deviceType == 'netdevice'))",fieldPath=".sharedRdma",message="sharedRdma is a pool of shared RDMA devices, not of VFs: remove rdma, isRdma, mtu, vfConfig, externallyManaged, needVhostNet, dryRun and linkType (use sharedRdma.linkTypes), and keep deviceType netdevice"
// +kubebuilder:validation:XValidation:rule="!has(self.sharedRdma) || !has(self.allocation) || self.allocation != 'DRA'",fieldPath=".allocation",message="a sharedRdma pool is served by the device plugin only (DRA has no shared-device model in sluice yet): remove allocation or set it to DevicePlugin"
type NetworkNodePolicySpec struct {
	// NodeSelector chooses the nodes by label; empty selects every node.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Priority settles conflicts on one PF: the lower number wins.
	// +optional
	// +kubebuilder:default=99
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=99
	Priority int32 `json:"priority,omitempty"`
	// NicSelector chooses the PFs on each node.
	NicSelector NicSelector `json:"nicSelector"`
	// NumVfs is the number of VFs to create on each selected PF. 0 (as
	// sriov-network-operator allows) asks for no VFs: a selected PF that no
	// other policy claims VFs on is set to 0 VFs, and, when nicSelector has
	// neither pfNames nor rootDevices, the policy advertises the selected
	// PFs themselves (those without VFs), as sriov-network-operator does.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=256
	NumVfs int32 `json:"numVfs"`
	// MTU of the PF and its VFs; unset leaves the PF's MTU as it is.
	// +optional
	// +kubebuilder:validation:Minimum=576
	// +kubebuilder:validation:Maximum=9216
	MTU int32 `json:"mtu,omitempty"`
	// DeviceType is how the VFs are handed to pods.
	// +optional
	// +kubebuilder:default=netdevice
	DeviceType DeviceType `json:"deviceType,omitempty"`
	// RDMA exposes the VFs' RDMA devices.
	// +optional
	RDMA *RDMASpec `json:"rdma,omitempty"`
	// IsRdma is sriov-network-operator's spelling of rdma.enabled, accepted
	// so that its policies load unchanged: true is rdma.enabled with the
	// default mode (shared) and provider (hardware). Set with rdma, it must
	// agree with rdma.enabled.
	// +optional
	IsRdma bool `json:"isRdma,omitempty"`
	// LinkType is the PF link layer to expect, eth or ib in either case (as
	// sriov-network-operator accepts); a PF of another link type is not
	// selected. Unlike sriov-network-operator, sluice never changes a PF's
	// link type: on NICs that can switch (ConnectX VPI) that is a firmware
	// setting that takes a reboot, so set it with the vendor's tool first.
	// +optional
	LinkType PolicyLinkType `json:"linkType,omitempty"`
	// ResourceName is the pool pods request as sluice.dev/<resourceName>:
	// letters (either case), digits, '-' and '_', starting and ending with a
	// letter or digit, as sriov-network-operator accepts. Names that differ
	// only in case or in '-' versus '_' are distinct pools but share one
	// PCIDEVICE_ environment variable name: avoid such pairs.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?$`
	ResourceName string `json:"resourceName"`
	// ExcludeTopology advertises the pool's VFs without their NUMA node, so
	// that the kubelet's Topology Manager does not align them with the pod's
	// CPUs (sriov-network-operator's field). Every policy feeding one
	// resourceName on a node must agree on it.
	// +optional
	ExcludeTopology bool `json:"excludeTopology,omitempty"`
	// NeedVhostNet hands /dev/vhost-net and /dev/net/tun to every container
	// allocated a VF of the pool, for user-space networking that needs
	// them (sriov-network-operator's field). Every policy feeding one
	// resourceName on a node must agree on it.
	// +optional
	NeedVhostNet bool `json:"needVhostNet,omitempty"`
	// ExternallyManaged: the VFs of the selected PFs are created by someone
	// else (a boot script, the NIC's firmware); sluice never changes their
	// count, not even when the policy goes, and only configures and
	// advertises the VFs that exist (sriov-network-operator's field). A PF
	// with fewer VFs than numVfs is not configured; the node reports why.
	// +optional
	ExternallyManaged bool `json:"externallyManaged,omitempty"`
	// VFConfig are the VF settings applied at creation.
	// +optional
	VFConfig *VFConfigDefaults `json:"vfConfig,omitempty"`
	// Allocation is how the pool is handed to pods. DevicePlugin (the
	// default): pods request sluice.dev/<resourceName> and the kubelet
	// device plugin allocates the VFs. DRA: the node's DRA driver publishes
	// the pool's VFs in ResourceSlices, the operator renders a DeviceClass
	// named <resourceName>, and pods claim VFs through ResourceClaims. A
	// pool is served by exactly one of the two: every policy feeding one
	// resourceName on a node must agree on it.
	// +optional
	// +kubebuilder:default=DevicePlugin
	Allocation Allocation `json:"allocation,omitempty"`

	// SharedRDMA makes the policy a shared RDMA pool (what a
	// k8s-rdma-shared-dev-plugin configList entry describes) instead of a
	// VF pool: pods request <prefix>/<resourceName> and each gets every RDMA
	// device the selectors choose. Such a policy creates and configures no
	// VFs, so numVfs must be 0, nicSelector empty, and rdma, isRdma, mtu,
	// vfConfig, externallyManaged, needVhostNet, dryRun, linkType unset and
	// deviceType netdevice.
	// +optional
	SharedRDMA *SharedRDMASpec `json:"sharedRdma,omitempty"`
	// DryRun computes, on every matched node, whether applying this policy
	// would drain the node and which pods would be evicted, and reports it in
	// status.dryRun, without applying anything.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// RDMAEnabled reports whether the policy asks for RDMA, through
// rdma.enabled or its alias isRdma.
func (s *NetworkNodePolicySpec) RDMAEnabled() bool {
	return s.IsRdma || (s.RDMA != nil && s.RDMA.Enabled)
}

// DRA reports whether the policy's pool is allocated through DRA.
func (s *NetworkNodePolicySpec) DRA() bool { return s.Allocation == AllocationDRA }

// DryRunNode is what applying a dry-run policy would do to one node.
type DryRunNode struct {
	// Node is the node's name.
	Node string `json:"node"`
	// DrainRequired is true when the change removes or reconfigures VFs in use.
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

// NetworkNodePolicyStatus reports how far the policy is applied.
type NetworkNodePolicyStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// MatchedNodes counts the nodes where the policy selects at least one PF.
	// +optional
	MatchedNodes int32 `json:"matchedNodes"`
	// ReadyNodes counts matched nodes whose last sync succeeded with this
	// policy's generation applied.
	// +optional
	ReadyNodes int32 `json:"readyNodes"`
	// DryRun lists what the policy would do, when spec.dryRun is set.
	// +optional
	// +listType=map
	// +listMapKey=node
	DryRun []DryRunNode `json:"dryRun,omitempty"`
	// Conditions: Ready, Conflict.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NetworkNodePolicy asks every node matching its selector to create VFs on
// the selected NICs and advertise them as sluice.dev/<resourceName>.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=nnp
// +kubebuilder:printcolumn:name="Resource",type=string,JSONPath=`.spec.resourceName`
// +kubebuilder:printcolumn:name="VFs",type=integer,JSONPath=`.spec.numVfs`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.deviceType`
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=`.spec.priority`
// +kubebuilder:printcolumn:name="Matched",type=integer,JSONPath=`.status.matchedNodes`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyNodes`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NetworkNodePolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NetworkNodePolicySpec   `json:"spec"`
	Status NetworkNodePolicyStatus `json:"status,omitempty"`
}

// NetworkNodePolicyList is a list of NetworkNodePolicy.
// +kubebuilder:object:root=true
type NetworkNodePolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkNodePolicy `json:"items"`
}
