package envtest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/controllers/migrate"
)

// snoCRDs are stand-ins for sriov-network-operator's CRDs: the kinds and
// scope of its api/v1, with schemas that keep every field.
func snoCRDs() []*apiextv1.CustomResourceDefinition {
	var out []*apiextv1.CustomResourceDefinition
	keep := true
	for _, kind := range migrate.SNOKinds() {
		plural := strings.ToLower(kind) + "s"
		out = append(out, &apiextv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: plural + "." + migrate.SNOGroup},
			Spec: apiextv1.CustomResourceDefinitionSpec{
				Group: migrate.SNOGroup,
				Names: apiextv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: strings.ToLower(kind)},
				Scope: apiextv1.NamespaceScoped,
				Versions: []apiextv1.CustomResourceDefinitionVersion{{
					Name: "v1", Served: true, Storage: true,
					Schema: &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: &keep}},
				}},
			},
		})
	}
	return out
}

// TestMigrateFromCluster: without SNO's CRDs ReadCluster says so; with
// them it reads SNO's objects, the device plugin ConfigMap and the NADs,
// and Apply creates the sluice objects and rewrites the hand-made sriov
// NAD by server-side apply, as sluice-migrate, twice without error. The
// VFNetwork, which sets fields only a platform VFNetwork may, passes the
// CRD's schema and the tenant admission policy in the operator's
// namespace, and would be refused in any other.
func TestMigrateFromCluster(t *testing.T) {
	ctx := context.Background()
	fresh := func() client.Client {
		c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	snoNS, appNS, elsewhere := env.Namespace(t), env.Namespace(t), env.Namespace(t)
	sluiceNS := operatorNamespace
	installTenantPolicy(t)
	net := uniqueName(t, "net")

	_, _, err := migrate.ReadCluster(ctx, fresh(), migrate.ClusterInput{SNONamespace: snoNS})
	if err == nil || !strings.Contains(err.Error(), "none of sriov-network-operator's CRDs") {
		t.Fatalf("ReadCluster without SNO's CRDs = %v, want it to say they are absent", err)
	}

	crds := snoCRDs()
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{CRDs: crds}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, crd := range crds {
			_ = env.Client.Delete(ctx, crd)
		}
	})
	policy := "migrate-" + snoNS
	// A k8s-rdma-shared-dev-plugin resource becomes a sharedRdma policy
	// named after it.
	sharedRes := strings.ReplaceAll(policy, "-", "_") + "_hca"
	sharedPolicy := policy + "-hca"
	docs := fmt.Sprintf(`apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetworkNodePolicy
metadata: {name: %[1]s, namespace: %[2]s}
spec: {resourceName: intelnics, numVfs: 4, isRdma: true, nodeSelector: {pool: rdma}, nicSelector: {vendor: "8086", pfNames: [ens1f0]}}
---
apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetwork
metadata: {name: %[4]s, namespace: %[2]s}
spec:
  resourceName: intelnics
  networkNamespace: %[3]s
  vlan: 7
  vlanProto: 802.1q
  ipam: '{"type": "host-local", "subnet": "10.1.0.0/24"}'
  capabilities: '{"mac": true, "ips": true}'
  metaPlugins: '{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}'
  logLevel: debug
  logFile: /var/log/sriov-cni.log
---
apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetworkPoolConfig
metadata: {name: rdma, namespace: %[2]s}
spec: {nodeSelector: {matchLabels: {pool: rdma}}, rdmaMode: exclusive}
---
apiVersion: sriovnetwork.openshift.io/v1
kind: SriovOperatorConfig
metadata: {name: default, namespace: %[2]s}
spec: {enableInjector: true, configDaemonNodeSelector: {a: b}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: sriovdp-config, namespace: %[2]s}
data:
  config.json: '{"resourceList": [{"resourceName": "x", "selectors": {"vendors": ["8086"]}}]}'
---
apiVersion: v1
kind: ConfigMap
metadata: {name: rdma-devices, namespace: %[2]s}
data:
  config.json: '{"configList": [{"resourceName": "%[5]s", "rdmaHcaMax": 100, "selectors": {"vendors": ["15b3"], "linkTypes": ["infiniband"]}}]}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: handmade, namespace: %[3]s, annotations: {k8s.v1.cni.cncf.io/resourceName: openshift.io/intelnics}}
spec: {config: '{"cniVersion": "0.4.0", "name": "handmade", "type": "sriov", "vlan": 5, "logLevel": "debug"}'}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: %[4]s, namespace: %[3]s}
spec: {config: '{"cniVersion": "0.4.0", "name": "%[4]s", "type": "sriov"}'}
`, policy, snoNS, appNS, net, sharedRes)
	objs, err := migrate.DecodeBytes([]byte(docs), "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o.U); err != nil {
			t.Fatalf("create %s: %v", o.Describe(), err)
		}
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(ctx, &sluicev1.NetworkNodePolicy{ObjectMeta: metav1.ObjectMeta{Name: policy}})
		_ = env.Client.Delete(ctx, &sluicev1.NetworkNodePolicy{ObjectMeta: metav1.ObjectMeta{Name: sharedPolicy}})
		_ = env.Client.Delete(ctx, &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: net, Namespace: sluiceNS}})
	})

	read, notes, err := migrate.ReadCluster(ctx, fresh(), migrate.ClusterInput{
		SNONamespace: snoNS, ConfigMaps: []string{snoNS + "/sriovdp-config", snoNS + "/rdma-devices", snoNS + "/absent"}, NADs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range read {
		if o.U.GetKind() == "NetworkAttachmentDefinition" && o.U.GetNamespace() != appNS {
			continue
		}
		kinds[o.U.GetKind()]++
	}
	wantKinds := map[string]int{"SriovNetworkNodePolicy": 1, "SriovNetwork": 1, "SriovNetworkPoolConfig": 1, "SriovOperatorConfig": 1, "ConfigMap": 2, "NetworkAttachmentDefinition": 2}
	for k, n := range wantKinds {
		if kinds[k] != n {
			t.Errorf("read %d %s, want %d (notes %q)", kinds[k], k, n, notes)
		}
	}
	if !strings.Contains(strings.Join(notes, "\n"), "absent: skipped") || !strings.Contains(strings.Join(notes, "\n"), "no SriovIBNetwork") {
		t.Errorf("notes %q do not say what was absent", notes)
	}

	var inApp []*migrate.Object
	for _, o := range read {
		if o.U.GetKind() != "NetworkAttachmentDefinition" || o.U.GetNamespace() == appNS {
			inApp = append(inApp, o)
		}
	}
	res := migrate.Convert(inApp, migrate.Options{Namespace: sluiceNS, SNONamespace: snoNS}, true)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 3 || len(res.NADs) != 1 {
		t.Fatalf("%d objects and %d NAD rewrites, want 3 and 1", len(res.Objects), len(res.NADs))
	}
	var log bytes.Buffer
	for range 2 {
		if err := migrate.Apply(ctx, fresh(), res, &log); err != nil {
			t.Fatalf("apply: %v\n%s", err, log.String())
		}
	}

	var p sluicev1.NetworkNodePolicy
	if err := env.Client.Get(ctx, types.NamespacedName{Name: policy}, &p); err != nil {
		t.Fatal(err)
	}
	// priority 0 survives the CRD's default of 99; exclusive RDMA from the pool.
	if p.Spec.Priority != 0 || p.Spec.RDMA == nil || p.Spec.RDMA.Mode != sluicev1.RDMAModeExclusive || p.Spec.ResourceName != "intelnics" {
		b, _ := yaml.Marshal(p.Spec)
		t.Errorf("policy spec:\n%s", b)
	}
	if !managedBy(p.ManagedFields, migrate.FieldManager) {
		t.Errorf("policy not applied by %s: %v", migrate.FieldManager, p.ManagedFields)
	}
	// The sharedRdma policy passes the CRD's schema and CEL rules.
	var sp sluicev1.NetworkNodePolicy
	if err := env.Client.Get(ctx, types.NamespacedName{Name: sharedPolicy}, &sp); err != nil {
		t.Fatal(err)
	}
	if s := sp.Spec.SharedRDMA; sp.Spec.ResourceName != sharedRes || sp.Spec.NumVfs != 0 || s == nil || s.MaxPods != 100 ||
		!slices.Equal(s.Vendors, []string{"15b3"}) || !slices.Equal(s.LinkTypes, []string{"ib"}) {
		b, _ := yaml.Marshal(sp.Spec)
		t.Errorf("sharedRdma policy spec:\n%s", b)
	}
	var n sluicev1.VFNetwork
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: sluiceNS, Name: net}, &n); err != nil {
		t.Fatal(err)
	}
	want := sluicev1.VFNetworkSpec{
		ResourceName: "intelnics", NetworkNamespace: appNS, VLAN: 7, VLANProto: "802.1q",
		IPAM: `{"subnet":"10.1.0.0/24","type":"host-local"}`, Capabilities: `{"ips":true,"mac":true}`,
		MetaPlugins: `{"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}`,
		LogLevel:    "debug", LogFile: "/var/log/sriov-cni.log",
	}
	if n.Spec != want {
		t.Errorf("VFNetwork spec\n%+v\nwant\n%+v", n.Spec, want)
	}
	// Written in another namespace than the operator's, the same VFNetwork
	// is a tenant's, which the admission policy refuses: what the report's
	// metadata.namespace entry warns of.
	elsewhereN := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Name: net, Namespace: elsewhere}, Spec: n.Spec}
	if err := env.Client.Create(ctx, elsewhereN, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "spec.metaPlugins") || !strings.Contains(err.Error(), "spec.logFile") {
		t.Errorf("the converted VFNetwork outside %s: %v, want the tenant policy's refusal", sluiceNS, err)
	}
	var nad nadv1.NetworkAttachmentDefinition
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: appNS, Name: "handmade"}, &nad); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nad.Spec.Config, `"type": "sluice-cni"`) || !strings.Contains(nad.Spec.Config, `"logLevel": "debug"`) || nad.Annotations[migrate.NADResourceAnnotation] != "sluice.dev/intelnics" {
		t.Errorf("rewritten NAD: %v %s", nad.Annotations, nad.Spec.Config)
	}
	// The NAD SNO renders for the network is left to the VFNetwork.
	var sno nadv1.NetworkAttachmentDefinition
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: appNS, Name: net}, &sno); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sno.Spec.Config, `"type": "sriov"`) {
		t.Errorf("SNO's NAD was rewritten: %s", sno.Spec.Config)
	}
}

func managedBy(fields []metav1.ManagedFieldsEntry, manager string) bool {
	for _, f := range fields {
		if f.Manager == manager && f.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}
