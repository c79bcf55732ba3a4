package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Object is one input object and where it was read.
type Object struct {
	U *unstructured.Unstructured
	// Source is "<file>#<document>" or "cluster".
	Source string
}

// Describe names the object as the report does: "<Kind> <ns>/<name>".
func (o *Object) Describe() string {
	name := o.U.GetName()
	if ns := o.U.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return o.U.GetKind() + " " + name
}

// Decode reads every object of a YAML or JSON stream (documents separated
// by ---); a List (kubectl get -o yaml) gives its items. name is the
// stream's name for Object.Source. Empty documents are skipped.
func Decode(r io.Reader, name string) ([]*Object, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*Object
	for doc := 1; ; doc++ {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		src := fmt.Sprintf("%s#%d", name, doc)
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src, err)
			}
			for i := range l.Items {
				out = append(out, &Object{U: &l.Items[i], Source: fmt.Sprintf("%s[%d]", src, i)})
			}
			continue
		}
		if u.GetKind() == "" {
			return nil, fmt.Errorf("%s: no kind: every document must be a Kubernetes object (apiVersion, kind, metadata)", src)
		}
		out = append(out, &Object{U: u, Source: src})
	}
}

// DecodeBytes is Decode of a byte slice.
func DecodeBytes(b []byte, name string) ([]*Object, error) {
	return Decode(bytes.NewReader(b), name)
}
