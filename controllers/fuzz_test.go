package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	cniplugin "github.com/sluice-net/sluice/cni/plugin"
	"github.com/sluice-net/sluice/host"
)

// FuzzRenderCNIConfig renders VFNetworks and hands the result to sluice-cni's
// own parser, as Multus does (deviceID added). For every VFNetwork the API
// server would store (the CRD's schema and CEL rules, evaluated from
// config/crd/bases, and a valid name), the operator renders a configuration
// or refuses spec.ipam with an error naming it, and sluice-cni accepts the
// configuration and reads back the spec's VLAN, QoS, protocol, switches,
// link state, rates, MTU, RDMA, soft-RoCE kind and IPAM plugin.
func FuzzRenderCNIConfig(f *testing.F) {
	crd := loadVFNetworkCRD(f)
	// The samples and TestRenderCNIConfig's specs. The enumerations come
	// from one byte (see switchesOf) and the names are made DNS labels, so
	// that most inputs are VFNetworks the API server stores: coverage of
	// its validators would otherwise lead the fuzzer to refused ones.
	f.Add("rdma-net", "rdma-cx6", int32(100), int32(0), switchesFor(0, 2, 1, 2), int32(0), int32(0), int32(9000), true, false,
		`{"type": "host-local", "subnet": "10.56.0.0/16", "routes": [{"dst": "10.56.0.0/16"}]}`+"\n", "", "", "", "")
	f.Add("igb-net", "igb-vf", int32(0), int32(0), switchesFor(0, 1, 2, 0), int32(0), int32(0), int32(0), false, false,
		`{"type": "host-local", "subnet": "10.56.0.0/24", "rangeStart": "10.56.0.10", "rangeEnd": "10.56.0.99"}`+"\n", "", "", "", "")
	f.Add("igb-roce-net", "igb-roce", int32(0), int32(0), switchesFor(0, 0, 0, 0), int32(0), int32(0), int32(0), false, true,
		`{"type": "host-local", "subnet": "10.57.0.0/24", "rangeStart": "10.57.0.10", "rangeEnd": "10.57.0.99"}`+"\n", "", "", "", "")
	f.Add("net", "a", int32(10), int32(2), switchesFor(2, 1, 2, 3), int32(10), int32(20), int32(1500), true, false,
		"{\n  \"type\": \"static\"\n}", "", "", "", "")
	// A SriovNetwork's fields as sriov-network-operator's users write them.
	f.Add("sriov-net", "intel-sriov", int32(100), int32(0), switchesFor(1, 0, 0, 1), int32(0), int32(0), int32(0), false, false,
		`{"type": "static"}`, "{\n  \"mac\": true,\n  \"ips\": true\n}",
		`{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}, {"type": "sbr"}`, "debug", "/var/log/sriov-cni.log")
	f.Fuzz(func(t *testing.T, name, resourceName string, vlan, vlanQoS int32, switches uint8,
		minTxRate, maxTxRate, mtu int32, rdma, softRoCE bool, ipam, capabilities, metaPlugins, logLevel, logFile string) {
		vlanProto, spoofChk, trust, linkState := switchesOf(switches)
		n := &sluicev1.VFNetwork{
			TypeMeta:   metav1.TypeMeta{APIVersion: sluicev1.GroupVersion.String(), Kind: "VFNetwork"},
			ObjectMeta: metav1.ObjectMeta{Name: dnsLabel(name), Namespace: "ml"},
			Spec: sluicev1.VFNetworkSpec{
				ResourceName: dnsLabel(resourceName), VLAN: vlan, VLANQoS: vlanQoS, VLANProto: vlanProto,
				SpoofChk: spoofChk, Trust: trust, LinkState: linkState,
				MinTxRate: minTxRate, MaxTxRate: maxTxRate, MTU: mtu, RDMA: rdma, IPAM: ipam,
				Capabilities: capabilities, MetaPlugins: metaPlugins, LogLevel: logLevel, LogFile: logFile,
			},
		}
		// The operator reads the object back from the API server: as JSON.
		n = jsonRoundTrip(t, n)
		config, err := renderCNIConfig(n, "sluice.dev/"+n.Spec.ResourceName, softRoCE)
		if reason := crd.refuses(n); reason != "" {
			t.Logf("the API server refuses it (%s): rendering only must not panic", reason)
			return
		}
		if err != nil {
			var inv *invalidSpecError
			// Only what the CRD cannot check: spec.ipam and spec.metaPlugins
			// (JSON in a string).
			if !errors.As(err, &inv) || !(n.Spec.IPAM != "" && strings.HasPrefix(err.Error(), "spec.ipam ") ||
				n.Spec.MetaPlugins != "" && strings.HasPrefix(err.Error(), "spec.metaPlugins")) {
				t.Fatalf("render refused a valid VFNetwork: %v", err)
			}
			return
		}
		checkRenderedForCNI(t, n, softRoCE, config)
	})
}

