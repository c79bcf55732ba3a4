package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Names a NetworkAttachmentDefinition carries.
const (
	// SriovCNIType is sriov-cni's plugin type.
	SriovCNIType = "sriov"
	// SluiceCNIType is the type sluice-cni is installed as (install-cni's
	// --name, which the node DaemonSet leaves at its default).
	SluiceCNIType = "sluice-cni"
	// NADResourceAnnotation names the device-plugin resource Multus
	// requests for the attachment.
	NADResourceAnnotation = "k8s.v1.cni.cncf.io/resourceName"
	// snoOwnerAnnotation marks a NetworkAttachmentDefinition SNO rendered
	// in another namespace than its SriovNetwork's.
	snoOwnerAnnotation = "sriovnetwork.openshift.io/owner-ref"
)

// sriovCNIKeys are the keys of a sriov-cni configuration (sriov-cni v2.10
// NetConf, and the CNI keys every plugin gets) and what sluice-cni does
// with each: "" for the same.
var sriovCNIKeys = map[string]string{
	"cniVersion": "", "name": "", "ipam": "", "capabilities": "", "runtimeConfig": "",
	"args": "", "dns": "", "deviceID": "", "mac": "", "vlan": "", "vlanQoS": "",
	"vlanProto": "", "spoofchk": "", "trust": "", "link_state": "", "min_tx_rate": "",
	"max_tx_rate": "", "prevResult": "",
}

// sluiceOnlyKeys are keys sriov-cni ignores and sluice-cni acts on.
var sluiceOnlyKeys = map[string]string{
	"mtu":  "sriov-cni ignores it, sluice-cni sets the VF's MTU in the pod to it: remove it to keep the MTU the policy gave the VF",
	"rdma": "sriov-cni ignores it, sluice-cni moves the VF's RDMA device into the pod when the node is in exclusive RDMA mode",
}

// NADRewrite is a NetworkAttachmentDefinition whose sriov-cni
// configuration was rewritten for sluice-cni.
type NADRewrite struct {
	// Object is the rewritten NetworkAttachmentDefinition, without the
	// fields the API server owns, ready to apply.
	Object *unstructured.Unstructured
	// Before and After are spec.config; AnnotationBefore and
	// AnnotationAfter the resource annotation.
	Before, After                     string
	AnnotationBefore, AnnotationAfter string
}

