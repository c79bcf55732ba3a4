// Package bundle holds sluice's OLM bundle (registry+v1), generated from
// config/ by `make bundle`. Its tests check that the committed bundle passes
// operator-framework's validators and that it is what config/ generates now.
package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	"sigs.k8s.io/yaml"

	"github.com/sluice-net/sluice/hack/bundle/generate"
)

// csvPath is the committed CSV, relative to this directory.
const csvPath = "manifests/sluice.clusterserviceversion.yaml"

// validate loads the bundle in dir and runs the default bundle validators,
// the OperatorHub ones (operatorhub/v2 with the standard capabilities and
// categories: the non-deprecated equivalent of "operatorhub"), good
// practices, removed APIs and the optional object checks.
func validate(dir string) (errs, warns []string, err error) {
	b, err := load(dir)
	if err != nil {
		return nil, nil, err
	}
	validators := validation.DefaultBundleValidators.WithValidators(
		validation.OperatorHubV2Validator,
		validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator,
		validation.GoodPracticesValidator,
		validation.AlphaDeprecatedAPIsValidator,
		validation.ObjectValidator,
	)
	for _, r := range validators.Validate(b.ObjectsToValidate()...) {
		for _, e := range r.Errors {
			errs = append(errs, fmt.Sprintf("%s: %s", r.Name, e.Error()))
		}
		for _, w := range r.Warnings {
			warns = append(warns, fmt.Sprintf("%s: %s", r.Name, w.Error()))
		}
	}
	return errs, warns, nil
}

// load reads the bundle in dir. The loader skips directories whose name
// starts with a dot, "." included, so it is given an absolute path.
func load(dir string) (*manifests.Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := manifests.GetBundleFromDir(abs)
	if err != nil {
		return nil, fmt.Errorf("loading bundle %s: %w", dir, err)
	}
	return b, nil
}

func TestBundleValidates(t *testing.T) {
	errs, warns, err := validate(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warns {
		t.Logf("warning: %s", w)
	}
	for _, e := range errs {
		t.Errorf("error: %s", e)
	}
}

// TestValidationCatchesBrokenBundles breaks a copy of the bundle in ways
// OLM or OperatorHub would refuse, and expects validate to say so: the
// check above is only worth something if it can fail.
func TestValidationCatchesBrokenBundles(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   string
	}{
		{"no provider", editCSV(func(csv map[string]any) {
			delete(spec(csv), "provider")
		}), "csv.Spec.Provider.Name not specified"},
		{"unknown capability level", editCSV(func(csv map[string]any) {
			annotations(csv)["capabilities"] = "Fully Automatic"
		}), "is not a valid capabilities level"},
		{"unknown category", editCSV(func(csv map[string]any) {
			annotations(csv)["categories"] = "Networking,Plumbing"
		}), "not in the set of standard categories"},
		{"no install mode supported", editCSV(func(csv map[string]any) {
			for _, m := range spec(csv)["installModes"].([]any) {
				m.(map[string]any)["supported"] = false
			}
		}), "none of InstallModeTypes are supported"},
		{"invalid minKubeVersion", editCSV(func(csv map[string]any) {
			spec(csv)["minKubeVersion"] = "1.29"
		}), "MinKubeVersion has an invalid value"},
		{"example of an API the bundle does not provide", editCSV(func(csv map[string]any) {
			annotations(csv)["alm-examples"] = `[{"apiVersion":"sluice.dev/v1alpha1","kind":"Sluice","metadata":{"name":"x"}}]`
		}), "example must have a provided API"},
		{"owned CRD missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "manifests/sluice.dev_vfnetworks.yaml")); err != nil {
				t.Fatal(err)
			}
		}, `owned CRD "sluice.dev/v1alpha1, Kind=VFNetwork" not found`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyBundle(t)
			c.mutate(t, dir)
			errs, _, err := validate(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range errs {
				if strings.Contains(e, c.want) {
					return
				}
			}
			t.Errorf("no error containing %q; errors: %q", c.want, errs)
		})
	}
}

