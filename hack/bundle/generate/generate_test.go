package generate

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/blang/semver/v4"
	"github.com/operator-framework/api/pkg/operators/v1alpha1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The fixtures below are a small config/: a base CSV, an install with one
// CRD, two service accounts and the operator's Deployment, and samples.

const baseCSV = `
apiVersion: operators.coreos.com/v1alpha1
kind: ClusterServiceVersion
metadata:
  name: demo
  annotations:
    capabilities: Basic Install
spec:
  displayName: Demo
  installModes:
  - type: AllNamespaces
    supported: true
  customresourcedefinitions:
    owned:
    - name: widgets.demo.dev
      displayName: Widget
      specDescriptors:
      - path: size
        x-descriptors: [urn:alm:descriptor:com.tectonic.ui:number]
      - path: parts[0].name
        displayName: Part name
        description: Written in the base.
      statusDescriptors:
      - path: readyCount
`

const installBase = `
apiVersion: v1
kind: Namespace
metadata:
  name: demo-system
  labels:
    pod-security.kubernetes.io/enforce: privileged
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.demo.dev
spec:
  group: demo.dev
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        description: |-
          Widget is a thing
          made of parts.
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                description: Size of the
                  widget.
                type: integer
              parts:
                type: array
                items:
                  type: object
                  properties:
                    name: {type: string, description: Name of the part.}
          status:
            type: object
            properties:
              readyCount: {type: integer, description: ReadyCount counts parts.}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: demo-operator, namespace: demo-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: demo-node, namespace: demo-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: demo-operator}
rules:
- {apiGroups: [demo.dev], resources: [widgets], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: demo-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: demo-operator}
subjects:
- {kind: ServiceAccount, name: demo-operator, namespace: demo-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: demo-operator, namespace: demo-system}
rules:
- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: demo-operator, namespace: demo-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: demo-operator}
subjects:
- {kind: ServiceAccount, name: demo-operator, namespace: demo-system}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo-operator
  namespace: demo-system
  labels: {app: demo}
spec:
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      serviceAccountName: demo-operator
      containers:
      - name: operator
        image: registry.example/demo/demo:v1.2.3
        env:
        - {name: DEMO_NODE_IMAGE, value: registry.example/demo/demo-node:v1.2.3}
        - {name: OTHER, value: registry.example/not/an-image-var:v1}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: demo-node
  namespace: demo-system
  labels: {app.kubernetes.io/managed-by: sluice}
spec:
  selector: {matchLabels: {app: node}}
  template:
    metadata: {labels: {app: node}}
    spec:
      serviceAccountName: demo-node
      containers: [{name: agent, image: registry.example/demo/demo:v1.2.3}]
`

// agentRBAC is what a node agent's RBAC adds: a ClusterRole and a Role
// bound to its service account.
const agentRBAC = `
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: demo-node}
rules:
- {apiGroups: [""], resources: [pods], verbs: [list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: demo-node}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: demo-node}
subjects:
- {kind: ServiceAccount, name: demo-node, namespace: demo-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: demo-node-view, namespace: demo-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: demo-node}
subjects:
- {kind: ServiceAccount, name: demo-node}
`

const samples = `
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: demo.dev/v1
kind: Widget
metadata: {name: small, namespace: apps}
spec: {size: 1}
---
apiVersion: demo.dev/v1
kind: Widget
metadata: {name: big, namespace: apps}
spec: {size: 9}
`