// rewriteNAD rewrites a NetworkAttachmentDefinition whose config (or one
// plugin of its conflist) is sriov-cni's to call sluice-cni, keeping the
// keys sluice-cni reads and reporting the others, which are dropped.
// rendered maps namespace/name of the NetworkAttachmentDefinitions SNO
// renders from the input's SriovNetworks: those are left to the
// VFNetworks converted from them. It returns nil when there is nothing to
// rewrite.
func rewriteNAD(in *Object, opts Options, rendered map[string]string, c *conv) (*NADRewrite, error) {
	opts = opts.withDefaults()
	key := in.U.GetNamespace() + "/" + in.U.GetName()
	if owner := snoOwner(in, rendered); owner != "" {
		c.add("kind", Changed, "", fmt.Sprintf("rendered by SNO from %s: not rewritten (SNO would put it back); the VFNetwork converted from that network renders it once SNO's is gone", owner))
		return nil, nil
	}
	config, ok, err := unstructured.NestedString(in.U.Object, "spec", "config")
	if err != nil || !ok || strings.TrimSpace(config) == "" {
		c.add("spec.config", Mapped, "", "no config (the attachment names a file on the node): left alone")
		return nil, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(config), &top); err != nil {
		return nil, c.refuse("spec.config", fmt.Sprintf("not a JSON object: %v", err))
	}
	changed := false
	if raw, ok := top["plugins"]; ok {
		var plugins []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &plugins); err != nil {
			return nil, c.refuse("spec.config.plugins", fmt.Sprintf("not a list of objects: %v", err))
		}
		for i, p := range plugins {
			if pluginType(p) != SriovCNIType {
				continue
			}
			rewritePlugin(p, fmt.Sprintf("spec.config.plugins[%d]", i), c)
			changed = true
		}
		if changed {
			b, err := json.Marshal(plugins)
			if err != nil {
				return nil, fmt.Errorf("NetworkAttachmentDefinition %s: encode plugins: %w", key, err)
			}
			top["plugins"] = b
		}
	} else if pluginType(top) == SriovCNIType {
		rewritePlugin(top, "spec.config", c)
		changed = true
	}
	if !changed {
		c.add("spec.config", Mapped, "", "calls no sriov plugin: left alone")
		return nil, nil
	}
	after, err := marshalIndent(top)
	if err != nil {
		return nil, fmt.Errorf("NetworkAttachmentDefinition %s: encode config: %w", key, err)
	}
	out := in.U.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"} {
		unstructured.RemoveNestedField(out.Object, "metadata", f)
	}
	delete(out.Object, "status")
	ann := out.GetAnnotations()
	delete(ann, lastApplied)
	rw := &NADRewrite{Object: out, Before: config, After: after}
	if res, ok := ann[NADResourceAnnotation]; ok {
		rw.AnnotationBefore, rw.AnnotationAfter = res, res
		prefix, name, _ := strings.Cut(res, "/")
		switch {
		case prefix == opts.SNOResourcePrefix && prefix != opts.ResourcePrefix:
			rw.AnnotationAfter = opts.ResourcePrefix + "/" + name
			ann[NADResourceAnnotation] = rw.AnnotationAfter
			c.add("metadata.annotations["+NADResourceAnnotation+"]", Changed, "metadata.annotations["+NADResourceAnnotation+"]", fmt.Sprintf("%s: sluice's pools are %s/<resourceName>", rw.AnnotationAfter, opts.ResourcePrefix))
		default:
			c.add("metadata.annotations["+NADResourceAnnotation+"]", Mapped, "", fmt.Sprintf("%s kept: a sluice pool must be served under this name (the device plugin's --resource-prefix %s)", res, prefix))
		}
	}
	if len(ann) == 0 {
		ann = nil
	}
	out.SetAnnotations(ann)
	if err := unstructured.SetNestedField(out.Object, after, "spec", "config"); err != nil {
		return nil, fmt.Errorf("NetworkAttachmentDefinition %s: set config: %w", key, err)
	}
	return rw, nil
}

// sriovAlias is the way to keep NADs of "type": "sriov" unchanged.
const sriovAlias = `run the operator with --node-sriov-cni-alias instead, which installs sluice-cni as /opt/cni/bin/sriov on nodes without sriov-cni, and NADs of "type": "sriov" reach it unchanged (their resourceName annotation must still name a sluice pool)`

// rewritePlugin turns one sriov-cni plugin configuration into sluice-cni's
// in place, reporting each key under field.
func rewritePlugin(p map[string]json.RawMessage, field string, c *conv) {
	for _, k := range sortedKeys(p) {
		at := field + "." + k
		switch _, same := sriovCNIKeys[k]; {
		case k == "type":
			p[k] = json.RawMessage(`"` + SluiceCNIType + `"`)
			c.add(at, Changed, at, `"sriov" becomes "`+SluiceCNIType+`", the binary sluice's node DaemonSet installs in /opt/cni/bin; to leave the NAD as it is, `+sriovAlias)
		case k == "capabilities" && capabilityOn(p[k], "ips") && p["ipam"] == nil:
			c.add(at, Changed, at, ipsWithoutIPAM)
		case same:
			c.add(at, Mapped, at, "")
		case sluiceOnlyKeys[k] != "":
			c.add(at, Changed, at, sluiceOnlyKeys[k])
		case k == "logLevel":
			rewriteLogLevel(p, at, c)
		case k == "logFile":
			rewriteLogFile(p, at, c)
		default:
			delete(p, k)
			c.add(at, Unsupported, "", "dropped: neither sriov-cni's configuration nor sluice-cni's has this key")
		}
	}
	if _, ok := p["logLevel"]; !ok {
		at := field + ".logLevel"
		p["logLevel"] = json.RawMessage(`"info"`)
		c.add(at, Changed, at, `absent: written "info", the level sriov-cni logs at without one (sluice-cni's lines, in its own format, go where sriov-cni's went); without it sluice-cni would log only warnings and errors`)
	}
}

