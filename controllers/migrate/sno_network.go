package migrate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers"
)

// keepAsNAD is the way around what a VFNetwork cannot express.
const keepAsNAD = "keep this network as a NetworkAttachmentDefinition instead of a VFNetwork: export SNO's (kubectl get net-attach-def -o yaml), delete its ownerReferences and its " + snoOwnerAnnotation + " annotation (else SNO and the garbage collector own it), and convert the copy with -f ... --rewrite-nads"

var (
	vfNetworkResourceNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsLabelRE              = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// convertSriovNetwork converts an SriovNetwork (SNO v1.6 api/v1 fields) into a
// platform VFNetwork in opts.Namespace that renders the same
// NetworkAttachmentDefinition name in the same namespace.
func convertSriovNetwork(in *Object, opts Options, c *conv) (*sluicev1.VFNetwork, error) {
	return convertNetwork(in, opts, c, "SriovNetwork")
}

// convertIBNetwork converts an SriovIBNetwork (SNO v1.6 api/v1 fields) as
// convertSriovNetwork does; the CNI changes from ib-sriov-cni to sluice-cni.
func convertIBNetwork(in *Object, opts Options, c *conv) (*sluicev1.VFNetwork, error) {
	return convertNetwork(in, opts, c, "SriovIBNetwork")
}

func convertNetwork(in *Object, opts Options, c *conv, kind string) (*sluicev1.VFNetwork, error) {
	opts = opts.withDefaults()
	meta, err := objectMeta(in, opts.Namespace, c)
	if err != nil {
		return nil, err
	}
	n := &sluicev1.VFNetwork{
		TypeMeta:   metav1.TypeMeta{APIVersion: sluicev1.GroupVersion.String(), Kind: "VFNetwork"},
		ObjectMeta: meta,
	}
	spec, ok, err := specOf(in)
	if err != nil || !ok {
		return nil, c.refuse("spec", "missing or not an object: an "+kind+" needs a spec")
	}
	s := &n.Spec
	bad := func(err error) error { return c.refuse(fieldOf(err, spec), err.Error()) }
	ib := kind == "SriovIBNetwork"
	if ib {
		c.add("kind", Changed, "VFNetwork", "pods attach through sluice-cni instead of ib-sriov-cni: sluice-cni moves the VF's IPoIB netdev into the pod but assigns no InfiniBand GUID, so the VFs need GUIDs from the subnet manager or firmware")
	}

	if v, ok, err := spec.str("resourceName"); err != nil {
		return nil, bad(err)
	} else if !ok || v == "" {
		return nil, c.refuse("spec.resourceName", "missing: name the pool the network's VFs come from")
	} else if len(v) > 63 || !vfNetworkResourceNameRE.MatchString(v) {
		return nil, c.refuse("spec.resourceName", fmt.Sprintf("%q: a VFNetwork's resourceName takes lower case letters, digits and '-' only: rename the pool (the policy's resourceName and the pods' requests), or %s", v, keepAsNAD))
	} else {
		s.ResourceName = v
		st, detail := Mapped, ""
		if opts.ResourcePrefix != opts.SNOResourcePrefix {
			st, detail = Changed, fmt.Sprintf("the NetworkAttachmentDefinition's resource annotation becomes %s/%s (was %s/%s)", opts.ResourcePrefix, v, opts.SNOResourcePrefix, v)
		}
		c.add("spec.resourceName", st, "spec.resourceName", detail)
	}

	target := namespaceOr(in, opts.SNONamespace)
	if v, ok, err := spec.str("networkNamespace"); err != nil {
		return nil, bad(err)
	} else if ok && v != "" {
		target = v
		c.add("spec.networkNamespace", Mapped, "spec.networkNamespace", "")
	} else {
		c.add("spec.networkNamespace", Changed, "spec.networkNamespace", fmt.Sprintf("absent: SNO renders the NetworkAttachmentDefinition in the %s's own namespace, %s; written out so the VFNetwork (in %s) renders it there too", kind, target, opts.Namespace))
	}
	if !dnsLabelRE.MatchString(target) || len(target) > 63 {
		return nil, c.refuse("spec.networkNamespace", fmt.Sprintf("%q is not a namespace name", target))
	}
	s.NetworkNamespace = target
	c.add("metadata.name", Changed, "metadata.name", fmt.Sprintf("the VFNetwork renders NetworkAttachmentDefinition %s/%s, the one SNO rendered: it does so once SNO's is gone (delete the %s, SNO then deletes its NetworkAttachmentDefinition); until then the VFNetwork reports NADNotManaged and pods keep SNO's", target, in.U.GetName(), kind))

	if v, ok, err := spec.str("ipam"); err != nil {
		return nil, bad(err)
	} else if ok && strings.TrimSpace(v) != "" {
		ipam, detail, err := convertIPAM(v)
		if err != nil {
			return nil, c.refuse("spec.ipam", err.Error())
		}
		s.IPAM = ipam
		st := Mapped
		if detail != "" {
			st = Changed
		}
		c.add("spec.ipam", st, "spec.ipam", detail)
	}

	if v, ok, err := spec.str("linkState"); err != nil {
		return nil, bad(err)
	} else if ok && v != "" {
		switch ls := sluicev1.VFLinkState(v); ls {
		case "auto", "enable", "disable":
			s.LinkState = ls
			c.add("spec.linkState", Mapped, "spec.linkState", "")
		default:
			return nil, c.refuse("spec.linkState", fmt.Sprintf("%q: auto, enable or disable", v))
		}
	}

	if v, ok, err := spec.str("capabilities"); err != nil {
		return nil, bad(err)
	} else if ok && strings.TrimSpace(v) != "" {
		if err := convertCapabilities(v, s, ib, opts, c); err != nil {
			return nil, err
		}
	}
	if v, ok, err := spec.str("metaPlugins"); err != nil {
		return nil, bad(err)
	} else if ok && strings.TrimSpace(v) != "" {
		if err := convertMetaPlugins(v, s, kind, opts, c); err != nil {
			return nil, err
		}
	}

	if !ib {
		if err := convertVFSettings(spec, s, c); err != nil {
			return nil, err
		}
	}
	c.reportUnread(spec, kind)
	if err := checkVFNetwork(n, opts, c); err != nil {
		return nil, err
	}
	return n, nil
}

// checkVFNetwork checks the converted VFNetwork as the operator will (a
// guard against this package and the operator drifting apart) and says,
// on its metadata.namespace entry, which of its fields only a platform
// VFNetwork may set: the operator must run in opts.Namespace.
func checkVFNetwork(n *sluicev1.VFNetwork, opts Options, c *conv) error {
	if err := controllers.CheckCNIConfig(n.Spec); err != nil {
		field, _, _ := strings.Cut(err.Error(), " ")
		if !strings.HasPrefix(field, "spec.") {
			field = "spec"
		}
		return c.refuse(field, fmt.Sprintf("the converted VFNetwork would not render: %v", err))
	}
	refusals := controllers.TenantRefusals(n, "")
	if len(refusals) == 0 {
		return nil
	}
	note := fmt.Sprintf("a platform VFNetwork: %s must be the namespace the operator runs in (its --namespace), else the VFNetwork is a tenant's and is refused for %s", opts.Namespace, platformFields(refusals))
	for i := range c.entries {
		if c.entries[i].Field == "metadata.namespace" {
			c.entries[i].Detail += "; " + note
			return nil
		}
	}
	c.add("metadata.namespace", Mapped, "metadata.namespace", note)
	return nil
}

// platformFields is the fields named by tenant refusals ("spec.vlan 7:
// ..."), joined.
func platformFields(refusals []string) string {
	fields := make([]string, 0, len(refusals))
	for _, r := range refusals {
		f, _, _ := strings.Cut(r, " ")
		fields = append(fields, strings.TrimSuffix(f, ":"))
	}
	return strings.Join(fields, ", ")
}

// convertVFSettings converts SriovNetwork's VF settings and logging.
func convertVFSettings(spec *fields, s *sluicev1.VFNetworkSpec, c *conv) error {
	bad := func(err error) error { return c.refuse(fieldOf(err, spec), err.Error()) }
	vlan, hasVLAN, err := spec.integer("vlan")
	if err != nil {
		return bad(err)
	}
	if vlan < 0 || vlan > 4094 {
		return c.refuse("spec.vlan", fmt.Sprintf("%d: 0 to 4094", vlan))
	}
	switch {
	case vlan != 0:
		s.VLAN = int32(vlan)
		c.add("spec.vlan", Mapped, "spec.vlan", "")
	case hasVLAN:
		c.add("spec.vlan", Mapped, "", "0: untagged, the default of both")
	}
	if v, ok, err := spec.integer("vlanQoS"); err != nil {
		return bad(err)
	} else if ok && v != 0 {
		switch {
		case v < 0 || v > 7:
			return c.refuse("spec.vlanQoS", fmt.Sprintf("%d: 0 to 7", v))
		case vlan == 0:
			c.add("spec.vlanQoS", Changed, "", "left out: a QoS without a VLAN tags nothing (sluice refuses the pair); set a vlan to use it")
		default:
			s.VLANQoS = int32(v)
			c.add("spec.vlanQoS", Mapped, "spec.vlanQoS", "")
		}
	}
	if v, ok, err := spec.str("vlanProto"); err != nil {
		return bad(err)
	} else if ok && v != "" {
		// A VFNetwork takes either protocol in any case, as SNO does, and
		// renders it 802.1Q or 802.1ad: the value is carried over as it is.
		switch strings.ToLower(v) {
		case "802.1q", "802.1ad":
		default:
			return c.refuse("spec.vlanProto", fmt.Sprintf("%q: 802.1Q or 802.1ad (in any case)", v))
		}
		switch {
		case vlan == 0 && strings.EqualFold(v, "802.1ad"):
			c.add("spec.vlanProto", Changed, "", "left out: 802.1ad without a VLAN tags nothing (sluice refuses the pair); set a vlan to use it")
		default:
			s.VLANProto = v
			c.add("spec.vlanProto", Mapped, "spec.vlanProto", "")
		}
	}
	for _, o := range []struct {
		key string
		dst *sluicev1.OnOff
	}{{"spoofChk", &s.SpoofChk}, {"trust", &s.Trust}} {
		v, ok, err := spec.str(o.key)
		if err != nil {
			return bad(err)
		}
		if !ok || v == "" {
			continue
		}
		if v != "on" && v != "off" {
			return c.refuse("spec."+o.key, fmt.Sprintf("%q: on or off", v))
		}
		*o.dst = sluicev1.OnOff(v)
		c.add("spec."+o.key, Mapped, "spec."+o.key, "")
	}
	var rates [2]int64
	for i, r := range []struct {
		key string
		dst *int32
	}{{"minTxRate", &s.MinTxRate}, {"maxTxRate", &s.MaxTxRate}} {
		v, ok, err := spec.integer(r.key)
		if err != nil {
			return bad(err)
		}
		if !ok {
			continue
		}
		if v < 0 || v > 1<<31-1 {
			return c.refuse("spec."+r.key, fmt.Sprintf("%d: 0 to %d Mbps", v, int64(1<<31-1)))
		}
		rates[i] = v
		*r.dst = int32(v)
		c.add("spec."+r.key, Mapped, "spec."+r.key, "")
	}
	if rates[1] != 0 && rates[0] > rates[1] {
		return c.refuse("spec.minTxRate", fmt.Sprintf("%d exceeds maxTxRate %d: lower it or raise maxTxRate", rates[0], rates[1]))
	}
	if err := convertLogging(spec, s, c); err != nil {
		return err
	}
	return nil
}

// convertIPAM checks an SNO ipam string and returns it compact, with how
// it changed ("" for not at all).
func convertIPAM(v string) (string, string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &obj); err != nil {
		return "", "", fmt.Errorf("not a JSON object (%v); write CNI IPAM configuration such as {\"type\":\"host-local\",\"subnet\":\"10.56.217.0/24\"}", err)
	}
	if len(obj) == 0 {
		return "", "{}: no IPAM, left out", nil
	}
	var typ string
	if raw, ok := obj["type"]; ok {
		_ = json.Unmarshal(raw, &typ)
	}
	if typ == "" {
		return "", "", fmt.Errorf(`has no "type" string naming the IPAM plugin; add one, e.g. "type":"host-local" or "type":"whereabouts"`)
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return "", "", fmt.Errorf("re-encode: %w", err)
	}
	return string(out), "", nil
}

