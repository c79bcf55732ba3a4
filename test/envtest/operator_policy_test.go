package envtest

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

func testPolicy(name, label string, priority int32, pfNames ...sluicev1.PFName) *sluicev1.NetworkNodePolicy {
	return &sluicev1.NetworkNodePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: sluicev1.NetworkNodePolicySpec{
			NodeSelector: map[string]string{"sluice.dev/test": label},
			Priority:     priority,
			NicSelector:  sluicev1.NicSelector{Vendor: "15b3", PFNames: pfNames},
			NumVfs:       8,
			ResourceName: "res-" + name[len(name)-1:],
		},
	}
}

func getNNS(name string) (*sluicev1.NodeNetworkState, error) {
	nns := &sluicev1.NodeNetworkState{}
	return nns, env.Client.Get(context.Background(), client.ObjectKey{Name: name}, nns)
}

func getPolicy(name string) (*sluicev1.NetworkNodePolicy, error) {
	p := &sluicev1.NetworkNodePolicy{}
	return p, env.Client.Get(context.Background(), client.ObjectKey{Name: name}, p)
}

// groupsOf renders a node's VF groups as "pf:policy@generation:range".
func groupsOf(ifaces []sluicev1.InterfaceSpec) []string {
	var out []string
	for _, in := range ifaces {
		for _, g := range in.VFGroups {
			out = append(out, in.Name+":"+g.Policy+"@"+itoa(g.PolicyGeneration)+":"+string(g.VFRange))
		}
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func getNode(name string) (*corev1.Node, error) {
	n := &corev1.Node{}
	return n, env.Client.Get(context.Background(), client.ObjectKey{Name: name}, n)
}

// policyCounts waits for a policy's status to report these counts for its
// current generation, and returns the policy.
func policyCounts(t *testing.T, name string, matched, ready int32, readyStatus metav1.ConditionStatus, reason string) *sluicev1.NetworkNodePolicy {
	t.Helper()
	var p *sluicev1.NetworkNodePolicy
	eventually(t, "policy "+name+" status", func() error {
		var err error
		if p, err = getPolicy(name); err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, sluicev1.ConditionReady)
		if p.Status.ObservedGeneration != p.Generation || p.Status.MatchedNodes != matched || p.Status.ReadyNodes != ready ||
			c == nil || c.Status != readyStatus || c.Reason != reason {
			return errorf("status = %+v, want matched=%d ready=%d Ready=%s/%s", p.Status, matched, ready, readyStatus, reason)
		}
		return nil
	})
	return p
}

func TestOperatorRendersPoliciesAndCountsReadyNodes(t *testing.T) {
	startOperator(t)
	label := uniqueName(t, "l")
	nodes := []string{uniqueName(t, "n0"), uniqueName(t, "n1"), uniqueName(t, "n2")}
	for _, n := range nodes {
		createNode(t, n, map[string]string{"sluice.dev/test": label})
	}
	// Two of the agents have reported; the third node's NodeNetworkState
	// is created by the operator.
	agentReports(t, nodes[0], twoPFs())
	agentReports(t, nodes[1], twoPFs())
	pa := testPolicy(uniqueName(t, "a"), label, 10, "ens1f0#0-3")
	pb := testPolicy(uniqueName(t, "b"), label, 10, "ens1f0#4-7", "ens1f1")
	pb.Spec.RDMA = &sluicev1.RDMASpec{Enabled: true, Mode: sluicev1.RDMAModeExclusive}
	createPolicy(t, pa)
	createPolicy(t, pb)

	wantGroups := []string{"ens1f0:" + pa.Name + "@1:0-3", "ens1f0:" + pb.Name + "@1:4-7", "ens1f1:" + pb.Name + "@1:0-7"}
	for _, n := range nodes[:2] {
		eventually(t, "NodeNetworkState "+n+" rendered", func() error {
			nns, err := getNNS(n)
			if err != nil {
				return err
			}
			if got := groupsOf(nns.Spec.Interfaces); !slices.Equal(got, wantGroups) {
				return errorf("groups = %v, want %v", got, wantGroups)
			}
			if nns.Spec.RDMAMode != sluicev1.RDMAModeExclusive {
				return errorf("rdmaMode = %q", nns.Spec.RDMAMode)
			}
			if len(nns.Spec.Pools) != 2 || !slices.Equal(nns.Spec.Pools[1].Selectors.PFNames, []string{"ens1f0#4-7", "ens1f1#0-7"}) || !nns.Spec.Pools[1].Selectors.IsRdma {
				return errorf("pools = %+v", nns.Spec.Pools)
			}
			if len(nns.OwnerReferences) != 1 || nns.OwnerReferences[0].Kind != "Node" || nns.OwnerReferences[0].Name != n {
				return errorf("the agent-created state is not owned by its node: %+v", nns.OwnerReferences)
			}
			return nil
		})
	}
	eventually(t, "operator creates the missing NodeNetworkState, owned by its node", func() error {
		nns, err := getNNS(nodes[2])
		if err != nil {
			return err
		}
		if len(nns.OwnerReferences) != 1 || nns.OwnerReferences[0].Name != nodes[2] || len(nns.Spec.Interfaces) != 0 {
			return errorf("nns = %+v", nns.ObjectMeta)
		}
		return nil
	})

	// Matched where the agent reported PFs; ready nowhere yet.
	policyCounts(t, pa.Name, 2, 0, metav1.ConditionFalse, "Progressing")
	agentReports(t, nodes[2], twoPFs())
	policyCounts(t, pa.Name, 3, 0, metav1.ConditionFalse, "Progressing")
	policyCounts(t, pb.Name, 3, 0, metav1.ConditionFalse, "Progressing")

	for i, n := range nodes {
		// The agent may only report success for the spec it applied.
		eventually(t, "node "+n+" rendered", func() error {
			nns, err := getNNS(n)
			if err != nil || len(nns.Spec.Interfaces) != 2 {
				return errorf("not rendered yet (%v)", err)
			}
			return nil
		})
		agentSynced(t, n, sluicev1.SyncSucceeded, nil)
		reason := "Progressing"
		status := metav1.ConditionFalse
		if i == len(nodes)-1 {
			reason, status = "Applied", metav1.ConditionTrue
		}
		policyCounts(t, pa.Name, 3, int32(i+1), status, reason)
	}
	policyCounts(t, pb.Name, 3, 3, metav1.ConditionTrue, "Applied")

	// A new generation is not ready until the agents applied it.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := getPolicy(pa.Name)
		if err != nil {
			return err
		}
		p.Spec.MTU = 9000
		return env.Client.Update(context.Background(), p)
	})
	if err != nil {
		t.Fatal(err)
	}
	policyCounts(t, pa.Name, 3, 0, metav1.ConditionFalse, "Progressing")
	eventually(t, "MTU rendered", func() error {
		nns, err := getNNS(nodes[0])
		if err != nil {
			return err
		}
		if in := nns.Spec.Interfaces[0]; in.MTU != 9000 || in.VFGroups[0].PolicyGeneration != 2 || nns.Status.ObservedGeneration == nns.Generation {
			return errorf("interface = %+v", in)
		}
		return nil
	})
	agentSynced(t, nodes[0], sluicev1.SyncFailed, nil)
	p := policyCounts(t, pa.Name, 3, 0, metav1.ConditionFalse, "SyncFailed")
	if c := meta.FindStatusCondition(p.Status.Conditions, sluicev1.ConditionReady); !strings.Contains(c.Message, nodes[0]) || !strings.Contains(c.Message, "device busy") {
		t.Errorf("SyncFailed message does not name the node and its error: %q", c.Message)
	}
	// pb did not change, but every node state did (the PF MTU): no node
	// counts as ready for pb before its agent applied the new state.
	policyCounts(t, pb.Name, 3, 0, metav1.ConditionFalse, "SyncFailed")
}

