package migrate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
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
		if on := capabilitiesOn(v); len(on) == 0 {
			c.add("spec.capabilities", Mapped, "", "none enabled: nothing to carry over")
		} else {
			c.add("spec.capabilities", Unsupported, "", capabilitiesDetail(on))
		}
	}
	if v, ok, err := spec.str("metaPlugins"); err != nil {
		return nil, bad(err)
	} else if ok && strings.TrimSpace(v) != "" {
		c.add("spec.metaPlugins", Unsupported, "", "a VFNetwork renders sluice-cni alone, with no plugins chained after it: these would not run. To keep them, "+keepAsNAD+" (a conflist keeps its other plugins)")
	}

	if !ib {
		if err := convertVFSettings(spec, s, c); err != nil {
			return nil, err
		}
	}
	c.reportUnread(spec, kind)
	return n, nil
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
		var proto string
		switch strings.ToLower(v) {
		case "802.1q":
			proto = "802.1Q"
		case "802.1ad":
			proto = "802.1ad"
		default:
			return c.refuse("spec.vlanProto", fmt.Sprintf("%q: 802.1Q or 802.1ad", v))
		}
		switch {
		case vlan == 0 && proto == "802.1ad":
			c.add("spec.vlanProto", Changed, "", "left out: 802.1ad without a VLAN tags nothing (sluice refuses the pair); set a vlan to use it")
		case proto != v:
			s.VLANProto = proto
			c.add("spec.vlanProto", Changed, "spec.vlanProto", fmt.Sprintf("written %s, the spelling VFNetwork takes", proto))
		default:
			s.VLANProto = proto
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
	if v, ok, err := spec.str("logLevel"); err != nil {
		return bad(err)
	} else if ok && v != "" {
		if v == "info" {
			c.add("spec.logLevel", Changed, "", "info, sriov-cni's default: sluice-cni has no log level setting (it reports errors in its CNI result, which the runtime logs)")
		} else {
			c.add("spec.logLevel", Unsupported, "", fmt.Sprintf("%q: sluice-cni has no log level setting; its errors are in its CNI result, which the container runtime logs", v))
		}
	}
	if v, ok, err := spec.str("logFile"); err != nil {
		return bad(err)
	} else if ok && v != "" {
		c.add("spec.logFile", Unsupported, "", "sluice-cni writes no log file; its errors are in its CNI result, which the container runtime logs")
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

// capabilitiesOn lists the capabilities an SNO capabilities string turns
// on; one that is not a JSON object of booleans counts as its text.
func capabilitiesOn(v string) []string {
	var caps map[string]bool
	if err := json.Unmarshal([]byte(v), &caps); err != nil {
		return []string{strings.TrimSpace(v)}
	}
	var on []string
	for _, k := range sortedKeys(caps) {
		if caps[k] {
			on = append(on, k)
		}
	}
	return on
}

func capabilitiesDetail(on []string) string {
	return fmt.Sprintf("%s: a VFNetwork declares no CNI capabilities, so the runtime would not pass the pods' requests for them (a static MAC or IP in the networks annotation, an InfiniBand GUID) and pods asking for them would start without. To keep them, %s (\"capabilities\" is kept)", strings.Join(on, ", "), keepAsNAD)
}
