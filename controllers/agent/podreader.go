package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podReader reads the pods the usage sources say use VFs. The manager's
// cache, whose pod informer holds this node's pods only, answers while the
// pod is there: a sync costs the API server nothing. When the cache has no
// such pod (or another of its name), the API server is asked: a pod just
// bound to the node may not have reached the cache yet, and taking it for
// gone would let a sync change a VF under it or skip its eviction. So is
// it when the cache cannot answer (its informer cannot list or watch pods)
// within cacheWait.
type podReader struct {
	cache, api client.Reader
}

// cacheWait bounds the wait for the pod informer's first list.
const cacheWait = 5 * time.Second

// get returns ref's pod on node, nil when it is gone or its name is now
// another pod's (another UID, another node).
func (r podReader) get(ctx context.Context, ref PodRef, node string) (*corev1.Pod, error) {
	key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	pod := &corev1.Pod{}
	cctx, cancel := context.WithTimeout(ctx, cacheWait)
	err := r.cache.Get(cctx, key, pod)
	cancel()
	if err == nil && samePod(pod, ref, node) {
		return pod, nil
	}
	pod = &corev1.Pod{}
	err = r.api.Get(ctx, key, pod)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get pod %s: %w", key, err)
	case !samePod(pod, ref, node):
		return nil, nil
	}
	return pod, nil
}