func TestOperatorReportsConflicts(t *testing.T) {
	startOperator(t)
	label := uniqueName(t, "l")
	node := uniqueName(t, "n")
	createNode(t, node, map[string]string{"sluice.dev/test": label})
	agentReports(t, node, twoPFs())

	winner := testPolicy(uniqueName(t, "w"), label, 5, "ens1f0#2-5")
	loser := testPolicy(uniqueName(t, "l"), label, 20, "ens1f0#0-3", "ens1f1")
	createPolicy(t, loser)
	createPolicy(t, winner)

	eventually(t, "loser reports the conflict", func() error {
		p, err := getPolicy(loser.Name)
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, sluicev1.ConditionConflict)
		if c == nil || c.Status != metav1.ConditionTrue {
			return errorf("Conflict = %+v", c)
		}
		for _, want := range []string{winner.Name, loser.Name, node, "ens1f0", "0000:3b:00.0"} {
			if !strings.Contains(c.Message, want) {
				return errorf("Conflict message %q does not name %s", c.Message, want)
			}
		}
		return nil
	})
	// Each policy's status is its own reconcile's write: the winner's may
	// land after the loser's.
	eventually(t, "winner reports no conflict", func() error {
		p, err := getPolicy(winner.Name)
		if err != nil {
			return err
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, sluicev1.ConditionConflict); c == nil || c.Status != metav1.ConditionFalse {
			return errorf("winner Conflict = %+v, want False", c)
		}
		return nil
	})
	// The loser keeps what does not overlap.
	eventually(t, "loser's overlapping claim dropped", func() error {
		nns, err := getNNS(node)
		if err != nil {
			return err
		}
		want := []string{"ens1f0:" + winner.Name + "@1:2-5", "ens1f1:" + loser.Name + "@1:0-7"}
		if got := groupsOf(nns.Spec.Interfaces); !slices.Equal(got, want) {
			return errorf("groups = %v, want %v", got, want)
		}
		return nil
	})
	policyCounts(t, loser.Name, 1, 0, metav1.ConditionFalse, "Conflict")

	for _, name := range []string{winner.Name, loser.Name} {
		eventually(t, "Warning event on "+name, func() error {
			var evs eventsv1.EventList
			if err := env.Client.List(context.Background(), &evs, client.InNamespace("default")); err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.Regarding.Kind == "NetworkNodePolicy" && e.Regarding.Name == name && e.Reason == "Conflict" && e.Type == "Warning" &&
					strings.Contains(e.Note, winner.Name) && strings.Contains(e.Note, loser.Name) && e.Related != nil {
					return nil
				}
			}
			return errorf("no Conflict event regarding %s among %d events", name, len(evs.Items))
		})
	}

	// Equal priorities: the older policy keeps the PF and both report it.
	older := testPolicy(uniqueName(t, "o"), label, 50, "ens1f1#0-1")
	older.Spec.NicSelector.PFNames = nil
	older.Spec.NicSelector.RootDevices = []sluicev1.PCIAddress{"0000:3b:00.1"}
	older.Spec.NodeSelector = map[string]string{"sluice.dev/test": label}
	// Keep the first pair out of the way: only the PF 0000:3b:00.1 matters.
	if err := env.Client.Delete(context.Background(), loser); err != nil {
		t.Fatal(err)
	}
	createPolicy(t, older)
	time.Sleep(1100 * time.Millisecond) // creation times have a resolution of a second
	newer := testPolicy(uniqueName(t, "y"), label, 50, "ens1f1#6-7")
	createPolicy(t, newer)
	for _, name := range []string{older.Name, newer.Name} {
		eventually(t, name+" reports the equal-priority conflict", func() error {
			p, err := getPolicy(name)
			if err != nil {
				return err
			}
			c := meta.FindStatusCondition(p.Status.Conditions, sluicev1.ConditionConflict)
			if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, older.Name) || !strings.Contains(c.Message, newer.Name) || !strings.Contains(c.Message, "created first") {
				return errorf("Conflict = %+v", c)
			}
			return nil
		})
	}
	eventually(t, "older policy keeps the PF", func() error {
		nns, err := getNNS(node)
		if err != nil {
			return err
		}
		got := groupsOf(nns.Spec.Interfaces)
		if !slices.Contains(got, "ens1f1:"+older.Name+"@1:0-7") || slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, newer.Name) }) {
			return errorf("groups = %v", got)
		}
		return nil
	})
}