// dnsLabel makes s a DNS label (the form of both names), so that the
// names are not what the API server refuses: the fuzzer works on the
// settings.
func dnsLabel(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	l := strings.Trim(string(b[:min(len(b), 63)]), "-")
	if l == "" {
		return "net"
	}
	return l
}

// switchesOf reads vlanProto, spoofChk, trust and linkState from two bits
// each; the last value of vlanProto and of the switches is one the CRD
// refuses.
func switchesOf(b uint8) (string, sluicev1.OnOff, sluicev1.OnOff, sluicev1.VFLinkState) {
	vlanProtos := [4]string{"", "802.1q", "802.1AD", "802.1x"}
	onOffs := [4]sluicev1.OnOff{"", sluicev1.On, sluicev1.Off, "On"}
	linkStates := [4]sluicev1.VFLinkState{"", "auto", "enable", "disable"}
	return vlanProtos[b&3], onOffs[b>>2&3], onOffs[b>>4&3], linkStates[b>>6&3]
}

// switchesFor is the byte switchesOf reads as the given indices.
func switchesFor(proto, spoofChk, trust, linkState uint8) uint8 {
	return proto | spoofChk<<2 | trust<<4 | linkState<<6
}

// checkRenderedForCNI gives the rendered configuration to sluice-cni as
// Multus does and checks that it reads the VFNetwork's settings.
func checkRenderedForCNI(t *testing.T, n *sluicev1.VFNetwork, softRoCE bool, config string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(config), &m); err != nil {
		t.Fatalf("rendered config %s is not a JSON object: %v", config, err)
	}
	if plugins, ok := m["plugins"]; ok {
		// A configuration list: sluice-cni first, given the list's name
		// and cniVersion as the runtime gives them, then the meta plugins.
		var list []map[string]json.RawMessage
		if err := json.Unmarshal(plugins, &list); err != nil || len(list) < 2 {
			t.Fatalf("rendered list %s: %v", config, err)
		}
		metas, err := parseMetaPlugins(n.Spec.MetaPlugins)
		if err != nil || len(list) != 1+len(metas) {
			t.Fatalf("rendered list %s for metaPlugins %q (%v)", config, n.Spec.MetaPlugins, err)
		}
		first := list[0]
		first["name"], first["cniVersion"] = m["name"], m["cniVersion"]
		m = first
	} else if n.Spec.MetaPlugins != "" {
		t.Fatalf("metaPlugins %q rendered no list: %s", n.Spec.MetaPlugins, config)
	}
	m["deviceID"] = json.RawMessage(`"0000:3b:02.1"`)
	stdin, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cniplugin.LoadConf(&skel.CmdArgs{ContainerID: "4b1c3a8e9f20", IfName: "net1", StdinData: stdin,
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ml;K8S_POD_NAME=trainer-0;K8S_POD_INFRA_CONTAINER_ID=4b1c3a8e9f20"})
	if err != nil {
		t.Fatalf("sluice-cni refuses what the operator rendered for\n%+v\n%s\n%v", n.Spec, config, err)
	}
	s := n.Spec
	fail := func(what string, got, want any) {
		t.Helper()
		t.Fatalf("%s: sluice-cni reads %v, the VFNetwork says %v (rendered %s)", what, got, want, config)
	}
	if c.Name != n.Name || c.Type != CNIType || c.CNIVersion != CNIVersion {
		fail("name/type/cniVersion", []string{c.Name, c.Type, c.CNIVersion}, []string{n.Name, CNIType, CNIVersion})
	}
	if *c.VF.VLAN != int(s.VLAN) || c.VF.QoS != int(s.VLANQoS) {
		fail("vlan/qos", []int{*c.VF.VLAN, c.VF.QoS}, []int32{s.VLAN, s.VLANQoS})
	}
	wantProto := host.VLANProto8021Q
	if strings.EqualFold(s.VLANProto, "802.1ad") {
		wantProto = host.VLANProto8021AD
	}
	if c.VF.VLANProto != wantProto {
		fail("vlanProto", c.VF.VLANProto, s.VLANProto)
	}
	for _, sw := range []struct {
		field string
		got   *bool
		want  sluicev1.OnOff
	}{{"spoofChk", c.VF.SpoofChk, s.SpoofChk}, {"trust", c.VF.Trust, s.Trust}} {
		if (sw.got == nil) != (sw.want == "") || (sw.got != nil && *sw.got != (sw.want == sluicev1.On)) {
			fail(sw.field, sw.got, sw.want)
		}
	}
	if (c.VF.LinkState == nil) != (s.LinkState == "") || (c.VF.LinkState != nil && *c.VF.LinkState != string(s.LinkState)) {
		fail("linkState", c.VF.LinkState, s.LinkState)
	}
	for _, r := range []struct {
		field string
		got   *int
		want  int32
	}{{"minTxRate", c.VF.MinTxRate, s.MinTxRate}, {"maxTxRate", c.VF.MaxTxRate, s.MaxTxRate}} {
		// 0 is "no limit": left out, the VF's rate is left as the policy set it.
		if (r.got == nil) != (r.want == 0) || (r.got != nil && *r.got != int(r.want)) {
			fail(r.field, r.got, r.want)
		}
	}
	if c.MTU != int(s.MTU) {
		fail("mtu", c.MTU, s.MTU)
	}
	if c.RDMA != (s.RDMA || softRoCE) {
		fail("rdma", c.RDMA, s.RDMA || softRoCE)
	}
	wantKind := ""
	if softRoCE {
		wantKind = sluicev1.Group + "/" + s.ResourceName
	}
	gotKind := ""
	if c.SoftRoCE != nil {
		gotKind = c.SoftRoCE.CDIKind
	}
	if gotKind != wantKind || (c.SoftRoCE != nil) != softRoCE {
		fail("softRoCE.cdiKind", gotKind, wantKind)
	}
	if c.LogLevel != s.LogLevel || c.LogFile != s.LogFile {
		fail("logLevel/logFile", []string{c.LogLevel, c.LogFile}, []string{s.LogLevel, s.LogFile})
	}
	if caps, _ := parseCapabilities(s.Capabilities); len(caps) != len(c.Capabilities) || (len(caps) > 0 && !reflect.DeepEqual(caps, c.Capabilities)) {
		fail("capabilities", c.Capabilities, s.Capabilities)
	}
	// The IPAM plugin sluice-cni runs is the one spec.ipam names: every
	// key that can be read as "type" (any case) says it.
	if s.IPAM == "" {
		if c.IPAM.Type != "" {
			fail("ipam.type", c.IPAM.Type, "no IPAM")
		}
		return
	}
	names := ipamTypeValues(t, s.IPAM)
	if c.IPAM.Type == "" || len(names) == 0 {
		fail("ipam.type", c.IPAM.Type, names)
	}
	for _, name := range names {
		if name != c.IPAM.Type {
			fail("ipam.type", c.IPAM.Type, names)
		}
	}
}

// ipamTypeValues are the values of spec.ipam's top-level keys that
// encoding/json reads as "type", in order.
func ipamTypeValues(t *testing.T, ipam string) []any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(ipam))
	if _, err := dec.Token(); err != nil {
		t.Fatalf("rendered spec.ipam %q: %v", ipam, err)
	}
	var out []any
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatalf("rendered spec.ipam %q: %v", ipam, err)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("rendered spec.ipam %q: %v", ipam, err)
		}
		if k, _ := key.(string); strings.EqualFold(k, "type") {
			out = append(out, v)
		}
	}
	return out
}

