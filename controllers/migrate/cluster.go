package migrate

import (
	"context"
	"fmt"
	"io"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldManager owns what Apply writes.
const FieldManager = "sluice-migrate"

// SNOKinds are the SNO objects ReadCluster reads.
func SNOKinds() []string {
	return []string{"SriovNetworkNodePolicy", "SriovNetwork", "SriovIBNetwork", "SriovNetworkPoolConfig", "SriovOperatorConfig"}
}

// ClusterInput says what ReadCluster reads.
type ClusterInput struct {
	// SNONamespace is where SNO's objects are listed.
	SNONamespace string
	// ConfigMaps are namespace/name of device plugin ConfigMaps; absent
	// ones are skipped with a note.
	ConfigMaps []string
	// NADs lists every NetworkAttachmentDefinition too.
	NADs bool
}

// ReadCluster lists the SNO objects in the SNO namespace, gets the device
// plugin ConfigMaps and, if asked, lists every
// NetworkAttachmentDefinition. notes say what was absent. It fails when
// none of SNO's CRDs is installed and no NetworkAttachmentDefinitions are
// asked for.
func ReadCluster(ctx context.Context, c client.Client, in ClusterInput) ([]*Object, []string, error) {
	var (
		out   []*Object
		notes []string
		found int
	)
	for _, kind := range SNOKinds() {
		items, err := listKind(ctx, c, schema.GroupVersionKind{Group: SNOGroup, Version: "v1", Kind: kind}, client.InNamespace(in.SNONamespace))
		if meta.IsNoMatchError(err) {
			notes = append(notes, fmt.Sprintf("the cluster has no %s CRD (%s/v1): sriov-network-operator is not installed, or not this version; read its objects from files with -f", kind, SNOGroup))
			continue
		}
		if err != nil {
			return nil, notes, err
		}
		found++
		if len(items) == 0 {
			notes = append(notes, fmt.Sprintf("no %s in namespace %s (is SNO installed there? set --sno-namespace)", kind, in.SNONamespace))
		}
		out = append(out, items...)
	}
	if found == 0 && !in.NADs {
		return nil, notes, fmt.Errorf("none of sriov-network-operator's CRDs (%s) is installed in this cluster: there is nothing to migrate from it", strings.Join(SNOKinds(), ", "))
	}
	for _, ref := range in.ConfigMaps {
		ns, name, ok := strings.Cut(ref, "/")
		if !ok {
			return nil, notes, fmt.Errorf("ConfigMap %q: write namespace/name", ref)
		}
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("ConfigMap")
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)
		if apierrors.IsNotFound(err) {
			notes = append(notes, fmt.Sprintf("no ConfigMap %s: skipped", ref))
			continue
		}
		if err != nil {
			return nil, notes, fmt.Errorf("get ConfigMap %s: %w", ref, err)
		}
		out = append(out, &Object{U: u, Source: "cluster"})
	}
	if in.NADs {
		items, err := listKind(ctx, c, schema.GroupVersionKind{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinition"})
		switch {
		case meta.IsNoMatchError(err):
			notes = append(notes, "the cluster has no NetworkAttachmentDefinition CRD (Multus): no attachments to rewrite")
		case err != nil:
			return nil, notes, err
		default:
			out = append(out, items...)
		}
	}
	return out, notes, nil
}

func listKind(ctx context.Context, c client.Client, gvk schema.GroupVersionKind, opts ...client.ListOption) ([]*Object, error) {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := c.List(ctx, l, opts...); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, err
		}
		return nil, fmt.Errorf("list %s: %w", gvk.Kind, err)
	}
	out := make([]*Object, 0, len(l.Items))
	for i := range l.Items {
		u := &l.Items[i]
		u.SetGroupVersionKind(gvk)
		out = append(out, &Object{U: u, Source: "cluster"})
	}
	return out, nil
}

// Apply server-side applies the sluice objects, then the rewritten
// NetworkAttachmentDefinitions, as FieldManager, logging each to w.
func Apply(ctx context.Context, c client.Client, res *Result, w io.Writer) error {
	all := append([]*unstructured.Unstructured{}, res.Objects...)
	for _, n := range res.NADs {
		all = append(all, n.Object)
	}
	for _, u := range all {
		// A copy: Apply writes the server's answer into the object, which
		// then holds fields (managedFields) an apply must not send.
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.FieldOwner(FieldManager), client.ForceOwnership)
		if meta.IsNoMatchError(err) {
			fix := "install sluice first (its CRDs and operator)"
			if u.GetKind() == "NetworkAttachmentDefinition" {
				fix = "install Multus first"
			}
			return fmt.Errorf("apply %s %s: the cluster has no %s CRD: %s: %w", u.GetKind(), objName(u), u.GetKind(), fix, err)
		}
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), objName(u), err)
		}
		fmt.Fprintf(w, "applied %s %s\n", u.GetKind(), objName(u))
	}
	return nil
}

func objName(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return ns + "/" + u.GetName()
	}
	return u.GetName()
}
