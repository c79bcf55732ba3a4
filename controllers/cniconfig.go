package controllers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// CNIType is the CNI plugin binary the rendered attachments call.
const CNIType = "sluice-cni"

// CNIVersion is the CNI spec version of the rendered configurations.
const CNIVersion = "1.0.0"

// cniConfig is the network configuration of a VFNetwork. Field names are
// sriov-cni's, so that the sluice CNI reads existing configurations too;
// unset (zero) fields are left out.
//
// In a configuration list (spec.metaPlugins) it is the first plugin,
// without cniVersion and name, which the list carries.
type cniConfig struct {
	CNIVersion string          `json:"cniVersion,omitempty"`
	Name       string          `json:"name,omitempty"`
	Type       string          `json:"type"`
	VLAN       int32           `json:"vlan,omitempty"`
	VLANQoS    int32           `json:"vlanQoS,omitempty"`
	VLANProto  string          `json:"vlanProto,omitempty"`
	SpoofChk   string          `json:"spoofchk,omitempty"`
	Trust      string          `json:"trust,omitempty"`
	LinkState  string          `json:"link_state,omitempty"`
	MinTxRate  int32           `json:"min_tx_rate,omitempty"`
	MaxTxRate  int32           `json:"max_tx_rate,omitempty"`
	MTU        int32           `json:"mtu,omitempty"`
	RDMA       bool            `json:"rdma,omitempty"`
	SoftRoCE   *softRoCEConfig `json:"softRoCE,omitempty"`
	IPAM       json.RawMessage `json:"ipam,omitempty"`
	// Capabilities make Multus pass the pod's requested MAC and IPs as
	// runtimeConfig.
	Capabilities map[string]bool `json:"capabilities,omitempty"`
	LogLevel     string          `json:"logLevel,omitempty"`
	LogFile      string          `json:"logFile,omitempty"`
}

// softRoCEConfig asks sluice-cni for a soft-RoCE device on the VF, handed
// to the containers as CDI device <cdiKind>=<VF PCI address>.
type softRoCEConfig struct {
	CDIKind string `json:"cdiKind"`
}

// invalidSpecError is a spec field the operator cannot use; condReason is
// the Ready reason it gives (ReasonInvalidIPAM for spec.ipam).
type invalidSpecError struct{ condReason, reason string }

func (e *invalidSpecError) Error() string { return e.reason }

func invalidIPAM(format string, a ...any) *invalidSpecError {
	return &invalidSpecError{ReasonInvalidIPAM, fmt.Sprintf(format, a...)}
}

// renderCNIConfig renders the NetworkAttachmentDefinition config of a
// VFNetwork; resource is its pool's device-plugin resource
// (<prefix>/<resourceName>, also the pool's CDI kind) and softRoCE says
// the pool is a soft-RoCE pool. With spec.metaPlugins it is a
// configuration list: sluice-cni first, then the meta plugins. An
// unusable spec.ipam, spec.capabilities or spec.metaPlugins is an
// *invalidSpecError.
func renderCNIConfig(n *sluicev1.VFNetwork, resource string, softRoCE bool) (string, error) {
	ipam, err := compactIPAM(n.Spec.IPAM)
	if err != nil {
		return "", err
	}
	caps, err := parseCapabilities(n.Spec.Capabilities)
	if err != nil {
		return "", err
	}
	metas, err := parseMetaPlugins(n.Spec.MetaPlugins)
	if err != nil {
		return "", err
	}
	s := &n.Spec
	var sr *softRoCEConfig
	if softRoCE {
		sr = &softRoCEConfig{CDIKind: resource}
	}
	conf := cniConfig{
		CNIVersion: CNIVersion,
		Name:       n.Name,
		Type:       CNIType,
		VLAN:       s.VLAN,
		VLANQoS:    s.VLANQoS,
		VLANProto:  normalVLANProto(s.VLANProto),
		SpoofChk:   string(s.SpoofChk),
		Trust:      string(s.Trust),
		LinkState:  string(s.LinkState),
		MinTxRate:  s.MinTxRate,
		MaxTxRate:  s.MaxTxRate,
		MTU:        s.MTU,
		RDMA:       s.RDMA || softRoCE,
		SoftRoCE:   sr,
		IPAM:       ipam,

		Capabilities: caps,
		LogLevel:     s.LogLevel,
		LogFile:      s.LogFile,
	}
	var out []byte
	if len(metas) == 0 {
		out, err = json.Marshal(conf)
	} else {
		out, err = renderConfList(conf, metas)
	}
	if err != nil {
		return "", fmt.Errorf("encode CNI config: %w", err)
	}
	return string(out), nil
}

// normalVLANProto is spec.vlanProto as sluice-cni and sriov-cni read it:
// 802.1Q or 802.1ad, whatever the case it was written in (the CRD accepts
// any, as sriov-network-operator accepts 802.1q and 802.1AD).
func normalVLANProto(p string) string {
	switch strings.ToLower(p) {
	case "802.1q":
		return "802.1Q"
	case "802.1ad":
		return "802.1ad"
	}
	return p
}

// compactIPAM checks that spec.ipam is a JSON object naming its plugin and
// returns it without insignificant whitespace; empty stays empty.
func compactIPAM(ipam string) (json.RawMessage, error) {
	if ipam == "" {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(ipam), &obj); err != nil {
		return nil, invalidIPAM(`spec.ipam is not a JSON object (%v); write it as CNI IPAM configuration, e.g. {"type":"host-local","subnet":"10.56.217.0/24"}`, err)
	}
	if err := ipamType([]byte(ipam)); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(ipam)); err != nil {
		return nil, invalidIPAM("spec.ipam: %v", err)
	}
	return b.Bytes(), nil
}

// ipamType checks that spec.ipam has one "type" string naming the IPAM
// plugin. sluice-cni and the IPAM plugins read "type" with encoding/json,
// which takes the key in any case and the last of several: more than one
// such key is refused, or the operator could check one plugin and
// sluice-cni run another.
func ipamType(ipam []byte) error {
	keys, typ, err := typeKeys(ipam)
	if err != nil {
		return invalidIPAM("spec.ipam: %v", err)
	}
	switch {
	case len(keys) > 1:
		return invalidIPAM(`spec.ipam has %d keys naming the IPAM plugin (%s): keep one "type"`, len(keys), strings.Join(keys, ", "))
	case typ == "":
		return invalidIPAM(`spec.ipam has no "type" string naming the IPAM plugin; add one, e.g. "type":"host-local" or "type":"whereabouts"`)
	}
	return nil
}

// typeKeys reads a JSON object's top-level keys that encoding/json takes
// for "type" (any case) and the string value of the last of them.
func typeKeys(obj []byte) (keys []string, typ string, err error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // {
		return nil, "", err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, "", err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, "", err
		}
		if strings.EqualFold(key, "type") {
			keys = append(keys, key)
			typ = ""
			_ = json.Unmarshal(v, &typ)
		}
	}
	return keys, typ, nil
}
