package controllers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// cniCapabilities are the capabilities sluice-cni honours: Multus passes
// the pod's requested MAC and IPs as runtimeConfig.mac and .ips.
const cniCapabilities = "mac and ips"

// invalidSpec is an unusable spec.capabilities or spec.metaPlugins: Ready
// reason InvalidSpec, and the NetworkAttachmentDefinition keeps its last
// good config.
func invalidSpec(format string, a ...any) *invalidSpecError {
	return &invalidSpecError{ReasonInvalidSpec, fmt.Sprintf(format, a...)}
}

// parseCapabilities reads spec.capabilities, sriov-network-operator's
// JSON object of switches; empty is none. The CRD already refuses any
// other shape; this is for objects stored before that rule.
func parseCapabilities(s string) (map[string]bool, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var caps map[string]bool
	if err := json.Unmarshal([]byte(s), &caps); err != nil {
		return nil, invalidSpec(`spec.capabilities is not a JSON object of switches (%v): write it as '{"mac": true, "ips": true}'`, err)
	}
	var unknown []string
	for k := range caps {
		if k != "mac" && k != "ips" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, invalidSpec(`spec.capabilities has %s: sluice-cni honours only %s; put other capabilities on the meta plugin that uses them, in spec.metaPlugins`,
			strings.Join(unknown, ", "), cniCapabilities)
	}
	return caps, nil
}

// parseMetaPlugins reads spec.metaPlugins, the plugins chained after
// sluice-cni: as sriov-network-operator writes it, JSON objects separated
// by commas (it pastes the text into the "plugins" list after its own
// plugin), or a JSON list of them. Each must be an object with one
// "type" string; they are returned compact, in order.
func parseMetaPlugins(s string) ([]json.RawMessage, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return nil, nil
	}
	if !strings.HasPrefix(text, "[") {
		text = "[" + text + "]"
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, invalidSpec(`spec.metaPlugins is not JSON objects separated by commas (%v): write each chained plugin as an object with its "type", e.g. {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}`, err)
	}
	if len(raw) == 0 {
		return nil, invalidSpec(`spec.metaPlugins is an empty list: give the plugins to chain after sluice-cni, or remove spec.metaPlugins`)
	}
	out := make([]json.RawMessage, len(raw))
	for i, r := range raw {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(r, &obj); err != nil {
			return nil, invalidSpec(`spec.metaPlugins[%d] is not a JSON object (%s): write each chained plugin as an object with its "type"`, i, jsonKindOf(r))
		}
		keys, typ, err := typeKeys(r)
		switch {
		case err != nil:
			return nil, invalidSpec("spec.metaPlugins[%d]: %v", i, err)
		case len(keys) > 1:
			return nil, invalidSpec(`spec.metaPlugins[%d] has %d keys naming the plugin (%s): keep one "type"`, i, len(keys), strings.Join(keys, ", "))
		case typ == "":
			return nil, invalidSpec(`spec.metaPlugins[%d] has no "type" string naming the plugin; add one, e.g. "type": "tuning"`, i)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, r); err != nil {
			return nil, invalidSpec("spec.metaPlugins[%d]: %v", i, err)
		}
		out[i] = b.Bytes()
	}
	return out, nil
}

// jsonKindOf names the kind of a JSON value, for error messages.
func jsonKindOf(r json.RawMessage) string {
	switch t := bytes.TrimSpace(r); {
	case len(t) == 0:
		return "nothing"
	case t[0] == '[':
		return "a list"
	case t[0] == '"':
		return "a string"
	case t[0] == 't' || t[0] == 'f':
		return "a boolean"
	case t[0] == 'n':
		return "null"
	}
	return "a number"
}

// confList is a CNI configuration list.
type confList struct {
	CNIVersion string            `json:"cniVersion"`
	Name       string            `json:"name"`
	Plugins    []json.RawMessage `json:"plugins"`
}

// renderConfList renders sluice-cni's configuration conf followed by the
// meta plugins as one configuration list; the list carries conf's
// cniVersion and name, which the runtime gives every plugin.
func renderConfList(conf cniConfig, metas []json.RawMessage) ([]byte, error) {
	l := confList{CNIVersion: conf.CNIVersion, Name: conf.Name}
	conf.CNIVersion, conf.Name = "", ""
	first, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	l.Plugins = append([]json.RawMessage{first}, metas...)
	return json.Marshal(l)
}
