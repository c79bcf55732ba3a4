package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// The lists below read the informer caches without copying: every object
// they return is shared with the cache and must not be modified.

func listPolicies(ctx context.Context, c client.Reader) ([]*sluicev1.NetworkNodePolicy, error) {
	var l sluicev1.NetworkNodePolicyList
	if err := c.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list NetworkNodePolicies: %w", err)
	}
	out := make([]*sluicev1.NetworkNodePolicy, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out, nil
}

func listNodes(ctx context.Context, c client.Reader) ([]metav1.PartialObjectMetadata, error) {
	var l metav1.PartialObjectMetadataList
	l.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	if err := c.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list Nodes: %w", err)
	}
	return l.Items, nil
}

func listNodeStates(ctx context.Context, c client.Reader) (map[string]*sluicev1.NodeNetworkState, error) {
	var l sluicev1.NodeNetworkStateList
	if err := c.List(ctx, &l, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list NodeNetworkStates: %w", err)
	}
	out := make(map[string]*sluicev1.NodeNetworkState, len(l.Items))
	for i := range l.Items {
		out[l.Items[i].Name] = &l.Items[i]
	}
	return out, nil
}
