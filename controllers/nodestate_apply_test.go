package controllers

import (
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// The apply sends the fields the operator owns and nothing else: no
// resourceVersion (which would make it conflict with the agent's status
// patches), no status, and an empty spec as an object (an apply that
// leaves the spec out would give up owning it).
func TestNodeStateConfig(t *testing.T) {
	node := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1", ResourceVersion: "7"}}
	for _, tc := range []struct {
		spec sluicev1.NodeNetworkStateSpec
		want string
	}{{
		want: `{"kind":"NodeNetworkState","apiVersion":"sluice.dev/v1alpha1","metadata":{"name":"n1","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n1","uid":"u1"}]},"spec":{}}`,
	}, {
		spec: sluicev1.NodeNetworkStateSpec{RDMAMode: sluicev1.RDMAModeExclusive, Interfaces: []sluicev1.InterfaceSpec{{PCIAddress: "0000:3b:00.0", NumVfs: 4}}},
		want: `{"kind":"NodeNetworkState","apiVersion":"sluice.dev/v1alpha1","metadata":{"name":"n1","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n1","uid":"u1"}]},"spec":{"interfaces":[{"pciAddress":"0000:3b:00.0","numVfs":4}],"rdmaMode":"exclusive"}}`,
	}} {
		b, err := json.Marshal(nodeStateConfig(node, tc.spec))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("apply configuration\n got %s\nwant %s", b, tc.want)
		}
	}
}
