package generate

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/operator-framework/api/pkg/operators/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Objects labelled managedBy=managedBySluice are created by the operator
// itself (the node DaemonSet), so OLM does not install them.
const (
	managedByLabel  = "app.kubernetes.io/managed-by"
	managedBySluice = "sluice"
)

// crd is a CRD of config/default, typed and as built.
type crd struct {
	typed *apiextensionsv1.CustomResourceDefinition
	raw   *unstructured.Unstructured
}

// installObjects are config/default's objects by what the bundle makes of them.
type installObjects struct {
	namespace           *unstructured.Unstructured
	crds                []crd
	serviceAccounts     []corev1.ServiceAccount
	roles               []rbacv1.Role
	clusterRoles        []rbacv1.ClusterRole
	roleBindings        []rbacv1.RoleBinding
	clusterRoleBindings []rbacv1.ClusterRoleBinding
	deployments         []appsv1.Deployment
	// extra are copied into the bundle as they are.
	extra []*unstructured.Unstructured
	// unbundled are the admission policies and their bindings, which a
	// registry+v1 bundle cannot carry: the CSV's description says how to
	// apply them (config/admission).
	unbundled []*unstructured.Unstructured
}

// unbundledKind reports whether objects of this kind stay out of the
// bundle though config/default installs them: OLM installs no admission
// policies (operator-framework/operator-sdk#7038).
func unbundledKind(gk schema.GroupKind) bool {
	switch gk {
	case schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"},
		schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}:
		return true
	}
	return false
}

// copiedKind reports whether OLM installs objects of this kind from a
// bundle's manifests directory (beyond CRDs and the CSV).
func copiedKind(gk schema.GroupKind) bool {
	switch gk {
	case schema.GroupKind{Kind: "Service"},
		schema.GroupKind{Kind: "ConfigMap"},
		schema.GroupKind{Kind: "Secret"},
		schema.GroupKind{Group: "policy", Kind: "PodDisruptionBudget"},
		schema.GroupKind{Group: "scheduling.k8s.io", Kind: "PriorityClass"},
		schema.GroupKind{Group: "monitoring.coreos.com", Kind: "ServiceMonitor"},
		schema.GroupKind{Group: "monitoring.coreos.com", Kind: "PrometheusRule"}:
		return true
	}
	return false
}