// jsonRoundTrip is the object as a client writes it and the operator reads it.
func jsonRoundTrip(t *testing.T, n *sluicev1.VFNetwork) *sluicev1.VFNetwork {
	t.Helper()
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	out := &sluicev1.VFNetwork{}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// crdValidator is the API server's validation of a VFNetwork: the CRD's
// OpenAPI schema and its CEL rules, from the generated CRD.
type crdValidator struct {
	schema    validation.SchemaValidator
	structure *schema.Structural
	cel       *cel.Validator
}

func loadVFNetworkCRD(f *testing.F) *crdValidator {
	f.Helper()
	b, err := os.ReadFile(filepath.Join("..", "config", "crd", "bases", "sluice.dev_vfnetworks.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		f.Fatal(err)
	}
	var props *apiextensionsv1.JSONSchemaProps
	for _, v := range crd.Spec.Versions {
		if v.Name == sluicev1.GroupVersion.Version {
			props = v.Schema.OpenAPIV3Schema
		}
	}
	if props == nil {
		f.Fatalf("the CRD has no %s schema", sluicev1.GroupVersion.Version)
	}
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(props, &internal, nil); err != nil {
		f.Fatal(err)
	}
	v := &crdValidator{}
	if v.schema, _, err = validation.NewSchemaValidator(&internal); err != nil {
		f.Fatal(err)
	}
	if v.structure, err = schema.NewStructural(&internal); err != nil {
		f.Fatal(err)
	}
	if v.cel = cel.NewValidator(v.structure, true, celconfig.PerCallLimit); v.cel == nil {
		f.Fatal("the VFNetwork CRD has no CEL rules")
	}
	// The samples are valid, and an invalid spec is refused: the validator
	// works.
	good := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "rdma-net"}, Spec: sluicev1.VFNetworkSpec{ResourceName: "rdma-cx6", VLAN: 100, VLANQoS: 3}}
	if reason := v.refuses(good); reason != "" {
		f.Fatalf("a valid VFNetwork is refused: %s", reason)
	}
	if v.refuses(&sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: sluicev1.VFNetworkSpec{ResourceName: "a", VLANQoS: 3}}) == "" {
		f.Fatal("vlanQoS without a vlan is accepted: the CEL rules are not evaluated")
	}
	return v
}

// refuses says why the API server would refuse to create n; "" if it would not.
func (v *crdValidator) refuses(n *sluicev1.VFNetwork) string {
	if errs := utilvalidation.IsDNS1123Subdomain(n.Name); len(errs) > 0 {
		return "metadata.name: " + strings.Join(errs, "; ")
	}
	n = n.DeepCopy()
	n.APIVersion, n.Kind = sluicev1.GroupVersion.String(), "VFNetwork"
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(n)
	if err != nil {
		return err.Error()
	}
	// Server-set and empty metadata is not the schema's concern.
	obj["metadata"] = map[string]any{"name": n.Name}
	delete(obj, "status")
	if errs := validation.ValidateCustomResource(nil, obj, v.schema); len(errs) > 0 {
		return errs.ToAggregate().Error()
	}
	errs, _ := v.cel.Validate(context.Background(), nil, v.structure, obj, nil, celconfig.RuntimeCELCostBudget)
	if len(errs) > 0 {
		return errs.ToAggregate().Error()
	}
	return ""
}
