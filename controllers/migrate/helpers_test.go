package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// fieldCase is one input object and what the migration must make of it.
type fieldCase struct {
	name string
	in   string
	// wantErr is the field of the FieldError that refuses the object
	// ("" for none).
	wantErr string
	// want maps fields of the input to their status in the report.
	want map[string]Status
	// wantSpec is the spec of the one sluice object made (YAML), "" for
	// none.
	wantSpec string
	// wantSpecs, for an input that makes several objects, are their
	// names and specs (YAML) in order; wantSpec is then unused.
	wantSpecs []namedSpec
	// detail maps fields to text their entry's detail must contain.
	detail map[string]string
}

func runCases(t *testing.T, cases []fieldCase, opts Options, rewriteNADs bool) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := DecodeBytes([]byte(tc.in), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			res := Convert(objs, opts, rewriteNADs)
			checkResult(t, tc, res)
		})
	}
}

func checkResult(t *testing.T, tc fieldCase, res *Result) {
	t.Helper()
	var fe *FieldError
	switch {
	case tc.wantErr == "" && len(res.Errors) > 0:
		t.Fatalf("unexpected errors: %v", res.Err())
	case tc.wantErr != "" && !errors.As(res.Err(), &fe):
		t.Fatalf("want a FieldError on %s, got %v", tc.wantErr, res.Err())
	case tc.wantErr != "" && fe.Field != tc.wantErr:
		t.Fatalf("error names field %q, want %q: %v", fe.Field, tc.wantErr, fe)
	}
	got := map[string]Status{}
	details := map[string]string{}
	for _, e := range res.Report.Entries {
		if prev, dup := got[e.Field]; dup && prev != e.Status {
			// A field with two entries (rdmaMode set on some policies,
			// unknown for others) is checked by its worst status.
			if e.Status != Unsupported {
				continue
			}
		}
		got[e.Field] = e.Status
		details[e.Field] += e.Detail + "\n"
	}
	for f, st := range tc.want {
		if got[f] != st {
			t.Errorf("field %s: status %q, want %q (report: %s)", f, got[f], st, dump(res))
		}
	}
	for f := range got {
		if _, ok := tc.want[f]; !ok {
			t.Errorf("field %s reported (%s: %s) but not expected", f, got[f], strings.TrimSpace(details[f]))
		}
	}
	for f, want := range tc.detail {
		if !strings.Contains(details[f], want) {
			t.Errorf("field %s: detail %q does not contain %q", f, details[f], want)
		}
	}
	if tc.wantSpecs != nil {
		checkSpecs(t, tc.wantSpecs, res)
		return
	}
	if tc.wantSpec == "" {
		if len(res.Objects) > 0 {
			t.Errorf("made %d objects, want none: %v", len(res.Objects), res.Objects[0].Object)
		}
		return
	}
	if len(res.Objects) != 1 {
		t.Fatalf("made %d objects, want 1", len(res.Objects))
	}
	var want map[string]any
	if err := yaml.Unmarshal([]byte(tc.wantSpec), &want); err != nil {
		t.Fatal(err)
	}
	gotSpec := normalize(t, res.Objects[0].Object["spec"])
	if !reflect.DeepEqual(gotSpec, normalize(t, want)) {
		g, _ := yaml.Marshal(gotSpec)
		t.Errorf("spec:\n%s\nwant:\n%s", g, tc.wantSpec)
	}
}

// namedSpec is one sluice object a case wants: its name and spec (YAML).
type namedSpec struct{ name, spec string }

func checkSpecs(t *testing.T, want []namedSpec, res *Result) {
	t.Helper()
	if len(res.Objects) != len(want) {
		t.Fatalf("made %d objects, want %d", len(res.Objects), len(want))
	}
	for i, w := range want {
		o := res.Objects[i]
		var ws map[string]any
		if err := yaml.Unmarshal([]byte(w.spec), &ws); err != nil {
			t.Fatal(err)
		}
		got := normalize(t, o.Object["spec"])
		if o.GetName() != w.name || !reflect.DeepEqual(got, normalize(t, ws)) {
			g, _ := yaml.Marshal(got)
			t.Errorf("object %d: %s %s, spec:\n%s\nwant %s, spec:\n%s", i, o.GetKind(), o.GetName(), g, w.name, w.spec)
		}
	}
}

func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func dump(res *Result) string {
	var b strings.Builder
	_ = res.Report.WriteTable(&b)
	return b.String()
}

func mustSelector(t *testing.T, s string) *metav1.LabelSelector {
	t.Helper()
	sel := &metav1.LabelSelector{}
	if err := yaml.Unmarshal([]byte(s), sel); err != nil {
		t.Fatal(err)
	}
	return sel
}

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }
