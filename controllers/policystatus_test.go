package controllers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// stateFor is the NodeNetworkState of testNode after the operator rendered
// it with policies and the agent reported sync.
func stateFor(name string, sync sluicev1.SyncStatus, current bool, policies ...*sluicev1.NetworkNodePolicy) *sluicev1.NodeNetworkState {
	n := testNode(nil)
	n.Name = name
	nns := &sluicev1.NodeNetworkState{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 5},
		Spec:       NewMerger(policies).Node(n).Spec,
		Status:     sluicev1.NodeNetworkStateStatus{Interfaces: n.Interfaces, SyncStatus: sync, ObservedGeneration: 4},
	}
	if current {
		nns.Status.ObservedGeneration = 5
	}
	return nns
}

func statusOf(p *sluicev1.NetworkNodePolicy, all []*sluicev1.NetworkNodePolicy, views []nodeView) (sluicev1.NetworkNodePolicyStatus, *metav1.Condition, *metav1.Condition) {
	m := NewMerger(all)
	st := policyStatus(p, evaluatePolicy(p, m, m.Evaluate, views))
	return st, meta.FindStatusCondition(st.Conditions, sluicev1.ConditionReady), meta.FindStatusCondition(st.Conditions, sluicev1.ConditionConflict)
}

func TestPolicyStatusReadiness(t *testing.T) {
	p := testPolicy("p", 10, 0, nil)
	views := []nodeView{
		{name: "ready", state: stateFor("ready", sluicev1.SyncSucceeded, true, p)},
		{name: "stale-sync", state: stateFor("stale-sync", sluicev1.SyncSucceeded, false, p)},
		{name: "no-state"},
	}
	// The spec of this node was rendered from an older generation of p.
	old := p.DeepCopy()
	old.Generation = 2
	views = append(views, nodeView{name: "old-spec", state: stateFor("old-spec", sluicev1.SyncSucceeded, true, old)})

	st, ready, conflict := statusOf(p, []*sluicev1.NetworkNodePolicy{p}, views)
	if st.MatchedNodes != 3 || st.ReadyNodes != 1 || st.ObservedGeneration != 3 {
		t.Errorf("status = %+v, want matched=3 ready=1", st)
	}
	if ready.Status != metav1.ConditionFalse || ready.Reason != ReasonProgressing || !strings.Contains(ready.Message, "stale-sync, old-spec") {
		t.Errorf("Ready = %+v", ready)
	}
	if conflict.Status != metav1.ConditionFalse {
		t.Errorf("Conflict = %+v", conflict)
	}

	st, ready, _ = statusOf(p, []*sluicev1.NetworkNodePolicy{p}, views[:1])
	if st.ReadyNodes != 1 || ready.Status != metav1.ConditionTrue || ready.Reason != ReasonApplied {
		t.Errorf("all ready: %+v %+v", st, ready)
	}
	_, ready, _ = statusOf(p, []*sluicev1.NetworkNodePolicy{p}, []nodeView{{name: "no-state"}})
	if ready.Reason != ReasonNoMatchingNodes {
		t.Errorf("no matching node: %+v", ready)
	}
}

// A netFilter the agent cannot evaluate selects nothing, and says so: it
// must not widen the policy to every PF its other fields match.
func TestPolicyStatusNetFilter(t *testing.T) {
	p := testPolicy("openstack", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NicSelector.NetFilter = "openstack/NetworkID:3f1b"
	})
	if r := merge(testNode(nil), p); len(r.Spec.Interfaces) != 0 {
		t.Errorf("a netFilter policy selected %+v", r.Spec.Interfaces)
	}
	st, ready, _ := statusOf(p, []*sluicev1.NetworkNodePolicy{p}, []nodeView{{name: "n1", state: stateFor("n1", sluicev1.SyncSucceeded, true)}})
	if st.MatchedNodes != 0 || ready.Reason != ReasonNoMatchingNodes ||
		!strings.Contains(ready.Message, "spec.nicSelector.netFilter") || !strings.Contains(ready.Message, "remove netFilter") {
		t.Errorf("status %+v, Ready %+v", st, ready)
	}
}

func TestPolicyStatusInsufficientVFsAndInvalidSpec(t *testing.T) {
	big := testPolicy("big", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) { s.NumVfs = 32 })
	views := []nodeView{{name: "n1", state: stateFor("n1", sluicev1.SyncSucceeded, true, big)}}
	st, ready, conflict := statusOf(big, []*sluicev1.NetworkNodePolicy{big}, views)
	if st.MatchedNodes != 1 || st.ReadyNodes != 0 {
		t.Errorf("status = %+v", st)
	}
	if ready.Reason != ReasonInsufficientVFs || !strings.Contains(ready.Message, "n1") || !strings.Contains(ready.Message, "totalVfs") {
		t.Errorf("Ready = %+v", ready)
	}
	if conflict.Status != metav1.ConditionFalse {
		t.Errorf("too few VFs is not a conflict: %+v", conflict)
	}

	bad := testPolicy("bad", 10, 0, pfNames("ens1f0#9-1"))
	_, ready, _ = statusOf(bad, []*sluicev1.NetworkNodePolicy{bad}, views)
	if ready.Reason != ReasonInvalidSpec || !strings.Contains(ready.Message, "ens1f0#9-1") {
		t.Errorf("Ready = %+v", ready)
	}
}

func TestPolicyStatusConflicts(t *testing.T) {
	older := testPolicy("older", 10, 0, nil)
	newer := testPolicy("newer", 10, 5, nil)
	all := []*sluicev1.NetworkNodePolicy{older, newer}
	views := []nodeView{{name: "n1", state: stateFor("n1", sluicev1.SyncSucceeded, true, all...)}}

	// Equal priorities: both report the conflict, the keeper is still applied.
	_, ready, conflict := statusOf(older, all, views)
	if conflict.Status != metav1.ConditionTrue || ready.Status != metav1.ConditionTrue {
		t.Errorf("older: Conflict=%+v Ready=%+v", conflict, ready)
	}
	st, ready, conflict := statusOf(newer, all, views)
	if conflict.Status != metav1.ConditionTrue || ready.Reason != ReasonConflict || st.ReadyNodes != 0 || st.MatchedNodes != 1 {
		t.Errorf("newer: Conflict=%+v Ready=%+v status=%+v", conflict, ready, st)
	}
	for _, want := range []string{`"older"`, `"newer"`, "n1", "ens1f0"} {
		if !strings.Contains(conflict.Message, want) {
			t.Errorf("Conflict message %q does not mention %s", conflict.Message, want)
		}
	}
}

func TestSummarizeLimitsTheMessage(t *testing.T) {
	var fs []Finding
	for i := range 12 {
		fs = append(fs, Finding{Node: fmt.Sprintf("n%d", i%4), Message: fmt.Sprintf("m%d", i)})
	}
	got := summarize(fs)
	if !strings.HasPrefix(got, "12 on 4 node(s): m0 | m1") || !strings.HasSuffix(got, "m4 (and 7 more)") {
		t.Errorf("summarize = %q", got)
	}
	if got := listSome([]string{"a", "b", "c", "d", "e", "f", "g"}); got != "a, b, c, d, e (and 2 more)" {
		t.Errorf("listSome = %q", got)
	}
}

func TestPolicyNodeGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, err := newPolicyNodeGauge(reg)
	if err != nil {
		t.Fatal(err)
	}
	// A second manager in the same process shares the collector.
	g2, err := newPolicyNodeGauge(reg)
	if err != nil || g2.vec != g.vec {
		t.Fatalf("second registration: %v", err)
	}
	g.set("a", 10, 4)
	g.set("b", 3, 3)
	g.forget("b")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"sluice_networknodepolicy_nodes,policy=a,state=matched": 10,
		"sluice_networknodepolicy_nodes,policy=a,state=ready":   4,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gathered %v, want %v", got, want)
	}
}

// TestPolicyStatusNumVfsZero: a numVfs 0 policy, which renders no VF group,
// is ready on a synced node once no group of an older generation (with VFs)
// of it is left in the spec.
func TestPolicyStatusNumVfsZero(t *testing.T) {
	p := testPolicy("p", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) { s.NumVfs = 0 })
	old := testPolicy("p", 10, 0, nil)
	old.Generation = 2
	views := []nodeView{
		{name: "ready", state: stateFor("ready", sluicev1.SyncSucceeded, true, p)},
		{name: "old-spec", state: stateFor("old-spec", sluicev1.SyncSucceeded, true, old)},
	}
	st, ready, _ := statusOf(p, []*sluicev1.NetworkNodePolicy{p}, views)
	if st.MatchedNodes != 2 || st.ReadyNodes != 1 || ready.Status != metav1.ConditionFalse || !strings.Contains(ready.Message, "old-spec") {
		t.Errorf("status = %+v", st)
	}
}