// logLevels are sriov-cni's levels, the values VFNetwork's logLevel takes.
var logLevels = map[string]bool{"panic": true, "error": true, "warning": true, "info": true, "debug": true}

// convertLogging converts SriovNetwork's logLevel and logFile, which
// sluice-cni reads as sriov-cni does. SNO's CRD defaults logLevel to info
// and sriov-cni logs at info without one, where sluice-cni's unset level
// writes warnings and errors only: info is written out when absent.
func convertLogging(spec *fields, s *sluicev1.VFNetworkSpec, c *conv) error {
	v, ok, err := spec.str("logLevel")
	if err != nil {
		return c.refuse("spec.logLevel", err.Error()+": write panic, error, warning, info or debug")
	}
	const quieter = "; remove spec.logLevel for that"
	switch l := strings.ToLower(v); {
	case !ok || v == "":
		s.LogLevel = "info"
		what := "absent"
		if ok {
			what = "empty"
		}
		c.add("spec.logLevel", Changed, "spec.logLevel", what+": SNO's CRD defaults it to info and sriov-cni logs at info without one, so every SNO NetworkAttachmentDefinition logged at info; written out as info because a VFNetwork without it logs only warnings and errors"+quieter)
	case logLevels[l] && l == v:
		s.LogLevel = l
		detail := ""
		if l == "info" {
			detail = "SNO's default, kept: a VFNetwork without it logs only warnings and errors" + quieter
		}
		c.add("spec.logLevel", Mapped, "spec.logLevel", detail)
	case logLevels[l]:
		s.LogLevel = l
		c.add("spec.logLevel", Changed, "spec.logLevel", fmt.Sprintf("written %s, the spelling VFNetwork takes", l))
	default:
		s.LogLevel = "info"
		c.add("spec.logLevel", Changed, "spec.logLevel", fmt.Sprintf("%q is not a level: sriov-cni logged at info instead, and sluice-cni refuses it, so info is written (panic, error, warning, info or debug)", v))
	}

	v, ok, err = spec.str("logFile")
	switch {
	case err != nil:
		return c.refuse("spec.logFile", err.Error()+": write an absolute path on the node, e.g. /var/log/sriov-cni.log")
	case !ok || v == "":
	case !strings.HasPrefix(v, "/"):
		c.add("spec.logFile", Unsupported, "", fmt.Sprintf("%q is relative: sriov-cni took it relative to the container runtime's working directory, a VFNetwork takes an absolute path only; left out, so sluice-cni's lines go to the runtime's log (its stderr). Set an absolute path on the VFNetwork to keep a file", v))
	case len(v) > 1024:
		c.add("spec.logFile", Unsupported, "", fmt.Sprintf("%d characters: a VFNetwork's logFile takes at most 1024; left out, so sluice-cni's lines go to the runtime's log. Set a shorter path on the VFNetwork", len(v)))
	default:
		s.LogFile = v
		c.add("spec.logFile", Mapped, "spec.logFile", "sluice-cni appends its lines there as sriov-cni did (in its own line format)")
	}
	return nil
}

