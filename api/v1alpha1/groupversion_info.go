// Package v1alpha1 contains the sluice.dev/v1alpha1 API: NetworkNodePolicy,
// NodeNetworkState and VFNetwork.
//
// +kubebuilder:object:generate=true
// +groupName=sluice.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group is the API group of every sluice type; it is also the prefix of the
// extended resources sluice advertises (sluice.dev/<resourceName>).
const Group = "sluice.dev"

// Version is the API version of this package.
const Version = "v1alpha1"

// GroupVersion is the group and version of this API. It is never modified.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// AddToScheme registers the types of this package with a scheme. It is a
// plain function rather than a SchemeBuilder filled by init(), so importing
// the package has no side effects.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&NetworkNodePolicy{}, &NetworkNodePolicyList{},
		&NodeNetworkState{}, &NodeNetworkStateList{},
		&VFNetwork{}, &VFNetworkList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
