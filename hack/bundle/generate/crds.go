package generate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/operator-framework/api/pkg/operators/v1alpha1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// ownedCRDs describes every served version of every CRD of config/default:
// name, version and kind from the CRD, description from its schema, display
// name, resources and descriptors from the CSV base's entry of the same
// name. A descriptor's path must exist in the schema; an empty descriptor
// description is taken from the field's schema.
func ownedCRDs(base []v1alpha1.CRDDescription, crds []crd) ([]v1alpha1.CRDDescription, error) {
	byName := map[string]v1alpha1.CRDDescription{}
	for _, b := range base {
		if _, dup := byName[b.Name]; dup {
			return nil, fmt.Errorf("config/manifests: owned CRD %s is described twice", b.Name)
		}
		byName[b.Name] = b
	}
	var out []v1alpha1.CRDDescription
	var errs []error
	for _, c := range crds {
		b, described := byName[c.typed.Name]
		delete(byName, c.typed.Name)
		for _, v := range c.typed.Spec.Versions {
			if !v.Served {
				continue
			}
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				errs = append(errs, fmt.Errorf("CRD %s %s has no schema", c.typed.Name, v.Name))
				continue
			}
			root := v.Schema.OpenAPIV3Schema
			d := v1alpha1.CRDDescription{
				Name:             c.typed.Name,
				Version:          v.Name,
				Kind:             c.typed.Spec.Names.Kind,
				DisplayName:      b.DisplayName,
				Description:      unfold(root.Description),
				Resources:        b.Resources,
				ActionDescriptor: b.ActionDescriptor,
			}
			if d.Description == "" {
				errs = append(errs, fmt.Errorf("CRD %s %s has no description: document its Go type", c.typed.Name, v.Name))
			}
			if !described || d.DisplayName == "" {
				d.DisplayName = words(d.Kind)
			}
			spec, specErrs := describeFields(root, "spec", b.SpecDescriptors, func(sd *v1alpha1.SpecDescriptor) fieldDescriptor {
				return fieldDescriptor{sd.Path, &sd.DisplayName, &sd.Description}
			})
			status, statusErrs := describeFields(root, "status", b.StatusDescriptors, func(sd *v1alpha1.StatusDescriptor) fieldDescriptor {
				return fieldDescriptor{sd.Path, &sd.DisplayName, &sd.Description}
			})
			for _, e := range append(specErrs, statusErrs...) {
				errs = append(errs, fmt.Errorf("config/manifests: owned CRD %s %s: %w", c.typed.Name, v.Name, e))
			}
			d.SpecDescriptors, d.StatusDescriptors = spec, status
			out = append(out, d)
		}
	}
	for name := range byName {
		errs = append(errs, fmt.Errorf("config/manifests describes owned CRD %s, which config/default does not have", name))
	}
	return out, errors.Join(errs...)
}

// fieldDescriptor points into a spec or status descriptor being completed.
type fieldDescriptor struct {
	path                     string
	displayName, description *string
}

// describeFields completes copies of descriptors under root.properties[part].
func describeFields[D any](root *apiextensionsv1.JSONSchemaProps, part string, in []D, fields func(*D) fieldDescriptor) ([]D, []error) {
	if len(in) == 0 {
		return nil, nil
	}
	var errs []error
	top, ok := root.Properties[part]
	if !ok {
		return nil, []error{fmt.Errorf("%s descriptors, but the schema has no %s", part, part)}
	}
	out := make([]D, 0, len(in))
	for _, d := range in {
		f := fields(&d) // points into d, the copy appended below
		prop, err := lookup(&top, f.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s descriptor %q: %w", part, f.path, err))
			continue
		}
		if *f.description == "" {
			*f.description = unfold(prop.Description)
		}
		if *f.displayName == "" {
			segs := strings.Split(f.path, ".")
			*f.displayName = words(segs[len(segs)-1])
		}
		out = append(out, d)
	}
	return out, errs
}

// lookup follows a descriptor path ("nicSelector.vendor", "vfs[0].name")
// through a schema's properties and array items.
func lookup(s *apiextensionsv1.JSONSchemaProps, p string) (*apiextensionsv1.JSONSchemaProps, error) {
	if p == "" {
		return nil, errors.New("empty path")
	}
	cur := s
	for _, seg := range strings.Split(p, ".") {
		name, rest, _ := strings.Cut(seg, "[")
		next, ok := cur.Properties[name]
		if !ok {
			return nil, fmt.Errorf("no field %q in the schema", name)
		}
		cur = &next
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			if _, err := strconv.Atoi(idx); !ok || err != nil {
				return nil, fmt.Errorf("bad index in %q", seg)
			}
			if cur.Items == nil || cur.Items.Schema == nil {
				return nil, fmt.Errorf("%q is not a list", name)
			}
			cur = cur.Items.Schema
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return cur, nil
}

// unfold joins the lines of each paragraph of a Go doc comment that
// controller-gen copied into a schema description.
func unfold(s string) string {
	paras := strings.Split(strings.TrimSpace(s), "\n\n")
	for i, p := range paras {
		paras[i] = strings.Join(strings.Fields(p), " ")
	}
	return strings.Join(paras, "\n\n")
}

// words splits an identifier into capitalised words, keeping acronyms:
// "NetworkNodePolicy" -> "Network Node Policy", "VFNetwork" -> "VF Network",
// "readyNodes" -> "Ready Nodes".
func words(id string) string {
	r := []rune(id)
	var b strings.Builder
	for i, c := range r {
		if i > 0 && unicode.IsUpper(c) &&
			(unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1]))) {
			b.WriteByte(' ')
		}
		if i == 0 {
			c = unicode.ToUpper(c)
		}
		b.WriteRune(c)
	}
	return b.String()
}