func TestOperatorRerendersOnNodeLabelChange(t *testing.T) {
	startOperator(t)
	label := uniqueName(t, "l")
	node := uniqueName(t, "n")
	createNode(t, node, map[string]string{"sluice.dev/test": label})
	agentReports(t, node, twoPFs())
	p := testPolicy(uniqueName(t, "p"), label, 10)
	createPolicy(t, p)
	rendered := func(want int) func() error {
		return func() error {
			nns, err := getNNS(node)
			if err != nil {
				return err
			}
			if len(nns.Spec.Interfaces) != want {
				return errorf("%d interfaces rendered, want %d", len(nns.Spec.Interfaces), want)
			}
			return nil
		}
	}
	eventually(t, "rendered", rendered(2))
	policyCounts(t, p.Name, 1, 0, metav1.ConditionFalse, "Progressing")

	setLabel := func(v string) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := getNode(node)
			if err != nil {
				return err
			}
			n.Labels["sluice.dev/test"] = v
			return env.Client.Update(context.Background(), n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setLabel("elsewhere")
	eventually(t, "emptied after the label went away", rendered(0))
	policyCounts(t, p.Name, 0, 0, metav1.ConditionFalse, "NoMatchingNodes")
	setLabel(label)
	eventually(t, "rendered again after the label came back", rendered(2))
	policyCounts(t, p.Name, 1, 0, metav1.ConditionFalse, "Progressing")
}

func TestOperatorDryRun(t *testing.T) {
	startOperator(t)
	label := uniqueName(t, "l")
	node := uniqueName(t, "n")
	createNode(t, node, map[string]string{"sluice.dev/test": label})
	agentReports(t, node, twoPFs())
	real := testPolicy(uniqueName(t, "r"), label, 10, "ens1f0#0-3")
	dry := testPolicy(uniqueName(t, "d"), label, 10, "ens1f0#4-7")
	dry.Spec.DryRun = true
	createPolicy(t, real)
	createPolicy(t, dry)

	eventually(t, "dry run rendered apart", func() error {
		nns, err := getNNS(node)
		if err != nil {
			return err
		}
		if got := groupsOf(nns.Spec.Interfaces); !slices.Equal(got, []string{"ens1f0:" + real.Name + "@1:0-3"}) {
			return errorf("interfaces = %v", got)
		}
		if nns.Spec.DryRun == nil || !slices.Equal(nns.Spec.DryRun.Policies, []string{dry.Name}) ||
			len(groupsOf(nns.Spec.DryRun.Interfaces)) != 2 {
			return errorf("dryRun = %+v", nns.Spec.DryRun)
		}
		return nil
	})
	policyCounts(t, dry.Name, 1, 0, metav1.ConditionFalse, "DryRunPending")
	agentSynced(t, node, sluicev1.SyncSucceeded, &sluicev1.DryRunResult{
		Policies: []string{dry.Name}, DrainRequired: true, PodsToEvict: []string{"ns/pod-a"}, Changes: []string{"ens1f0: 4 -> 8 VFs"},
	})
	p := policyCounts(t, dry.Name, 1, 1, metav1.ConditionTrue, "DryRunReported")
	want := []sluicev1.DryRunNode{{Node: node, DrainRequired: true, PodsToEvict: []string{"ns/pod-a"}, Changes: []string{"ens1f0: 4 -> 8 VFs"}}}
	if len(p.Status.DryRun) != 1 || p.Status.DryRun[0].Node != want[0].Node || !p.Status.DryRun[0].DrainRequired ||
		!slices.Equal(p.Status.DryRun[0].PodsToEvict, want[0].PodsToEvict) || !slices.Equal(p.Status.DryRun[0].Changes, want[0].Changes) {
		t.Errorf("status.dryRun = %+v, want %+v", p.Status.DryRun, want)
	}
	policyCounts(t, real.Name, 1, 1, metav1.ConditionTrue, "Applied")
}
