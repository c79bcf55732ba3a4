package agent

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podsReader is a client.Reader over a fixed set of pods that counts Gets.
type podsReader struct {
	pods map[client.ObjectKey]*corev1.Pod
	fail error
	gets int
}

func (r *podsReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	r.gets++
	if r.fail != nil {
		return r.fail
	}
	p, ok := r.pods[key]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, key.Name)
	}
	p.DeepCopyInto(obj.(*corev1.Pod))
	return nil
}

func (r *podsReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	panic("not used")
}

func readerPod(name, uid, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid)}, Spec: corev1.PodSpec{NodeName: node}}
}

func readerOf(pods ...*corev1.Pod) *podsReader {
	r := &podsReader{pods: map[client.ObjectKey]*corev1.Pod{}}
	for _, p := range pods {
		r.pods[client.ObjectKeyFromObject(p)] = p
	}
	return r
}

// The cache answers for a pod it has; the API server is asked only when
// the cache has no such pod (not there yet, or another of the name).
func TestPodReader(t *testing.T) {
	ctx := context.Background()
	ref := func(name, uid string) PodRef { return PodRef{Namespace: "ns", Name: name, UID: uid} }
	for _, c := range []struct {
		what       string
		cache, api *podsReader
		ref        PodRef
		found      bool
		apiGets    int
	}{
		{"in the cache", readerOf(readerPod("a", "1", "n1")), readerOf(readerPod("a", "1", "n1")), ref("a", "1"), true, 0},
		{"not in the cache yet", readerOf(), readerOf(readerPod("a", "1", "n1")), ref("a", "1"), true, 1},
		{"in the cache under a new UID, the old pod gone", readerOf(readerPod("a", "2", "n1")), readerOf(readerPod("a", "2", "n1")), ref("a", "1"), false, 1},
		{"the cache's copy is older than the API's", readerOf(readerPod("a", "1", "n1")), readerOf(readerPod("a", "2", "n1")), ref("a", "2"), true, 1},
		{"gone", readerOf(), readerOf(), ref("a", "1"), false, 1},
		{"the cache cannot answer", &podsReader{fail: errors.New("timed out waiting for cache to be synced")}, readerOf(readerPod("a", "1", "n1")), ref("a", "1"), true, 1},
		{"on another node", readerOf(), readerOf(readerPod("a", "1", "n2")), ref("a", "1"), false, 1},
	} {
		r := podReader{cache: c.cache, api: c.api}
		pod, err := r.get(ctx, c.ref, "n1")
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if (pod != nil) != c.found {
			t.Errorf("%s: found %v, want %v", c.what, pod != nil, c.found)
		}
		if c.api.gets != c.apiGets {
			t.Errorf("%s: %d API reads, want %d", c.what, c.api.gets, c.apiGets)
		}
	}
}