// convertCapabilities converts SNO's capabilities, a JSON object of
// switches. A VFNetwork takes "mac" and "ips", the capabilities sluice-cni
// declares; any other is left out (sriov-cni did nothing with it either),
// except an SriovIBNetwork's infinibandGUID, which ib-sriov-cni honoured
// and sluice-cni does not.
func convertCapabilities(v string, s *sluicev1.VFNetworkSpec, ib bool, opts Options, c *conv) error {
	var caps map[string]bool
	if err := json.Unmarshal([]byte(v), &caps); err != nil {
		return c.refuse("spec.capabilities", fmt.Sprintf(`%q is not a JSON object of switches (%v): SNO copies it into the NetworkAttachmentDefinition unchecked; write it as '{"mac": true, "ips": true}'`, v, err))
	}
	kept := map[string]bool{}
	var left []string
	for _, k := range sortedKeys(caps) {
		if k == "mac" || k == "ips" {
			kept[k] = caps[k]
			continue
		}
		left = append(left, k)
		switch {
		case !caps[k]:
		case ib && k == "infinibandGUID":
			c.add("spec.capabilities.infinibandGUID", Unsupported, "", "left out: sluice-cni assigns no InfiniBand GUID, so a GUID a pod asks for in its networks annotation is not set; the VF keeps the one the subnet manager or firmware gave it")
		default:
			c.add("spec.capabilities."+k, Changed, "", fmt.Sprintf("left out: SNO declares it on sriov-cni's plugin, which does nothing with it, and a VFNetwork declares only mac and ips; for a chained plugin to get it, declare %q in that plugin's \"capabilities\" in spec.metaPlugins", k))
		}
	}
	if len(kept) == 0 {
		if len(caps) == 0 {
			c.add("spec.capabilities", Mapped, "", "none: nothing to carry over")
		} else {
			c.add("spec.capabilities", Changed, "", fmt.Sprintf("neither mac nor ips, the capabilities sluice-cni declares: left out (%s)", strings.Join(left, ", ")))
		}
		return nil
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return fmt.Errorf("spec.capabilities: encode: %w", err)
	}
	s.Capabilities = string(b)
	var notes []string
	if kept["mac"] {
		notes = append(notes, fmt.Sprintf(`a pod's requested "mac" becomes its VF's MAC; "mac": true is for platform VFNetworks only (this one, in %s)`, opts.Namespace))
	}
	st := Mapped
	if kept["ips"] {
		notes = append(notes, `a pod's requested "ips" go to the IPAM plugin`)
		if s.IPAM == "" {
			st = Changed
			notes = append(notes, ipsWithoutIPAM)
		}
	}
	if len(left) > 0 {
		st = Changed
		notes = append([]string{fmt.Sprintf("written %s: %s left out, a VFNetwork declares only mac and ips", b, strings.Join(left, ", "))}, notes...)
	}
	c.add("spec.capabilities", st, "spec.capabilities", strings.Join(notes, "; "))
	return nil
}

