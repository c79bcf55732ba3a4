package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OnOff is a switch written as sriov-cni writes it.
// +kubebuilder:validation:Enum=on;off
type OnOff string

const (
	On  OnOff = "on"
	Off OnOff = "off"
)

// VFLinkState is the administrative link state of a VF as seen by its pod.
// +kubebuilder:validation:Enum=auto;enable;disable
type VFLinkState string

// VFNetworkSpec is an attachment pods make to VFs of one pool.
//
// Who may ask for what depends on the VFNetwork's namespace. A VFNetwork in
// the operator's own namespace (sluice-system unless installed elsewhere) is
// a platform VFNetwork: it may render into any namespace and set every
// field. A VFNetwork in any other namespace is a tenant's: it renders only
// into its own namespace and may not set the fields marked "platform
// VFNetworks only" below. A ValidatingAdmissionPolicy (config/admission)
// rejects such a tenant VFNetwork, and the operator refuses to render one
// (Ready=False, reason PlatformOnly) and removes what it rendered for it
// before. See docs/vfnetwork.md.
// +kubebuilder:validation:XValidation:rule="!has(self.vlanQoS) || self.vlanQoS == 0 || (has(self.vlan) && self.vlan > 0)",fieldPath=".vlanQoS",message="vlanQoS needs a vlan above 0"
// +kubebuilder:validation:XValidation:rule="!has(self.vlanProto) || self.vlanProto.lowerAscii() != '802.1ad' || (has(self.vlan) && self.vlan > 0)",fieldPath=".vlanProto",message="vlanProto 802.1ad needs a vlan above 0"
// +kubebuilder:validation:XValidation:rule="!has(self.minTxRate) || !has(self.maxTxRate) || self.maxTxRate == 0 || self.minTxRate <= self.maxTxRate",fieldPath=".minTxRate",message="minTxRate must not exceed maxTxRate"
// +kubebuilder:validation:XValidation:rule="!has(self.mtu) || self.mtu == 0 || self.mtu >= 68",fieldPath=".mtu",message="mtu must be 0 (keep the VF's MTU) or 68-9216: sluice-cni refuses an MTU below 68, the smallest IPv4 MTU"
type VFNetworkSpec struct {
	// ResourceName is the pool whose VFs pods of this network get; the
	// NetworkAttachmentDefinition's k8s.v1.cni.cncf.io/resourceName
	// annotation is <prefix>/<resourceName>, the prefix being the
	// operator's --resource-prefix (sluice.dev unless set).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	ResourceName string `json:"resourceName"`
	// NetworkNamespace is where the NetworkAttachmentDefinition is created;
	// defaults to the VFNetwork's own namespace. Platform VFNetworks only:
	// a tenant's VFNetwork may name only its own namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	NetworkNamespace string `json:"networkNamespace,omitempty"`
	// VLAN tag the PF applies to the VF's traffic; 0 for none. Platform
	// VFNetworks only: the VLAN is an L2 boundary the platform chooses.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	VLAN int32 `json:"vlan,omitempty"`
	// VLANQoS is the 802.1p priority of the VLAN tag. Platform VFNetworks
	// only, as the VLAN.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=7
	VLANQoS int32 `json:"vlanQoS,omitempty"`
	// VLANProto is the tag protocol, 802.1Q or 802.1ad in any case
	// (sriov-network-operator's 802.1q and 802.1AD too), rendered as
	// 802.1Q or 802.1ad; 802.1ad needs a vlan. Platform VFNetworks only,
	// as the VLAN.
	// +optional
	// +kubebuilder:validation:MaxLength=7
	// +kubebuilder:validation:XValidation:rule="self.lowerAscii() == '802.1q' || self.lowerAscii() == '802.1ad'",message="vlanProto must be 802.1Q or 802.1ad (in any case)"
	VLANProto string `json:"vlanProto,omitempty"`
	// SpoofChk drops frames whose source MAC is not the VF's. Turning it
	// off is for platform VFNetworks only; "on" is allowed to all.
	// +optional
	SpoofChk OnOff `json:"spoofChk,omitempty"`
	// Trust lets the pod change the VF's MAC and enter promiscuous mode.
	// Turning it on is for platform VFNetworks only; "off" is allowed to all.
	// +optional
	Trust OnOff `json:"trust,omitempty"`
	// LinkState of the VF: auto follows the PF. Allowed to all: it changes
	// only what the pod's own VF reports.
	// +optional
	LinkState VFLinkState `json:"linkState,omitempty"`
	// MinTxRate in Mbps; 0 for no minimum. Platform VFNetworks only: a
	// guaranteed rate reserves bandwidth of the PF that other VFs share.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinTxRate int32 `json:"minTxRate,omitempty"`
	// MaxTxRate in Mbps; 0 for no limit. Allowed to all: it only caps the
	// pod's own VF.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxTxRate int32 `json:"maxTxRate,omitempty"`
	// MTU of the VF inside the pod, 68 or more; 0 keeps the policy's.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=9216
	MTU int32 `json:"mtu,omitempty"`
	// RDMA moves the VF's RDMA device into the pod when the node is in
	// exclusive RDMA mode (in shared mode it stays visible from the host).
	// +optional
	RDMA bool `json:"rdma,omitempty"`
	// IPAM is the CNI IPAM configuration as JSON, e.g.
	// {"type":"host-local","subnet":"10.56.217.0/24"}.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	IPAM string `json:"ipam,omitempty"`
	// Capabilities are the CNI capabilities of sluice-cni in the rendered
	// configuration, as sriov-network-operator writes them: a JSON object
	// of "mac" and "ips" switches, e.g. '{"mac": true, "ips": true}'.
	// With "mac" Multus passes a pod's requested MAC (the "mac" of its
	// k8s.v1.cni.cncf.io/networks entry) as runtimeConfig.mac, which
	// sluice-cni sets on the VF; with "ips" it passes the requested
	// addresses as runtimeConfig.ips to the IPAM plugin (static, or
	// host-local). Other capabilities belong on the meta plugin that
	// honours them, in metaPlugins. "mac": true is for platform VFNetworks
	// only: the pod could pick another host's MAC.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule=`self.matches('^[[:space:]]*[{][[:space:]]*("(mac|ips)"[[:space:]]*:[[:space:]]*(true|false)[[:space:]]*(,[[:space:]]*"(mac|ips)"[[:space:]]*:[[:space:]]*(true|false)[[:space:]]*)*)?[}][[:space:]]*$')`,message=`capabilities must be a JSON object of "mac" and "ips" switches, e.g. '{"mac": true, "ips": true}': those are the capabilities sluice-cni honours; put any other on the meta plugin that uses it, in metaPlugins`
	Capabilities string `json:"capabilities,omitempty"`
	// MetaPlugins are CNI plugins chained after sluice-cni, as
	// sriov-network-operator writes them: one or more JSON objects, each
	// with a "type", separated by commas (a JSON list of them is accepted
	// too), e.g. '{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}'.
	// The NetworkAttachmentDefinition becomes a configuration list:
	// sluice-cni, then these in order. Platform VFNetworks only: a meta
	// plugin runs on the node with the CNI's privileges.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	MetaPlugins string `json:"metaPlugins,omitempty"`
	// LogLevel of sluice-cni for this network: panic, error, warning,
	// info or debug (sriov-cni's levels). Unset, sluice-cni writes only
	// warnings and errors, to its stderr (the runtime's and Multus' logs).
	// +optional
	// +kubebuilder:validation:Enum={"panic","error","warning","info","debug",""}
	LogLevel string `json:"logLevel,omitempty"`
	// LogFile is an absolute path on the node that sluice-cni appends its
	// log lines to, instead of stderr. Platform VFNetworks only: the CNI
	// runs as root and writes wherever this points.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="logFile must be an absolute path on the node, e.g. /var/log/sluice-cni.log"
	LogFile string `json:"logFile,omitempty"`
}

// VFNetworkStatus reports the rendered attachment.
type VFNetworkStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// NetworkAttachmentDefinition is namespace/name of the rendered NAD.
	// +optional
	NetworkAttachmentDefinition string `json:"networkAttachmentDefinition,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// VFNetwork renders a NetworkAttachmentDefinition that attaches pods to VFs
// of one sluice pool through the sluice CNI.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vfn
// +kubebuilder:printcolumn:name="Resource",type=string,JSONPath=`.spec.resourceName`
// +kubebuilder:printcolumn:name="VLAN",type=integer,JSONPath=`.spec.vlan`
// +kubebuilder:printcolumn:name="NAD",type=string,JSONPath=`.status.networkAttachmentDefinition`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VFNetwork struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   VFNetworkSpec   `json:"spec"`
	Status VFNetworkStatus `json:"status,omitempty"`
}

// VFNetworkList is a list of VFNetwork.
// +kubebuilder:object:root=true
type VFNetworkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VFNetwork `json:"items"`
}
