package nodefiles_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sluice-net/sluice/"

// TestProgramsShareOnlyTheContract: the CNI plugin, the device plugin and
// the node agent reach each other's files through this package, never by
// importing one another's (the CNI once imported the device plugin's gate
// for an atomic write, and the device plugin the CNI's registry).
func TestProgramsShareOnlyTheContract(t *testing.T) {
	// testOnly are what a package's tests alone may reach: the operator's
	// fuzz test renders a VFNetwork and parses the result with sluice-cni's
	// own parser (controllers/fuzz_test.go), the one place both sides of
	// that contract meet.
	testOnly := map[string][]string{"./controllers/...": {"cni/plugin"}}
	for pkg, forbidden := range map[string][]string{
		"./cni/...":          {"deviceplugin", "controllers"},
		"./deviceplugin/...": {"cni", "controllers"},
		"./controllers/...":  {"cni"},
		"./api/...":          {"cni", "deviceplugin", "controllers"},
	} {
		prod := deps(t, pkg)
		for _, rel := range deps(t, pkg, "-test") {
			for _, f := range forbidden {
				if rel != f && !strings.HasPrefix(rel, f+"/") {
					continue
				}
				if slices.Contains(testOnly[pkg], rel) && !slices.Contains(prod, rel) {
					continue
				}
				t.Errorf("%s depends on %s: share it through api/nodefiles instead", pkg, module+rel)
			}
		}
	}
}

// deps lists the module's packages pkg depends on, relative to the module.
func deps(t *testing.T, pkg string, flags ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps"}, flags...)
	cmd := exec.Command("go", append(args, "-f", "{{.ImportPath}}", pkg)...)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pkg, err, out)
	}
	var rels []string
	for _, dep := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(dep, module); ok {
			rels = append(rels, rel)
		}
	}
	return rels
}