// classify sorts config/default's objects, converting the ones the CSV is
// made of, and refuses what a registry+v1 bundle cannot carry.
func classify(objs []*unstructured.Unstructured) (*installObjects, error) {
	in := &installObjects{}
	for _, u := range objs {
		gk := u.GroupVersionKind().GroupKind()
		id := fmt.Sprintf("%s %q", u.GetKind(), u.GetName())
		if u.GetLabels()[managedByLabel] == managedBySluice {
			continue
		}
		var err error
		switch gk {
		case schema.GroupKind{Kind: "Namespace"}:
			if in.namespace != nil {
				return nil, fmt.Errorf("two namespaces, %q and %q: a bundle installs into one", in.namespace.GetName(), u.GetName())
			}
			in.namespace = u
		case schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
			c := &apiextensionsv1.CustomResourceDefinition{}
			if u.GroupVersionKind().Version != "v1" {
				return nil, fmt.Errorf("%s: only apiextensions.k8s.io/v1 CRDs are supported", id)
			}
			err = convert(u, c)
			in.crds = append(in.crds, crd{typed: c, raw: u})
		case schema.GroupKind{Kind: "ServiceAccount"}:
			var sa corev1.ServiceAccount
			err = convert(u, &sa)
			in.serviceAccounts = append(in.serviceAccounts, sa)
		case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "Role"}:
			var r rbacv1.Role
			err = convert(u, &r)
			in.roles = append(in.roles, r)
		case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:
			var r rbacv1.ClusterRole
			err = convert(u, &r)
			in.clusterRoles = append(in.clusterRoles, r)
		case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:
			var b rbacv1.RoleBinding
			err = convert(u, &b)
			in.roleBindings = append(in.roleBindings, b)
		case schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:
			var b rbacv1.ClusterRoleBinding
			err = convert(u, &b)
			in.clusterRoleBindings = append(in.clusterRoleBindings, b)
		case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
			var d appsv1.Deployment
			err = convert(u, &d)
			in.deployments = append(in.deployments, d)
		default:
			if unbundledKind(gk) {
				in.unbundled = append(in.unbundled, u)
				continue
			}
			if !copiedKind(gk) {
				return nil, fmt.Errorf("%s: an OLM bundle cannot install it (objects the operator creates itself carry the label %s=%s)", id, managedByLabel, managedBySluice)
			}
			in.extra = append(in.extra, u)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
	}
	if len(in.deployments) == 0 {
		return nil, errors.New("no Deployment: nothing for OLM to install")
	}
	if len(in.crds) == 0 {
		return nil, errors.New("no CustomResourceDefinition")
	}
	sort.Slice(in.crds, func(i, j int) bool { return in.crds[i].typed.Name < in.crds[j].typed.Name })
	sort.Slice(in.deployments, func(i, j int) bool { return in.deployments[i].Name < in.deployments[j].Name })
	sort.Slice(in.serviceAccounts, func(i, j int) bool { return in.serviceAccounts[i].Name < in.serviceAccounts[j].Name })
	sort.Slice(in.extra, func(i, j int) bool {
		a, b := in.extra[i], in.extra[j]
		return a.GetKind()+"/"+a.GetName() < b.GetKind()+"/"+b.GetName()
	})
	return in, in.checkNamespaces()
}

// checkNamespaces makes sure every namespaced object of the install lives
// in one namespace: OLM puts them all in the operator's.
func (in *installObjects) checkNamespaces() error {
	ns := in.deployments[0].Namespace
	if in.namespace != nil && in.namespace.GetName() != ns {
		return fmt.Errorf("Deployment %q is in namespace %q, not in the Namespace %q", in.deployments[0].Name, ns, in.namespace.GetName())
	}
	check := func(kind, name, namespace string) error {
		if namespace != ns {
			return fmt.Errorf("%s %q is in namespace %q, not in the operator's %q: OLM installs everything in the operator's namespace", kind, name, namespace, ns)
		}
		return nil
	}
	var errs []error
	for _, d := range in.deployments {
		errs = append(errs, check("Deployment", d.Name, d.Namespace))
	}
	for _, sa := range in.serviceAccounts {
		errs = append(errs, check("ServiceAccount", sa.Name, sa.Namespace))
	}
	for _, r := range in.roles {
		errs = append(errs, check("Role", r.Name, r.Namespace))
	}
	for _, b := range in.roleBindings {
		errs = append(errs, check("RoleBinding", b.Name, b.Namespace))
	}
	return errors.Join(errs...)
}

func convert(u *unstructured.Unstructured, into any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	return nil
}

// installStrategy is the deployment strategy: every Deployment, and the
// permissions of every service account.
func installStrategy(in *installObjects) (v1alpha1.NamedInstallStrategy, error) {
	s := v1alpha1.NamedInstallStrategy{StrategyName: v1alpha1.InstallStrategyNameDeployment}
	accounts := map[string]bool{}
	for _, sa := range in.serviceAccounts {
		accounts[sa.Name] = true
	}
	for _, d := range in.deployments {
		sa := d.Spec.Template.Spec.ServiceAccountName
		if !accounts[sa] {
			return s, fmt.Errorf("Deployment %q runs as service account %q, which config/default does not define", d.Name, sa)
		}
		s.StrategySpec.DeploymentSpecs = append(s.StrategySpec.DeploymentSpecs, v1alpha1.StrategyDeploymentSpec{
			Name:  d.Name,
			Spec:  *d.Spec.DeepCopy(),
			Label: d.Labels,
		})
	}
	perms, clusterPerms, extra, err := permissions(in)
	if err != nil {
		return s, err
	}
	s.StrategySpec.Permissions = perms
	s.StrategySpec.ClusterPermissions = clusterPerms
	in.extra = append(in.extra, extra...)
	return s, nil
}

