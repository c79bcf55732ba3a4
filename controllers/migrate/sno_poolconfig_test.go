package migrate

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const rdmaPolicies = `apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetworkNodePolicy
metadata: {name: rdma-pool}
spec: {resourceName: rdma, numVfs: 4, isRdma: true, nodeSelector: {pool: gpu, zone: a}, nicSelector: {vendor: '15b3'}}
---
apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetworkNodePolicy
metadata: {name: rdma-other}
spec: {resourceName: rdma2, numVfs: 4, isRdma: true, nodeSelector: {zone: a}, nicSelector: {vendor: '15b3'}}
---
apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetworkNodePolicy
metadata: {name: rdma-cpu}
spec: {resourceName: rdma3, numVfs: 4, isRdma: true, nodeSelector: {pool: cpu}, nicSelector: {vendor: '15b3'}}
---
`

// TestConvertPoolConfig: every field of SriovNetworkPoolConfig's spec; its
// rdmaMode lands on the RDMA policies whose nodes all lie in the pool, and
// a policy that may or may not is reported, not guessed.
func TestConvertPoolConfig(t *testing.T) {
	in := rdmaPolicies + `apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetworkPoolConfig
metadata: {name: gpu, namespace: sriov-network-operator}
spec:
  nodeSelector: {matchLabels: {pool: gpu}}
  maxUnavailable: 2
  rdmaMode: exclusive
  ovsHardwareOffloadConfig: {name: worker}
`
	objs, err := DecodeBytes([]byte(in), "t")
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(objs, Options{}, false)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	got := map[string]Status{}
	for _, e := range res.Report.Entries {
		if e.Object == "SriovNetworkPoolConfig sriov-network-operator/gpu" {
			if got[e.Field] != Unsupported {
				got[e.Field] = e.Status
			}
		}
	}
	want := map[string]Status{"spec.nodeSelector": Changed, "spec.maxUnavailable": Changed, "spec.rdmaMode": Unsupported, "spec.ovsHardwareOffloadConfig": Unsupported}
	for f, st := range want {
		if got[f] != st {
			t.Errorf("%s: %s, want %s\n%s", f, got[f], st, dump(res))
		}
	}
	if len(got) != len(want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	rdma := map[string]map[string]any{}
	for _, u := range res.Objects {
		m, _, _ := unstructured.NestedMap(u.Object, "spec", "rdma")
		rdma[u.GetName()] = m
		if _, has, _ := unstructured.NestedBool(u.Object, "spec", "isRdma"); has == (m != nil) {
			t.Errorf("%s: isRdma and rdma both set or both unset: %v", u.GetName(), u.Object["spec"])
		}
	}
	if m := rdma["rdma-pool"]; m["mode"] != "exclusive" || m["enabled"] != true {
		t.Errorf("rdma-pool: rdma %v, want exclusive", m)
	}
	if rdma["rdma-other"] != nil || rdma["rdma-cpu"] != nil {
		t.Errorf("policies not (certainly) in the pool changed: %v", rdma)
	}
}

func TestConvertPoolConfigFields(t *testing.T) {
	const head = "apiVersion: sriovnetwork.openshift.io/v1\nkind: SriovNetworkPoolConfig\nmetadata: {name: p}\n"
	runCases(t, []fieldCase{
		{
			name: "percentage and shared",
			in:   head + "spec: {nodeSelector: {}, maxUnavailable: '10%', rdmaMode: shared, ovsHardwareOffloadConfig: {}}\n",
			want: map[string]Status{"spec.nodeSelector": Changed, "spec.maxUnavailable": Unsupported, "spec.rdmaMode": Mapped, "spec.ovsHardwareOffloadConfig": Mapped},
		},
		{
			name: "no nodeSelector selects no node",
			in:   head + "spec: {rdmaMode: exclusive, typo: 1}\n",
			want: map[string]Status{"spec.rdmaMode": Changed, "spec.typo": Unsupported},
		},
		{
			name:    "a bad rdmaMode",
			in:      head + "spec: {nodeSelector: {}, rdmaMode: private}\n",
			wantErr: "spec.rdmaMode",
			want:    map[string]Status{"spec.nodeSelector": Changed, "spec.rdmaMode": Unsupported},
		},
	}, Options{}, false)
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		sel  string
		ns   map[string]string
		want coverage
	}{
		{`{}`, nil, coverAll},
		{`{matchLabels: {a: b}}`, map[string]string{"a": "b", "c": "d"}, coverAll},
		{`{matchLabels: {a: b}}`, map[string]string{"a": "x"}, coverNone},
		{`{matchLabels: {a: b}}`, map[string]string{"c": "d"}, coverSome},
		{`{matchExpressions: [{key: a, operator: In, values: [b, c]}]}`, map[string]string{"a": "c"}, coverAll},
		{`{matchExpressions: [{key: a, operator: NotIn, values: [b]}]}`, map[string]string{"a": "b"}, coverNone},
		{`{matchExpressions: [{key: a, operator: Exists}]}`, map[string]string{}, coverSome},
		{`{matchExpressions: [{key: a, operator: DoesNotExist}]}`, map[string]string{"a": "1"}, coverNone},
	} {
		sel := mustSelector(t, tc.sel)
		if got := covers(sel, tc.ns); got != tc.want {
			t.Errorf("covers(%s, %v) = %d, want %d", tc.sel, tc.ns, got, tc.want)
		}
	}
}