// rewriteLogLevel keeps a level sluice-cni reads (any case, as sriov-cni)
// and writes "info" for any other: sriov-cni logged at info then, and
// sluice-cni refuses an unknown level.
func rewriteLogLevel(p map[string]json.RawMessage, at string, c *conv) {
	raw := p["logLevel"]
	var v string
	if json.Unmarshal(raw, &v) == nil && logLevels[strings.ToLower(v)] {
		c.add(at, Mapped, at, "sluice-cni logs at this level as sriov-cni did (in its own line format)")
		return
	}
	p["logLevel"] = json.RawMessage(`"info"`)
	c.add(at, Changed, at, fmt.Sprintf(`%s is not a level: sriov-cni logged at info instead, sluice-cni refuses the attachment, so "info" is written (panic, error, warning, info or debug)`, shown(raw, v)))
}

// rewriteLogFile keeps an absolute path, which sluice-cni appends its lines
// to as sriov-cni did, and drops any other: sluice-cni refuses a relative
// one, which sriov-cni took relative to the runtime's working directory.
func rewriteLogFile(p map[string]json.RawMessage, at string, c *conv) {
	raw := p["logFile"]
	var v string
	isStr := json.Unmarshal(raw, &v) == nil
	switch {
	case isStr && v == "":
		c.add(at, Mapped, at, "empty: no log file, for either plugin")
	case isStr && strings.HasPrefix(v, "/"):
		c.add(at, Mapped, at, "sluice-cni appends its lines there as sriov-cni did (in its own line format)")
	case isStr:
		delete(p, "logFile")
		c.add(at, Unsupported, "", fmt.Sprintf(`%q is relative: sriov-cni took it relative to the container runtime's working directory, sluice-cni refuses the attachment; dropped, so the lines go to the runtime's log (stderr). Add an absolute "logFile" to keep a file`, v))
	default:
		delete(p, "logFile")
		c.add(at, Unsupported, "", fmt.Sprintf("%s is not a path: dropped, so the lines go to the runtime's log (stderr)", string(raw)))
	}
}

// capabilityOn reports whether a plugin's "capabilities" object turns name on.
func capabilityOn(raw json.RawMessage, name string) bool {
	var caps map[string]any
	_ = json.Unmarshal(raw, &caps)
	on, _ := caps[name].(bool)
	return on
}

// shown quotes a string value, or shows the raw JSON of another.
func shown(raw json.RawMessage, s string) string {
	if s != "" || string(raw) == `""` {
		return fmt.Sprintf("%q", s)
	}
	return string(raw)
}

func pluginType(p map[string]json.RawMessage) string {
	var t string
	_ = json.Unmarshal(p["type"], &t)
	return t
}

// snoOwner names the SriovNetwork that renders the NAD, if any.
func snoOwner(in *Object, rendered map[string]string) string {
	if v := in.U.GetAnnotations()[snoOwnerAnnotation]; v != "" {
		return v
	}
	for _, o := range in.U.GetOwnerReferences() {
		if strings.HasPrefix(o.APIVersion, SNOGroup+"/") {
			return o.Kind + " " + in.U.GetNamespace() + "/" + o.Name
		}
	}
	return rendered[in.U.GetNamespace()+"/"+in.U.GetName()]
}

func marshalIndent(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return "", err
	}
	return out.String(), nil
}
