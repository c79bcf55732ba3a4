package migrate

import (
	"errors"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// SNOGroup is sriov-network-operator's API group.
const SNOGroup = "sriovnetwork.openshift.io"

// Defaults of Options.
const (
	DefaultNamespace         = "sluice-system"
	DefaultResourcePrefix    = "sluice.dev"
	DefaultSNOResourcePrefix = "openshift.io"
	DefaultSNONamespace      = "sriov-network-operator"
)

// Options are the parts of the target installation a conversion needs.
type Options struct {
	// Namespace is sluice's operator namespace: VFNetworks converted from
	// SriovNetworks are platform VFNetworks there.
	Namespace string
	// ResourcePrefix is sluice's resource prefix (the operator's
	// --resource-prefix), SNOResourcePrefix SNO's (openshift.io unless its
	// deployment set RESOURCE_PREFIX).
	ResourcePrefix, SNOResourcePrefix string
	// SNONamespace is SNO's namespace, for objects read without one.
	SNONamespace string
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.ResourcePrefix == "" {
		o.ResourcePrefix = DefaultResourcePrefix
	}
	if o.SNOResourcePrefix == "" {
		o.SNOResourcePrefix = DefaultSNOResourcePrefix
	}
	if o.SNONamespace == "" {
		o.SNONamespace = DefaultSNONamespace
	}
	return o
}

// Result is a migration: the sluice objects to create, the
// NetworkAttachmentDefinitions to rewrite, the report, and the input
// objects that could not be converted.
type Result struct {
	// Objects are NetworkNodePolicies and VFNetworks, in input order (a
	// k8s-rdma-shared-dev-plugin ConfigMap makes one policy per resource).
	Objects []*unstructured.Unstructured
	// NADs are rewritten NetworkAttachmentDefinitions (only when asked).
	NADs   []*NADRewrite
	Report Report
	// Errors are *FieldError, one per input object not converted.
	Errors []error
}

// Err joins Result.Errors.
func (r *Result) Err() error { return errors.Join(r.Errors...) }

// Convert converts every input object it knows; rewriteNADs also converts
// NetworkAttachmentDefinitions of sriov-cni. Objects of other kinds are
// reported as skipped.
func Convert(in []*Object, opts Options, rewriteNADs bool) *Result {
	opts = opts.withDefaults()
	res := &Result{}
	var pools []*Object
	policies := map[string]*unstructured.Unstructured{}
	var policyOrder []string
	rendered := map[string]string{} // NAD namespace/name -> the SriovNetwork that renders it
	for _, o := range in {
		if isSNO(o, "SriovNetwork") || isSNO(o, "SriovIBNetwork") {
			ns, _, _ := unstructured.NestedString(o.U.Object, "spec", "networkNamespace")
			if ns == "" {
				ns = namespaceOr(o, opts.SNONamespace)
			}
			rendered[ns+"/"+o.U.GetName()] = o.Describe()
		}
	}
	seen := map[string]string{} // output kind/namespace/name -> input
	emit := func(o *Object, u *unstructured.Unstructured, c *conv) {
		key := u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
		if prev, dup := seen[key]; dup {
			res.Errors = append(res.Errors, c.refuse("metadata.name", fmt.Sprintf("converts to %s, as %s does: rename one of them", key, prev)))
			return
		}
		seen[key] = o.Describe()
		res.Objects = append(res.Objects, u)
	}
	for _, o := range in {
		c := newConv(o)
		var (
			u   *unstructured.Unstructured
			err error
			// more are objects beyond u, from an input that makes several.
			more []*unstructured.Unstructured
		)
		switch {
		case isSNO(o, "SriovNetworkNodePolicy"):
			var p *sluicev1.NetworkNodePolicy
			p, err = convertPolicy(o, opts, c)
			if err == nil {
				u, err = toUnstructured(p)
				if err == nil {
					// spec.priority is written even when 0: an SNO policy
					// without one has priority 0, sluice's default is 99.
					err = unstructured.SetNestedField(u.Object, int64(p.Spec.Priority), "spec", "priority")
				}
				if err == nil {
					policies[p.Name] = u
					policyOrder = append(policyOrder, p.Name)
				}
			}
		case isSNO(o, "SriovNetwork"):
			var n *sluicev1.VFNetwork
			n, err = convertSriovNetwork(o, opts, c)
			if err == nil {
				u, err = toUnstructured(n)
			}
		case isSNO(o, "SriovIBNetwork"):
			var n *sluicev1.VFNetwork
			n, err = convertIBNetwork(o, opts, c)
			if err == nil {
				u, err = toUnstructured(n)
			}
		case isSNO(o, "SriovNetworkPoolConfig"):
			pools = append(pools, o)
			continue
		case isSNO(o, "SriovOperatorConfig"):
			err = convertOperatorConfig(o, c)
		case isSNO(o, "SriovNetworkNodeState"), isSNO(o, "OVSNetwork"):
			c.add("kind", Unsupported, "", skipReason(o.U.GetKind()))
		case o.U.GetKind() == "ConfigMap" && o.U.GetAPIVersion() == "v1":
			var ps []*sluicev1.NetworkNodePolicy
			ps, err = convertDevicePluginConfigMap(o, opts, c)
			for _, p := range ps {
				if err != nil {
					break
				}
				var pu *unstructured.Unstructured
				pu, err = toUnstructured(p)
				more = append(more, pu)
			}
		case o.U.GetKind() == "NetworkAttachmentDefinition":
			if !rewriteNADs {
				c.add("kind", Unsupported, "", "NetworkAttachmentDefinitions are rewritten only with --rewrite-nads; to leave those of sriov-cni as they are, "+sriovAlias)
				break
			}
			var rw *NADRewrite
			rw, err = rewriteNAD(o, opts, rendered, c)
			if rw != nil {
				res.NADs = append(res.NADs, rw)
			}
		default:
			c.add("kind", Unsupported, "", fmt.Sprintf("%s %s is not an object this tool converts (SriovNetworkNodePolicy, SriovNetwork, SriovIBNetwork, SriovNetworkPoolConfig, SriovOperatorConfig, a device plugin ConfigMap or a NetworkAttachmentDefinition); skipped", o.U.GetAPIVersion(), o.U.GetKind()))
		}
		res.Report.Add(c.entries...)
		if err != nil {
			res.Errors = append(res.Errors, err)
			continue
		}
		if u != nil {
			more = append([]*unstructured.Unstructured{u}, more...)
		}
		for _, x := range more {
			before := len(c.entries)
			emit(o, x, c)
			res.Report.Add(c.entries[before:]...)
		}
	}
	// Pool configs last: their rdmaMode lands on the converted policies.
	for _, o := range pools {
		c := newConv(o)
		err := convertPoolConfig(o, policies, policyOrder, c)
		res.Report.Add(c.entries...)
		if err != nil {
			res.Errors = append(res.Errors, err)
		}
	}
	return res
}

func skipReason(kind string) string {
	switch kind {
	case "SriovNetworkNodeState":
		return "status written by SNO's config daemon, not configuration: sluice's agents write NodeNetworkStates of their own; skipped"
	default:
		return "OVSNetwork attaches VFs through OVS hardware offload (switchdev), which sluice does not configure: keep such networks on SNO or on an OVS CNI; skipped"
	}
}

func isSNO(o *Object, kind string) bool {
	gv, err := schema.ParseGroupVersion(o.U.GetAPIVersion())
	return err == nil && gv.Group == SNOGroup && o.U.GetKind() == kind
}

func namespaceOr(o *Object, def string) string {
	if ns := o.U.GetNamespace(); ns != "" {
		return ns
	}
	return def
}

// toUnstructured converts a typed sluice object, without status or an
// empty creationTimestamp.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T: %w", obj, err)
	}
	delete(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	return &unstructured.Unstructured{Object: m}, nil
}

// sortedKeys is the sorted keys of m.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
