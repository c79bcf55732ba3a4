// Package tenancy is the rule for which namespaces may attach pods through
// a VFNetwork, shared by the operator (which renders a VFNetwork's
// NetworkAttachmentDefinition only where the rule allows) and the DRA
// driver (which resolves a claim's vfNetwork reference under the same
// rule). It is pure: it reads the VFNetwork and the platform namespace
// only.
//
// A VFNetwork in the operator's own namespace is a platform VFNetwork: only
// the platform's admins can write there, so it may render into any
// namespace and set every VF option. A VFNetwork in any other namespace is
// a tenant's: it renders into its own namespace only, and may not set what
// reaches beyond its own pods' VFs:
//
//   - spec.networkNamespace other than its own: a NetworkAttachmentDefinition
//     in someone else's namespace;
//   - spec.trust "on": the VF may change its MAC and see all traffic of its
//     VLAN (promiscuous mode);
//   - spec.spoofChk "off": the VF may send frames with any source MAC;
//   - spec.vlan, spec.vlanQoS, spec.vlanProto: the VLAN is the L2 boundary
//     between tenants that the platform draws;
//   - spec.minTxRate: a guaranteed rate reserves bandwidth of the PF that
//     every other VF on it shares;
//   - spec.capabilities with "mac": true: the pod picks the VF's MAC, and
//     so could take another host's;
//   - spec.metaPlugins: chained plugins run on the node with the CNI's
//     privileges (host-device alone would hand the pod a node NIC);
//   - spec.logFile: sluice-cni runs as root and appends to that path.
//
// What affects only the pod's own VF stays open to tenants: linkState,
// maxTxRate (a cap), mtu (bounded by the PF's), rdma, ipam, spoofChk "on"
// and trust "off". config/admission's ValidatingAdmissionPolicy holds the
// same list in CEL; test/envtest checks that the two agree.
package tenancy

import (
	"fmt"
	"regexp"
	"strings"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// NetworkNamespace is the namespace a VFNetwork attaches pods in, where
// its NetworkAttachmentDefinition goes: spec.networkNamespace, else the
// VFNetwork's own.
func NetworkNamespace(vfn *sluicev1.VFNetwork) string {
	if vfn.Spec.NetworkNamespace != "" {
		return vfn.Spec.NetworkNamespace
	}
	return vfn.Namespace
}

// Refusals returns, for a tenant VFNetwork, one phrase per field it may
// not set, naming the field and the fix; nil for an allowed one and for
// every VFNetwork in platformNS. The phrases are the admission policy's,
// word for word.
func Refusals(vfn *sluicev1.VFNetwork, platformNS string) []string {
	if vfn.Namespace == platformNS {
		return nil
	}
	s := &vfn.Spec
	var out []string
	if t := NetworkNamespace(vfn); t != vfn.Namespace {
		out = append(out, fmt.Sprintf(`spec.networkNamespace "%s": it renders only into its own namespace, %s; remove spec.networkNamespace`, t, vfn.Namespace))
	}
	if s.Trust == sluicev1.On {
		out = append(out, `spec.trust "on": a trusted VF may change its MAC and receive all traffic of its VLAN; remove spec.trust or set it to "off"`)
	}
	if s.SpoofChk == sluicev1.Off {
		out = append(out, `spec.spoofChk "off": without spoof checking the VF may send as any MAC; remove spec.spoofChk or set it to "on"`)
	}
	if s.VLAN != 0 {
		out = append(out, fmt.Sprintf("spec.vlan %d: the VLAN is an L2 boundary the platform draws; remove spec.vlan", s.VLAN))
	}
	if s.VLANQoS != 0 {
		out = append(out, fmt.Sprintf("spec.vlanQoS %d: the VLAN tag is the platform's; remove spec.vlanQoS", s.VLANQoS))
	}
	if s.VLANProto != "" {
		out = append(out, fmt.Sprintf(`spec.vlanProto "%s": the VLAN tag is the platform's; remove spec.vlanProto`, s.VLANProto))
	}
	if s.MinTxRate != 0 {
		out = append(out, fmt.Sprintf("spec.minTxRate %d: a guaranteed rate reserves bandwidth that other VFs of the PF share; remove spec.minTxRate (spec.maxTxRate, a cap, is allowed)", s.MinTxRate))
	}
	if macCapabilityRE.MatchString(s.Capabilities) {
		out = append(out, `spec.capabilities "mac": true: the pod would pick its VF's MAC, another host's too; set "mac" to false or leave it out ("ips" is allowed)`)
	}
	if s.MetaPlugins != "" {
		out = append(out, "spec.metaPlugins: chained plugins run on the node with the CNI's privileges; remove spec.metaPlugins")
	}
	if s.LogFile != "" {
		out = append(out, `spec.logFile "`+s.LogFile+`": sluice-cni runs as root and would append to that node path; remove spec.logFile (spec.logLevel alone logs to the runtime's log)`)
	}
	return out
}

// macCapabilityRE finds "mac": true in spec.capabilities, as the admission
// policy's CEL does (the CRD's rule allows no other shape).
var macCapabilityRE = regexp.MustCompile(`"mac"[[:space:]]*:[[:space:]]*true`)

// Refusal is why the operator renders nothing for a VFNetwork, the Ready
// message of reason PlatformOnly: what a VFNetwork outside
// platformNamespace asks for that only a platform VFNetwork may, and how a
// platform admin gives its namespace the same attachment. It is the
// admission policy's message for the same object (config/admission), and
// empty for an allowed VFNetwork.
func Refusal(vfn *sluicev1.VFNetwork, platformNamespace string) string {
	refusals := Refusals(vfn, platformNamespace)
	if len(refusals) == 0 {
		return ""
	}
	return fmt.Sprintf("a VFNetwork outside namespace %s may not ask for this: %s. A platform admin can make this attachment as a VFNetwork in %s with spec.networkNamespace: %s",
		platformNamespace, strings.Join(refusals, "; "), platformNamespace, NetworkNamespace(vfn))
}

// UseRefusal says why pods in namespace ns may not attach through the
// VFNetwork, the rule the operator applies by rendering its
// NetworkAttachmentDefinition: only into NetworkNamespace, and not at all
// for a tenant VFNetwork Refusal refuses. Empty: they may.
func UseRefusal(vfn *sluicev1.VFNetwork, platformNamespace, ns string) string {
	if r := Refusal(vfn, platformNamespace); r != "" {
		return "the operator renders nothing for it: " + r
	}
	if target := NetworkNamespace(vfn); target != ns {
		if vfn.Namespace == platformNamespace {
			return fmt.Sprintf("VFNetwork %s/%s is a platform VFNetwork for namespace %s (spec.networkNamespace), not %s: a platform admin can make one with spec.networkNamespace: %s",
				vfn.Namespace, vfn.Name, target, ns, ns)
		}
		return fmt.Sprintf("VFNetwork %s/%s is namespace %s's (a tenant VFNetwork serves its own namespace only), not %s's: create the VFNetwork in %s, or ask a platform admin for one in %s with spec.networkNamespace: %s",
			vfn.Namespace, vfn.Name, target, ns, ns, platformNamespace, ns)
	}
	return ""
}
