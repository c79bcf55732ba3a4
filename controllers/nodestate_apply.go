package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// NodeStateFieldManager is the server-side apply field manager of the
// NodeNetworkState specs the operator renders. It owns the spec and the
// owner reference to the Node; the node agent writes the status under its
// own manager, so neither write can conflict with the other.
const NodeStateFieldManager = "sluice-operator-nodestate"

// nodeStateApply is the apply configuration of a NodeNetworkState: the
// fields the operator owns. The spec is the operator's alone, rendered
// whole and atomic in the schema, so its typed form is its configuration
// (the sluice API has no generated apply configurations).
type nodeStateApply struct {
	metav1ac.TypeMetaApplyConfiguration    `json:",inline"`
	*metav1ac.ObjectMetaApplyConfiguration `json:"metadata,omitempty"`
	Spec                                   *sluicev1.NodeNetworkStateSpec `json:"spec,omitempty"`
}

// IsApplyConfiguration marks nodeStateApply as a runtime.ApplyConfiguration.
func (*nodeStateApply) IsApplyConfiguration() {}

// nodeStateConfig renders what the operator applies to a node's
// NodeNetworkState: the owner reference that makes it go with the Node,
// and the spec.
func nodeStateConfig(node *metav1.PartialObjectMetadata, spec sluicev1.NodeNetworkStateSpec) *nodeStateApply {
	a := &nodeStateApply{
		ObjectMetaApplyConfiguration: metav1ac.ObjectMeta().
			WithName(node.Name).
			WithOwnerReferences(metav1ac.OwnerReference().
				WithAPIVersion("v1").WithKind("Node").WithName(node.Name).WithUID(node.UID)),
		Spec: &spec,
	}
	a.WithAPIVersion(sluicev1.GroupVersion.String()).WithKind("NodeNetworkState")
	return a
}
