package migrate

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

const poolConfigKind = "SriovNetworkPoolConfig"

// convertPoolConfig carries an SriovNetworkPoolConfig (SNO v1.6 api/v1
// fields) over: its rdmaMode onto the converted RDMA policies (by name in
// policies, in order) whose nodes all lie in the pool; the rest into
// report entries, as sluice has no pool object.
func convertPoolConfig(in *Object, policies map[string]*unstructured.Unstructured, order []string, c *conv) error {
	spec, ok, err := specOf(in)
	if err != nil || !ok {
		return c.refuse("spec", "missing or not an object: an "+poolConfigKind+" needs a spec")
	}
	var sel *metav1.LabelSelector
	if raw, ok := spec.get("nodeSelector"); ok {
		m, isMap := raw.(map[string]any)
		sel = &metav1.LabelSelector{}
		if !isMap || runtime.DefaultUnstructuredConverter.FromUnstructured(m, sel) != nil {
			return c.refuse("spec.nodeSelector", fmt.Sprintf("%v is not a label selector (matchLabels, matchExpressions)", raw))
		}
		c.add("spec.nodeSelector", Changed, "", "sluice has no node pools: it is used here only to find the NetworkNodePolicies its rdmaMode applies to")
	}

	if v, ok, err := spec.str("rdmaMode"); err != nil {
		return c.refuse("spec.rdmaMode", err.Error())
	} else if ok && v != "" {
		if v != "shared" && v != "exclusive" {
			return c.refuse("spec.rdmaMode", fmt.Sprintf("%q: shared or exclusive", v))
		}
		applyRDMAMode(v, sel, policies, order, c)
	}

	if raw, ok := spec.get("maxUnavailable"); ok {
		switch v := raw.(type) {
		case int64, float64:
			c.add("spec.maxUnavailable", Changed, "operator --max-unavailable", fmt.Sprintf("%v: sluice's is one cluster-wide number of nodes that drain at once (operator flag --max-unavailable=%v), not one per pool", v, v))
		default:
			c.add("spec.maxUnavailable", Unsupported, "", fmt.Sprintf("%v: sluice's --max-unavailable is a number of nodes, cluster-wide; a percentage of a pool has no equivalent: work out the number and set the operator's --max-unavailable", v))
		}
	}
	if o, ok, err := spec.object("ovsHardwareOffloadConfig"); err != nil {
		return c.refuse("spec.ovsHardwareOffloadConfig", err.Error())
	} else if ok {
		if len(o.m) == 0 {
			c.add("spec.ovsHardwareOffloadConfig", Mapped, "", "empty: nothing to carry over")
		} else {
			c.add("spec.ovsHardwareOffloadConfig", Unsupported, "", "OVS hardware offload needs switchdev, which sluice does not configure; keep these nodes' offloaded PFs under SNO")
		}
	}
	c.reportUnread(spec, poolConfigKind)
	return nil
}

// applyRDMAMode sets rdma.mode on every RDMA policy the pool covers.
// Shared is sluice's default, so it changes nothing.
func applyRDMAMode(mode string, sel *metav1.LabelSelector, policies map[string]*unstructured.Unstructured, order []string, c *conv) {
	if sel == nil {
		c.add("spec.rdmaMode", Changed, "", mode+": the pool has no nodeSelector, so it selects no node in SNO; nothing carried over")
		return
	}
	var set, unknown []string
	for _, name := range order {
		u := policies[name]
		rdma, _, _ := unstructured.NestedBool(u.Object, "spec", "isRdma")
		if !rdma {
			continue
		}
		ns, _, _ := unstructured.NestedStringMap(u.Object, "spec", "nodeSelector")
		switch covers(sel, ns) {
		case coverAll:
			if mode == "shared" {
				set = append(set, name)
				continue
			}
			unstructured.RemoveNestedField(u.Object, "spec", "isRdma")
			_ = unstructured.SetNestedMap(u.Object, map[string]any{"enabled": true, "mode": mode}, "spec", "rdma")
			set = append(set, name)
		case coverSome:
			unknown = append(unknown, name)
		}
	}
	switch {
	case mode == "shared":
		c.add("spec.rdmaMode", Mapped, "", "shared: sluice's default RDMA mode; policies "+list(set)+" keep it")
	case len(set) > 0:
		c.add("spec.rdmaMode", Changed, "NetworkNodePolicy spec.rdma.mode", fmt.Sprintf("%s: set as rdma: {enabled: true, mode: %s} (replacing isRdma) on NetworkNodePolicies %s, whose nodes all lie in this pool. sluice's RDMA mode is per node: every RDMA policy of a node must agree", mode, mode, list(set)))
	default:
		c.add("spec.rdmaMode", Changed, "", mode+": no converted RDMA policy selects only nodes of this pool; set rdma.mode on the NetworkNodePolicies of its nodes yourself")
	}
	if len(unknown) > 0 {
		c.add("spec.rdmaMode", Unsupported, "", fmt.Sprintf("%s: cannot tell from labels alone whether the nodes of RDMA policies %s lie in this pool; set rdma: {enabled: true, mode: %s} on them yourself if they do", mode, list(unknown), mode))
	}
}

type coverage int

const (
	coverNone coverage = iota // the policy's nodes are none of the pool's
	coverSome                 // cannot tell
	coverAll                  // every node of the policy is in the pool
)

// covers says whether a node carrying the labels nodeSelector asks for
// (and perhaps others) is certainly in the pool, certainly not, or either.
func covers(sel *metav1.LabelSelector, nodeSelector map[string]string) coverage {
	all := true
	for k, v := range sel.MatchLabels {
		have, ok := nodeSelector[k]
		switch {
		case ok && have != v:
			return coverNone
		case !ok:
			all = false
		}
	}
	for _, e := range sel.MatchExpressions {
		have, ok := nodeSelector[e.Key]
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			if ok && !contains(e.Values, have) {
				return coverNone
			}
			all = all && ok
		case metav1.LabelSelectorOpNotIn:
			if ok && contains(e.Values, have) {
				return coverNone
			}
			all = all && ok
		case metav1.LabelSelectorOpExists:
			all = all && ok
		case metav1.LabelSelectorOpDoesNotExist:
			if ok {
				return coverNone
			}
			all = false
		default:
			all = false
		}
	}
	if all {
		return coverAll
	}
	return coverSome
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

func list(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}
