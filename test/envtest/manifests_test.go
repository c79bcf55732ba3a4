package envtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-net/sluice/test/testenv"
)

// kustomizeVersion is the kustomize the Makefile pins.
const kustomizeVersion = "v5.8.2"

// kustomizeBuild renders a kustomization with the pinned kustomize: the
// binary make provides (SLUICE_KUSTOMIZE), else go run at that version.
func kustomizeBuild(t *testing.T, dir string) []byte {
	t.Helper()
	var cmd *exec.Cmd
	if k := os.Getenv("SLUICE_KUSTOMIZE"); k != "" {
		cmd = exec.Command(k, "build", dir)
	} else {
		cmd = exec.Command("go", "run", "sigs.k8s.io/kustomize/kustomize/v5@"+kustomizeVersion, "build", dir)
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, errb.String())
	}
	return out.Bytes()
}

func decodeAll(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// dryRunApply server-side applies every object with dryRun=All: the API
// server runs admission, the OpenAPI schema and the CEL rules, and stores
// nothing. Namespaces, those listed and those the objects are in, are
// created for real so namespaced objects resolve.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		name := o.GetNamespace()
		if o.GetKind() == "Namespace" {
			name = o.GetName()
		}
		if name == "" {
			continue
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			continue
		}
		err := env.Client.Patch(ctx, o, client.Apply, client.DryRunAll, client.ForceOwnership, client.FieldOwner("manifest-test"))
		if err != nil {
			t.Errorf("%s %s/%s rejected: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

func TestSamplesValid(t *testing.T) {
	objs := decodeAll(t, kustomizeBuild(t, filepath.Join(testenv.RepoRoot(), "config", "samples")))
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	if kinds["NetworkNodePolicy"] < 3 || kinds["VFNetwork"] < 1 || kinds["Pod"] < 1 {
		t.Fatalf("samples are missing kinds: %v", kinds)
	}
	dryRunApply(t, objs)
}

func TestDefaultInstallValid(t *testing.T) {
	objs := decodeAll(t, kustomizeBuild(t, filepath.Join(testenv.RepoRoot(), "config", "default")))
	want := map[string]bool{"CustomResourceDefinition": false, "Deployment": false, "DaemonSet": false, "ClusterRole": false, "ServiceAccount": false,
		"ValidatingAdmissionPolicy": false, "ValidatingAdmissionPolicyBinding": false}
	for _, o := range objs {
		if _, ok := want[o.GetKind()]; ok {
			want[o.GetKind()] = true
		}
		if o.GetKind() == "Deployment" {
			img, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			c := img[0].(map[string]any)
			env := c["env"].([]any)
			var nodeImage string
			for _, e := range env {
				if e.(map[string]any)["name"] == "SLUICE_NODE_IMAGE" {
					nodeImage, _ = e.(map[string]any)["value"].(string)
				}
			}
			if nodeImage == "" || nodeImage != c["image"] {
				t.Errorf("operator's SLUICE_NODE_IMAGE %q is not its own image %q", nodeImage, c["image"])
			}
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("config/default has no %s", k)
		}
	}
	dryRunApply(t, objs)
}

// TestAdmissionPolicyFollowsTheAgentAccount: the admission policy's
// parameter is the agent's ServiceAccount; a kustomization that installs
// sluice in another namespace, with a name prefix, moves the binding's
// reference along with the ServiceAccount (config/admission's
// kustomizeconfig.yaml), so the policy keeps applying to the agent.
func TestAdmissionPolicyFollowsTheAgentAccount(t *testing.T) {
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(testenv.RepoRoot(), "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := "namespace: team-x\nnamePrefix: x-\nresources:\n- " + filepath.ToSlash(base) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o644); err != nil {
		t.Fatal(err)
	}
	var account, ref, policy string
	for _, o := range decodeAll(t, kustomizeBuild(t, dir)) {
		switch o.GetKind() {
		case "ServiceAccount":
			if strings.HasSuffix(o.GetName(), "sluice-node") {
				account = o.GetNamespace() + "/" + o.GetName()
			}
		case "ValidatingAdmissionPolicyBinding":
			if !strings.HasSuffix(o.GetName(), "sluice-node") {
				continue // the VFNetwork tenants' policy: TestAdmissionPolicyFollowsNamespace
			}
			ns, _, _ := unstructured.NestedString(o.Object, "spec", "paramRef", "namespace")
			name, _, _ := unstructured.NestedString(o.Object, "spec", "paramRef", "name")
			ref = ns + "/" + name
			policy, _, _ = unstructured.NestedString(o.Object, "spec", "policyName")
		}
	}
	if account != "team-x/x-sluice-node" || ref != account {
		t.Errorf("the binding's parameter is %q, the agent's ServiceAccount %q: want both team-x/x-sluice-node", ref, account)
	}
	if policy != "x-sluice-node" {
		t.Errorf("the binding names policy %q, want x-sluice-node", policy)
	}
}

// The tenant admission policy's platform namespace is its parameter's, the
// operator's service account's, so an overlay that installs sluice in
// another namespace (and renames its objects) moves it along.
func TestAdmissionPolicyFollowsNamespace(t *testing.T) {
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(testenv.RepoRoot(), "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := "namespace: net-platform\nnamePrefix: acme-\nresources:\n- " + filepath.ToSlash(base) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o644); err != nil {
		t.Fatal(err)
	}
	var binding *unstructured.Unstructured
	accounts := map[string]bool{}
	policies := map[string]bool{}
	for _, o := range decodeAll(t, kustomizeBuild(t, dir)) {
		switch o.GetKind() {
		case "ValidatingAdmissionPolicyBinding":
			if o.GetName() == "acme-sluice-vfnetwork-tenants" {
				binding = o
			}
		case "ValidatingAdmissionPolicy":
			policies[o.GetName()] = true
		case "ServiceAccount":
			accounts[o.GetNamespace()+"/"+o.GetName()] = true
		}
	}
	if binding == nil {
		t.Fatal("no ValidatingAdmissionPolicyBinding acme-sluice-vfnetwork-tenants")
	}
	ns, _, _ := unstructured.NestedString(binding.Object, "spec", "paramRef", "namespace")
	name, _, _ := unstructured.NestedString(binding.Object, "spec", "paramRef", "name")
	policy, _, _ := unstructured.NestedString(binding.Object, "spec", "policyName")
	if ns != "net-platform" || name != "acme-sluice-operator" || !accounts[ns+"/"+name] {
		t.Errorf("binding's parameter is %s/%s, want the operator's service account net-platform/acme-sluice-operator (accounts: %v)", ns, name, accounts)
	}
	if policy != "acme-sluice-vfnetwork-tenants" || !policies[policy] {
		t.Errorf("binding names policy %q, want acme-sluice-vfnetwork-tenants (policies: %v)", policy, policies)
	}
}
