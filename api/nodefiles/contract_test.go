package nodefiles_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sluice-net/sluice/"

// TestProgramsShareOnlyTheContract: the CNI plugin, the device plugin and
// the node agent reach each other's files through this package, never by
// importing one another's (the CNI once imported the device plugin's gate
// for an atomic write, and the device plugin the CNI's registry).
func TestProgramsShareOnlyTheContract(t *testing.T) {
	for pkg, forbidden := range map[string][]string{
		"./cni/...":          {"deviceplugin", "controllers"},
		"./deviceplugin/...": {"cni", "controllers"},
		"./controllers/...":  {"cni"},
		"./api/...":          {"cni", "deviceplugin", "controllers"},
	} {
		cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{.ImportPath}}", pkg)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ok := strings.CutPrefix(dep, module)
			if !ok {
				continue
			}
			for _, f := range forbidden {
				if rel == f || strings.HasPrefix(rel, f+"/") {
					t.Errorf("%s depends on %s: share it through api/nodefiles instead", pkg, dep)
				}
			}
		}
	}
}