// permissions turns the RBAC of config/default into the CSV's permissions
// (namespaced: Roles, and ClusterRoles bound by a RoleBinding) and
// clusterPermissions (ClusterRoles bound by a ClusterRoleBinding), one entry
// per service account, rules in binding-name order. Every service account
// gets a permissions entry, with no rules if nothing is bound to it, because
// OLM creates the service accounts the strategy names and no others (the
// node agent's account is used by the DaemonSet the operator creates).
// Roles bound to no service account are returned to be copied as they are;
// bindings of anything but the bundle's service accounts are refused.
func permissions(in *installObjects) (perms, clusterPerms []v1alpha1.StrategyDeploymentPermissions, extra []*unstructured.Unstructured, err error) {
	roles := map[string]rbacv1.Role{}
	for _, r := range in.roles {
		roles[r.Name] = r
	}
	clusterRoles := map[string]rbacv1.ClusterRole{}
	for _, r := range in.clusterRoles {
		if r.AggregationRule != nil {
			return nil, nil, nil, fmt.Errorf("ClusterRole %q aggregates other roles: OLM permissions need its rules spelled out", r.Name)
		}
		clusterRoles[r.Name] = r
	}
	accounts := map[string]bool{}
	for _, sa := range in.serviceAccounts {
		accounts[sa.Name] = true
	}
	ns := in.deployments[0].Namespace
	// accountsOf returns the service accounts a binding binds, refusing
	// any other subject.
	accountsOf := func(kind, name, bindingNS string, subjects []rbacv1.Subject) ([]string, error) {
		var out []string
		for _, s := range subjects {
			sns := s.Namespace
			if sns == "" {
				sns = bindingNS
			}
			if s.Kind != rbacv1.ServiceAccountKind || sns != ns || !accounts[s.Name] {
				return nil, fmt.Errorf("%s %q binds %s %s/%s, which is not a service account of config/default: a CSV can only grant to its own service accounts", kind, name, s.Kind, sns, s.Name)
			}
			out = append(out, s.Name)
		}
		return out, nil
	}
	used := map[string]bool{} // "Role/name", "ClusterRole/name"
	nsRules := map[string][]rbacv1.PolicyRule{}
	clusterRules := map[string][]rbacv1.PolicyRule{}

	rbs := append([]rbacv1.RoleBinding(nil), in.roleBindings...)
	sort.Slice(rbs, func(i, j int) bool { return rbs[i].Name < rbs[j].Name })
	for _, b := range rbs {
		sas, err := accountsOf("RoleBinding", b.Name, b.Namespace, b.Subjects)
		if err != nil {
			return nil, nil, nil, err
		}
		var rules []rbacv1.PolicyRule
		switch b.RoleRef.Kind {
		case "Role":
			r, ok := roles[b.RoleRef.Name]
			if !ok {
				return nil, nil, nil, fmt.Errorf("RoleBinding %q refers to Role %q, which config/default does not define", b.Name, b.RoleRef.Name)
			}
			rules = r.Rules
		case "ClusterRole":
			r, ok := clusterRoles[b.RoleRef.Name]
			if !ok {
				return nil, nil, nil, fmt.Errorf("RoleBinding %q refers to ClusterRole %q, which config/default does not define", b.Name, b.RoleRef.Name)
			}
			rules = r.Rules
		default:
			return nil, nil, nil, fmt.Errorf("RoleBinding %q refers to a %s", b.Name, b.RoleRef.Kind)
		}
		used[b.RoleRef.Kind+"/"+b.RoleRef.Name] = true
		for _, sa := range sas {
			nsRules[sa] = append(nsRules[sa], rules...)
		}
	}
	crbs := append([]rbacv1.ClusterRoleBinding(nil), in.clusterRoleBindings...)
	sort.Slice(crbs, func(i, j int) bool { return crbs[i].Name < crbs[j].Name })
	for _, b := range crbs {
		sas, err := accountsOf("ClusterRoleBinding", b.Name, "", b.Subjects)
		if err != nil {
			return nil, nil, nil, err
		}
		r, ok := clusterRoles[b.RoleRef.Name]
		if b.RoleRef.Kind != "ClusterRole" || !ok {
			return nil, nil, nil, fmt.Errorf("ClusterRoleBinding %q refers to %s %q, which config/default does not define", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
		}
		used["ClusterRole/"+r.Name] = true
		for _, sa := range sas {
			clusterRules[sa] = append(clusterRules[sa], r.Rules...)
		}
	}

	for _, sa := range in.serviceAccounts {
		if rules, ok := clusterRules[sa.Name]; ok {
			clusterPerms = append(clusterPerms, v1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa.Name, Rules: rules})
		}
		if rules, ok := nsRules[sa.Name]; ok || clusterRules[sa.Name] == nil {
			if rules == nil {
				rules = []rbacv1.PolicyRule{}
			}
			perms = append(perms, v1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa.Name, Rules: rules})
		}
	}

	// Roles no service account uses (for people, e.g. aggregated to view)
	// go into the bundle as they are.
	for _, r := range in.roles {
		if !used["Role/"+r.Name] {
			u, err := toUnstructured(&r, rbacv1.SchemeGroupVersion.WithKind("Role"))
			if err != nil {
				return nil, nil, nil, err
			}
			extra = append(extra, u)
		}
	}
	for _, r := range in.clusterRoles {
		if !used["ClusterRole/"+r.Name] {
			u, err := toUnstructured(&r, rbacv1.SchemeGroupVersion.WithKind("ClusterRole"))
			if err != nil {
				return nil, nil, nil, err
			}
			extra = append(extra, u)
		}
	}
	return perms, clusterPerms, extra, nil
}