func objects(t *testing.T, y string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := decodeObjects([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func render(t *testing.T, base, install, samples string) (Files, error) {
	t.Helper()
	return assemble(objects(t, base), objects(t, install), objects(t, samples), semver.MustParse("1.2.3"), []string{"alpha"}, "alpha")
}

func mustRender(t *testing.T, base, install, samples string) (Files, *v1alpha1.ClusterServiceVersion) {
	t.Helper()
	files, err := render(t, base, install, samples)
	if err != nil {
		t.Fatal(err)
	}
	data, ok := files["manifests/demo.clusterserviceversion.yaml"]
	if !ok {
		t.Fatalf("no CSV among %q", files.Paths())
	}
	if !bytes.HasPrefix(data, []byte(header)) {
		t.Errorf("CSV does not start with the generated-file header")
	}
	csv := &v1alpha1.ClusterServiceVersion{}
	if err := yaml.UnmarshalStrict(data, csv); err != nil {
		t.Fatal(err)
	}
	return files, csv
}

func TestRenderFiles(t *testing.T) {
	files, _ := mustRender(t, baseCSV, installBase, samples)
	want := []string{
		"bundle.Dockerfile",
		"manifests/demo.clusterserviceversion.yaml",
		"manifests/demo.dev_widgets.yaml",
		"metadata/annotations.yaml",
	}
	if got := files.Paths(); !reflect.DeepEqual(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	var ann struct{ Annotations map[string]string }
	if err := yaml.Unmarshal(files["metadata/annotations.yaml"], &ann); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"operators.operatorframework.io.bundle.package.v1":         "demo",
		"operators.operatorframework.io.bundle.channels.v1":        "alpha",
		"operators.operatorframework.io.bundle.channel.default.v1": "alpha",
		"operators.operatorframework.io.bundle.mediatype.v1":       "registry+v1",
		"operators.operatorframework.io.bundle.manifests.v1":       "manifests/",
	} {
		if ann.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, ann.Annotations[k], v)
		}
		// The image labels must say the same.
		if !strings.Contains(string(files["bundle.Dockerfile"]), "LABEL "+k+"="+v+"\n") {
			t.Errorf("bundle.Dockerfile lacks LABEL %s=%s", k, v)
		}
	}
	if !strings.Contains(string(files["bundle.Dockerfile"]), "COPY manifests /manifests/\nCOPY metadata /metadata/\n") {
		t.Errorf("bundle.Dockerfile does not copy manifests and metadata:\n%s", files["bundle.Dockerfile"])
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	first, _ := mustRender(t, baseCSV, installBase+agentRBAC, samples)
	for i := 0; i < 10; i++ {
		again, _ := mustRender(t, baseCSV, installBase+agentRBAC, samples)
		for p, data := range first {
			if !bytes.Equal(data, again[p]) {
				t.Fatalf("render %d: %s differs", i, p)
			}
		}
	}
}

func TestCSVFromConfig(t *testing.T) {
	_, csv := mustRender(t, baseCSV, installBase, samples)
	if csv.Name != "demo.v1.2.3" || csv.Spec.Version.String() != "1.2.3" {
		t.Errorf("name %q version %q, want demo.v1.2.3 and 1.2.3", csv.Name, csv.Spec.Version.String())
	}
	if csv.Annotations["capabilities"] != "Basic Install" {
		t.Errorf("the base's annotations were lost: %v", csv.Annotations)
	}
	if got := csv.Annotations[annotationContainerImage]; got != "registry.example/demo/demo:v1.2.3" {
		t.Errorf("containerImage %q", got)
	}
	if got := csv.Annotations[annotationSuggestedNamespace]; got != "demo-system" {
		t.Errorf("suggested namespace %q", got)
	}
	var ns map[string]any
	if err := json.Unmarshal([]byte(csv.Annotations[annotationNamespaceTemplate]), &ns); err != nil {
		t.Fatalf("namespace template: %v", err)
	}
	if l := ns["metadata"].(map[string]any)["labels"].(map[string]any)["pod-security.kubernetes.io/enforce"]; l != "privileged" {
		t.Errorf("namespace template lost the pod security label: %v", ns)
	}

	deps := csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs
	if csv.Spec.InstallStrategy.StrategyName != "deployment" || len(deps) != 1 || deps[0].Name != "demo-operator" {
		t.Fatalf("install strategy %+v: want the one Deployment (the managed DaemonSet left out)", csv.Spec.InstallStrategy)
	}
	if deps[0].Label["app"] != "demo" || deps[0].Spec.Template.Spec.ServiceAccountName != "demo-operator" {
		t.Errorf("deployment spec not carried over: %+v", deps[0])
	}

	want := []v1alpha1.RelatedImage{
		{Name: "demo", Image: "registry.example/demo/demo:v1.2.3"},
		{Name: "demo-node", Image: "registry.example/demo/demo-node:v1.2.3"},
	}
	if !reflect.DeepEqual(csv.Spec.RelatedImages, want) {
		t.Errorf("relatedImages %+v, want %+v", csv.Spec.RelatedImages, want)
	}

	var examples []map[string]any
	if err := json.Unmarshal([]byte(csv.Annotations[annotationExamples]), &examples); err != nil {
		t.Fatalf("alm-examples: %v", err)
	}
	var names []string
	for _, e := range examples {
		names = append(names, e["kind"].(string)+"/"+e["metadata"].(map[string]any)["name"].(string))
	}
	if want := []string{"Widget/big", "Widget/small"}; !reflect.DeepEqual(names, want) {
		t.Errorf("alm-examples %q, want %q (samples of owned kinds only, by name)", names, want)
	}
}

func TestOwnedCRDs(t *testing.T) {
	_, csv := mustRender(t, baseCSV, installBase, samples)
	owned := csv.Spec.CustomResourceDefinitions.Owned
	if len(owned) != 1 {
		t.Fatalf("owned %+v", owned)
	}
	o := owned[0]
	if o.Name != "widgets.demo.dev" || o.Version != "v1" || o.Kind != "Widget" || o.DisplayName != "Widget" {
		t.Errorf("owned CRD %+v", o)
	}
	if o.Description != "Widget is a thing made of parts." {
		t.Errorf("description %q: want the schema's, lines joined", o.Description)
	}
	wantSpec := []v1alpha1.SpecDescriptor{
		{Path: "size", DisplayName: "Size", Description: "Size of the widget.", XDescriptors: []string{"urn:alm:descriptor:com.tectonic.ui:number"}},
		{Path: "parts[0].name", DisplayName: "Part name", Description: "Written in the base."},
	}
	if !reflect.DeepEqual(o.SpecDescriptors, wantSpec) {
		t.Errorf("spec descriptors\n got %+v\nwant %+v", o.SpecDescriptors, wantSpec)
	}
	wantStatus := []v1alpha1.StatusDescriptor{{Path: "readyCount", DisplayName: "Ready Count", Description: "ReadyCount counts parts."}}
	if !reflect.DeepEqual(o.StatusDescriptors, wantStatus) {
		t.Errorf("status descriptors\n got %+v\nwant %+v", o.StatusDescriptors, wantStatus)
	}
}

func permsOf(perms []v1alpha1.StrategyDeploymentPermissions) map[string][]rbacv1.PolicyRule {
	out := map[string][]rbacv1.PolicyRule{}
	for _, p := range perms {
		out[p.ServiceAccountName] = p.Rules
	}
	return out
}

func TestPermissionsWithoutAgentRBAC(t *testing.T) {
	_, csv := mustRender(t, baseCSV, installBase, samples)
	s := csv.Spec.InstallStrategy.StrategySpec
	ns, cluster := permsOf(s.Permissions), permsOf(s.ClusterPermissions)
	if len(ns["demo-operator"]) != 1 || ns["demo-operator"][0].Resources[0] != "leases" {
		t.Errorf("operator's namespaced rules %+v: want its Role's", ns["demo-operator"])
	}
	if len(cluster["demo-operator"]) != 1 || cluster["demo-operator"][0].Resources[0] != "widgets" {
		t.Errorf("operator's cluster rules %+v: want its ClusterRole's", cluster["demo-operator"])
	}
	// Nothing is bound to the node account yet; it is listed all the same,
	// with no rules, so that OLM creates it for the operator's DaemonSet.
	rules, ok := ns["demo-node"]
	if !ok || len(rules) != 0 {
		t.Errorf("node account: listed %v with rules %+v, want listed with none", ok, rules)
	}
	if _, ok := cluster["demo-node"]; ok {
		t.Errorf("node account has cluster permissions it was never given")
	}
}

func TestPermissionsPickUpAgentRBAC(t *testing.T) {
	_, csv := mustRender(t, baseCSV, installBase+agentRBAC, samples)
	s := csv.Spec.InstallStrategy.StrategySpec
	ns, cluster := permsOf(s.Permissions), permsOf(s.ClusterPermissions)
	podRule := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}
	if !reflect.DeepEqual(cluster["demo-node"], []rbacv1.PolicyRule{podRule}) {
		t.Errorf("node cluster rules %+v: want the ClusterRole bound by the ClusterRoleBinding", cluster["demo-node"])
	}
	// A ClusterRole bound by a RoleBinding grants in the namespace only.
	if !reflect.DeepEqual(ns["demo-node"], []rbacv1.PolicyRule{podRule}) {
		t.Errorf("node namespaced rules %+v: want the ClusterRole bound by the RoleBinding", ns["demo-node"])
	}
	if got := []string{s.Permissions[0].ServiceAccountName, s.Permissions[1].ServiceAccountName}; got[0] != "demo-node" || got[1] != "demo-operator" {
		t.Errorf("permissions not in account order: %q", got)
	}
}

func TestUnboundRolesAreCopied(t *testing.T) {
	extra := `
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: demo-viewer
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- {apiGroups: [demo.dev], resources: [widgets], verbs: [get]}
`
	files, csv := mustRender(t, baseCSV, installBase+extra, samples)
	data, ok := files["manifests/demo-viewer_rbac.authorization.k8s.io_v1_clusterrole.yaml"]
	if !ok {
		t.Fatalf("unbound ClusterRole not copied: %q", files.Paths())
	}
	if !strings.Contains(string(data), "aggregate-to-view") {
		t.Errorf("copied ClusterRole lost its labels:\n%s", data)
	}
	for _, p := range csv.Spec.InstallStrategy.StrategySpec.ClusterPermissions {
		for _, r := range p.Rules {
			if reflect.DeepEqual(r.Verbs, []string{"get"}) {
				t.Errorf("unbound ClusterRole's rules granted to %s", p.ServiceAccountName)
			}
		}
	}
}

// TestAdmissionPoliciesLeftOut: OLM installs no admission policies, so
// the bundle leaves config/default's out (the CSV's description says to
// apply config/admission) instead of refusing them or shipping objects
// OLM would not install.
func TestAdmissionPoliciesLeftOut(t *testing.T) {
	policy := `
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: demo-node}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [demo.dev], apiVersions: ["*"], operations: [UPDATE], resources: [widgets]}
  validations:
  - expression: "true"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: demo-node}
spec: {policyName: demo-node, validationActions: [Deny]}
`
	files, _ := mustRender(t, baseCSV, installBase+policy, samples)
	for _, p := range files.Paths() {
		if strings.Contains(string(files[p]), "ValidatingAdmissionPolicy") {
			t.Errorf("%s holds an admission policy", p)
		}
	}
	if plain, _ := mustRender(t, baseCSV, installBase, samples); !reflect.DeepEqual(files.Paths(), plain.Paths()) {
		t.Errorf("files %q, want those without the policy %q", files.Paths(), plain.Paths())
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name          string
		base, install string
		want          string
	}{
		{"binding to a user", baseCSV, installBase + `
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: admin-widgets}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: demo-operator}
subjects:
- {kind: User, name: alice}
`, `binds User /alice`},
		{"binding to a missing role", baseCSV, installBase + `
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ghost, namespace: demo-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ghost}
subjects:
- {kind: ServiceAccount, name: demo-node, namespace: demo-system}
`, `Role "ghost", which config/default does not define`},
		{"unmanaged DaemonSet", baseCSV, installBase + `
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: rogue, namespace: demo-system}
spec:
  selector: {matchLabels: {app: rogue}}
  template:
    metadata: {labels: {app: rogue}}
    spec: {containers: [{name: c, image: x}]}
`, `DaemonSet "rogue": an OLM bundle cannot install it`},
		{"role in another namespace", baseCSV, installBase + `
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: elsewhere, namespace: kube-system}
rules: []
`, `Role "elsewhere" is in namespace "kube-system"`},
		{"descriptor of a missing field", strings.Replace(baseCSV, "path: size", "path: sise", 1), installBase,
			`spec descriptor "sise": no field "sise"`},
		{"descriptor through a non-list", strings.Replace(baseCSV, "path: size", "path: size[0]", 1), installBase,
			`"size" is not a list`},
		{"base describes a CRD config/default lacks", strings.Replace(baseCSV, "name: widgets.demo.dev", "name: gadgets.demo.dev", 1), installBase,
			"describes owned CRD gadgets.demo.dev"},
		{"base sets the version", strings.Replace(baseCSV, "  displayName: Demo", "  displayName: Demo\n  version: 0.0.1", 1), installBase,
			"spec.version"},
		{"base sets a CRD description", strings.Replace(baseCSV, "      displayName: Widget", "      displayName: Widget\n      description: mine", 1), installBase,
			"version, kind and description of owned CRD widgets.demo.dev"},
		{"base has a typo", strings.Replace(baseCSV, "  displayName: Demo", "  dispalyName: Demo", 1), installBase,
			`unknown field "dispalyName"`},
		{"deployment account not defined", baseCSV, strings.Replace(installBase, "serviceAccountName: demo-operator", "serviceAccountName: nobody", 1),
			`service account "nobody"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, c.base, c.install, samples)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestWords(t *testing.T) {
	for in, want := range map[string]string{
		"NetworkNodePolicy": "Network Node Policy",
		"VFNetwork":         "VF Network",
		"readyNodes":        "Ready Nodes",
		"mtu":               "Mtu",
		"RDMAMode":          "RDMA Mode",
	} {
		if got := words(in); got != want {
			t.Errorf("words(%q) = %q, want %q", in, got, want)
		}
	}
}