// ipsWithoutIPAM is the difference "ips": true makes on a network without
// ipam.
const ipsWithoutIPAM = `there is no ipam: a pod that asks for IPs started without them under sriov-cni, and sluice-cni refuses its attachment; give the network an ipam such as {"type":"static"}`

// metaPluginsMax is the longest spec.metaPlugins a VFNetwork takes.
const metaPluginsMax = 16384

// convertMetaPlugins carries SNO's metaPlugins over unchanged once the
// operator's own check accepts it.
func convertMetaPlugins(v string, s *sluicev1.VFNetworkSpec, kind string, opts Options, c *conv) error {
	if len(v) > metaPluginsMax {
		return c.refuse("spec.metaPlugins", fmt.Sprintf("%d characters: a VFNetwork takes at most %d; shorten it, or %s", len(v), metaPluginsMax, keepAsNAD))
	}
	if err := controllers.CheckCNIConfig(sluicev1.VFNetworkSpec{MetaPlugins: v}); err != nil {
		return c.refuse("spec.metaPlugins", fmt.Sprintf("%v (SNO copies metaPlugins into the NetworkAttachmentDefinition unchecked): fix it on the %s", err, kind))
	}
	s.MetaPlugins = strings.TrimSpace(v)
	c.add("spec.metaPlugins", Mapped, "spec.metaPlugins", fmt.Sprintf("chained after sluice-cni, in order, as SNO chains them after sriov-cni; platform VFNetworks only (this one, in %s)", opts.Namespace))
	return nil
}