func toUnstructured(obj any, gvk schema.GroupVersionKind) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", gvk.Kind, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// relatedImages are the images the operator runs or hands to what it
// creates: every container's and init container's image, and the literal
// value of every environment variable named *_IMAGE (SLUICE_NODE_IMAGE, the
// node DaemonSet's). Each image is listed once, named after the last element
// of its repository (with the container or variable name on a clash).
func relatedImages(deployments []appsv1.Deployment) []v1alpha1.RelatedImage {
	type ref struct{ source, image string }
	var refs []ref
	for _, d := range deployments {
		spec := d.Spec.Template.Spec
		for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
			refs = append(refs, ref{c.Name, c.Image})
			for _, e := range c.Env {
				if strings.HasSuffix(e.Name, "_IMAGE") && e.Value != "" {
					refs = append(refs, ref{strings.ToLower(strings.ReplaceAll(strings.TrimSuffix(e.Name, "_IMAGE"), "_", "-")), e.Value})
				}
			}
		}
	}
	seen := map[string]bool{}
	names := map[string]bool{}
	var out []v1alpha1.RelatedImage
	for _, r := range refs {
		if r.image == "" || seen[r.image] {
			continue
		}
		seen[r.image] = true
		name := imageBaseName(r.image)
		if names[name] {
			name += "-" + r.source
		}
		names[name] = true
		out = append(out, v1alpha1.RelatedImage{Name: name, Image: r.image})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// imageBaseName is the last path element of an image's repository:
// ghcr.io/sluice-net/sluice:v0.1.0 -> sluice.
func imageBaseName(image string) string {
	repo := image
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	base := path.Base(repo)
	if i := strings.Index(base, ":"); i >= 0 {
		base = base[:i]
	}
	return base
}
