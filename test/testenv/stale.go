package testenv

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// StaleReads is a client as a lagging cache makes it: a read of the one
// NodeNetworkState NNS returns that copy, taken earlier, whatever was
// written since. Everything else goes to Client.
type StaleReads struct {
	client.Client
	NNS *sluicev1.NodeNetworkState
}

func (c StaleReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if out, ok := obj.(*sluicev1.NodeNetworkState); ok && key.Name == c.NNS.Name {
		c.NNS.DeepCopyInto(out)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}
