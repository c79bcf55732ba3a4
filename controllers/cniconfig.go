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
type cniConfig struct {
	CNIVersion string          `json:"cniVersion"`
	Name       string          `json:"name"`
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
}

// softRoCEConfig asks sluice-cni for a soft-RoCE device on the VF, handed
// to the containers as CDI device <cdiKind>=<VF PCI address>.
type softRoCEConfig struct {
	CDIKind string `json:"cdiKind"`
}

// invalidIPAMError is a spec.ipam the operator cannot use.
type invalidIPAMError struct{ reason string }

func (e *invalidIPAMError) Error() string { return e.reason }

// renderCNIConfig renders the NetworkAttachmentDefinition config of a
// VFNetwork; resource is its pool's device-plugin resource
// (<prefix>/<resourceName>, also the pool's CDI kind) and softRoCE says
// the pool is a soft-RoCE pool. An unusable spec.ipam is an
// *invalidIPAMError.
func renderCNIConfig(n *sluicev1.VFNetwork, resource string, softRoCE bool) (string, error) {
	ipam, err := compactIPAM(n.Spec.IPAM)
	if err != nil {
		return "", err
	}
	s := &n.Spec
	var sr *softRoCEConfig
	if softRoCE {
		sr = &softRoCEConfig{CDIKind: resource}
	}
	out, err := json.Marshal(cniConfig{
		CNIVersion: CNIVersion,
		Name:       n.Name,
		Type:       CNIType,
		VLAN:       s.VLAN,
		VLANQoS:    s.VLANQoS,
		VLANProto:  s.VLANProto,
		SpoofChk:   string(s.SpoofChk),
		Trust:      string(s.Trust),
		LinkState:  string(s.LinkState),
		MinTxRate:  s.MinTxRate,
		MaxTxRate:  s.MaxTxRate,
		MTU:        s.MTU,
		RDMA:       s.RDMA || softRoCE,
		SoftRoCE:   sr,
		IPAM:       ipam,
	})
	if err != nil {
		return "", fmt.Errorf("encode CNI config: %w", err)
	}
	return string(out), nil
}

// compactIPAM checks that spec.ipam is a JSON object naming its plugin and
// returns it without insignificant whitespace; empty stays empty.
func compactIPAM(ipam string) (json.RawMessage, error) {
	if ipam == "" {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(ipam), &obj); err != nil {
		return nil, &invalidIPAMError{fmt.Sprintf(`spec.ipam is not a JSON object (%v); write it as CNI IPAM configuration, e.g. {"type":"host-local","subnet":"10.56.217.0/24"}`, err)}
	}
	if err := ipamType([]byte(ipam)); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(ipam)); err != nil {
		return nil, &invalidIPAMError{fmt.Sprintf("spec.ipam: %v", err)}
	}
	return b.Bytes(), nil
}

// ipamType checks that spec.ipam has one "type" string naming the IPAM
// plugin. sluice-cni and the IPAM plugins read "type" with encoding/json,
// which takes the key in any case and the last of several: more than one
// such key is refused, or the operator could check one plugin and
// sluice-cni run another.
func ipamType(ipam []byte) error {
	dec := json.NewDecoder(bytes.NewReader(ipam))
	if _, err := dec.Token(); err != nil { // {
		return &invalidIPAMError{fmt.Sprintf("spec.ipam: %v", err)}
	}
	var keys []string
	typ := ""
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return &invalidIPAMError{fmt.Sprintf("spec.ipam: %v", err)}
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return &invalidIPAMError{fmt.Sprintf("spec.ipam: %v", err)}
		}
		if strings.EqualFold(key, "type") {
			keys = append(keys, key)
			typ = ""
			_ = json.Unmarshal(v, &typ)
		}
	}
	switch {
	case len(keys) > 1:
		return &invalidIPAMError{fmt.Sprintf(`spec.ipam has %d keys naming the IPAM plugin (%s): keep one "type"`, len(keys), strings.Join(keys, ", "))}
	case typ == "":
		return &invalidIPAMError{`spec.ipam has no "type" string naming the IPAM plugin; add one, e.g. "type":"host-local" or "type":"whereabouts"`}
	}
	return nil
}