// TestBundleUpToDate regenerates the bundle from config/ with the version
// and channels of the committed one and compares every generated file.
// kustomize is $SLUICE_KUSTOMIZE (make test sets it), else `go run` of the
// pinned version.
func TestBundleUpToDate(t *testing.T) {
	b, err := load(".")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	files, err := generate.Render(ctx, generate.Options{
		Kustomize:      os.Getenv("SLUICE_KUSTOMIZE"),
		ConfigDir:      filepath.Join("..", "config"),
		Version:        b.CSV.Spec.Version.String(),
		Channels:       b.Channels,
		DefaultChannel: b.DefaultChannel,
	})
	if err != nil {
		t.Fatalf("regenerating the bundle: %v", err)
	}
	tmp := t.TempDir()
	if err := generate.Write(tmp, files); err != nil {
		t.Fatal(err)
	}
	diffs, err := compare(".", tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Errorf("stale: %s", d)
	}
	if len(diffs) > 0 {
		t.Errorf("bundle/ is not what config/ generates: run `make bundle` and commit bundle/")
	}
}

// TestCompareFindsDifferences makes sure the staleness check notices a
// changed, a missing and an extra file.
func TestCompareFindsDifferences(t *testing.T) {
	dir := copyBundle(t)
	if diffs, err := compare(".", dir); err != nil || len(diffs) != 0 {
		t.Fatalf("a copy differs: %q, %v", diffs, err)
	}
	csv := filepath.Join(dir, csvPath)
	data, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(csv, bytes.Replace(data, []byte("maturity: alpha"), []byte("maturity: stable"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "manifests/sluice.dev_nodenetworkstates.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata/extra.yaml"), []byte("a: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	diffs, err := compare(".", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		csvPath + ": differs",
		"manifests/sluice.dev_nodenetworkstates.yaml: only in",
		"metadata/extra.yaml: only in",
	}
	if len(diffs) != len(want) {
		t.Fatalf("got %d differences %q, want %d", len(diffs), diffs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(diffs[i], w) {
			t.Errorf("difference %d: got %q, want it to start with %q", i, diffs[i], w)
		}
	}
	if !strings.Contains(diffs[0], "maturity: stable") {
		t.Errorf("the CSV difference does not show the changed line: %q", diffs[0])
	}
}

// compare lists the differences between the generated files of two bundle
// directories, in path order.
func compare(committed, fresh string) ([]string, error) {
	a, err := generatedFiles(committed)
	if err != nil {
		return nil, err
	}
	b, err := generatedFiles(fresh)
	if err != nil {
		return nil, err
	}
	paths := map[string]bool{}
	for p := range a {
		paths[p] = true
	}
	for p := range b {
		paths[p] = true
	}
	var diffs []string
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		x, inA := a[p]
		y, inB := b[p]
		switch {
		case !inB:
			diffs = append(diffs, fmt.Sprintf("%s: only in %s (config/ no longer generates it)", p, committed))
		case !inA:
			diffs = append(diffs, fmt.Sprintf("%s: only in %s (config/ generates it, it is not committed)", p, fresh))
		case !bytes.Equal(x, y):
			diffs = append(diffs, fmt.Sprintf("%s: differs, %s", p, firstDifference(x, y)))
		}
	}
	return diffs, nil
}

// generatedFiles reads the files under dir that the generator writes.
func generatedFiles(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() || !generate.Generated(rel) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	return files, nil
}

// firstDifference names the first line where two files part.
func firstDifference(a, b []byte) string {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y || i >= len(la) || i >= len(lb) {
			return fmt.Sprintf("line %d: committed %q, generated %q", i+1, x, y)
		}
	}
	return "same lines, different bytes"
}

// copyBundle copies the generated files of this bundle into a new
// directory.
func copyBundle(t *testing.T) string {
	t.Helper()
	files, err := generatedFiles(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// editCSV rewrites the CSV of a bundle directory through edit.
func editCSV(edit func(csv map[string]any)) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		p := filepath.Join(dir, csvPath)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var csv map[string]any
		if err := yaml.Unmarshal(data, &csv); err != nil {
			t.Fatal(err)
		}
		edit(csv)
		out, err := yaml.Marshal(csv)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func spec(csv map[string]any) map[string]any { return csv["spec"].(map[string]any) }

func annotations(csv map[string]any) map[string]any {
	return csv["metadata"].(map[string]any)["annotations"].(map[string]any)
}
