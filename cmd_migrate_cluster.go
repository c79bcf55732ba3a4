package main

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

	"github.com/sluice-net/sluice/migrate"
)

// snoKinds are the SNO objects 'sluice migrate --from-cluster' reads.
var snoKinds = []string{"SriovNetworkNodePolicy", "SriovNetwork", "SriovIBNetwork", "SriovNetworkPoolConfig", "SriovOperatorConfig"}

// readCluster lists the SNO objects in the SNO namespace, gets the device
// plugin ConfigMaps and, with --rewrite-nads, lists every
// NetworkAttachmentDefinition. notes say what was absent.
func readCluster(ctx context.Context, c client.Client, o *migrateOptions) ([]*migrate.Object, []string, error) {
	var (
		out   []*migrate.Object
		notes []string
		found int
	)
	for _, kind := range snoKinds {
		items, err := list(ctx, c, schema.GroupVersionKind{Group: migrate.SNOGroup, Version: "v1", Kind: kind}, client.InNamespace(o.snoNamespace))
		if meta.IsNoMatchError(err) {
			notes = append(notes, fmt.Sprintf("the cluster has no %s CRD (%s/v1): sriov-network-operator is not installed, or not this version; read its objects from files with -f", kind, migrate.SNOGroup))
			continue
		}
		if err != nil {
			return nil, notes, err
		}
		found++
		if len(items) == 0 {
			notes = append(notes, fmt.Sprintf("no %s in namespace %s (is SNO installed there? set --sno-namespace)", kind, o.snoNamespace))
		}
		out = append(out, items...)
	}
	if found == 0 && !o.rewriteNADs {
		return nil, notes, fmt.Errorf("none of sriov-network-operator's CRDs (%s) is installed in this cluster: there is nothing to migrate from it", strings.Join(snoKinds, ", "))
	}
	for _, ref := range strings.Split(o.configMaps, ",") {
		ref = strings.TrimSpace(ref)
		if ref == "" {
			continue
		}
		ns, name, ok := strings.Cut(ref, "/")
		if !ok {
			return nil, notes, fmt.Errorf("--configmaps %q: write namespace/name", ref)
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
		out = append(out, &migrate.Object{U: u, Source: "cluster"})
	}
	if o.rewriteNADs {
		items, err := list(ctx, c, schema.GroupVersionKind{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinition"})
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

func list(ctx context.Context, c client.Client, gvk schema.GroupVersionKind, opts ...client.ListOption) ([]*migrate.Object, error) {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := c.List(ctx, l, opts...); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, err
		}
		return nil, fmt.Errorf("list %s: %w", gvk.Kind, err)
	}
	out := make([]*migrate.Object, 0, len(l.Items))
	for i := range l.Items {
		u := &l.Items[i]
		u.SetGroupVersionKind(gvk)
		out = append(out, &migrate.Object{U: u, Source: "cluster"})
	}
	return out, nil
}

// applyAll server-side applies the sluice objects, then the rewritten
// NetworkAttachmentDefinitions.
func applyAll(ctx context.Context, c client.Client, res *migrate.Result, stderr io.Writer) error {
	all := append([]*unstructured.Unstructured{}, res.Objects...)
	for _, n := range res.NADs {
		all = append(all, n.Object)
	}
	for _, u := range all {
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(migrateFieldManager), client.ForceOwnership)
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("apply %s %s: the cluster has no %s CRD: install sluice first (its CRDs and operator): %w", u.GetKind(), name(u), u.GetKind(), err)
		}
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), name(u), err)
		}
		fmt.Fprintf(stderr, "applied %s %s\n", u.GetKind(), name(u))
	}
	return nil
}

func name(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return ns + "/" + u.GetName()
	}
	return u.GetName()
}
