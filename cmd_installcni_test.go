package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// install-cni --sriov-alias makes "sriov" run sluice-cni on a node without
// sriov-cni, never replaces another plugin of that name, and takes its own
// alias back when the flag is off.
func TestInstallCNISriovAlias(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "sluice-cni")
	if err := os.WriteFile(src, []byte("sluice-cni v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	install := func(dest string, alias bool) string {
		t.Helper()
		var out bytes.Buffer
		if err := installCNI(src, dest, "sluice-cni", alias, &out); err != nil {
			t.Fatalf("install-cni (alias %t): %v", alias, err)
		}
		return out.String()
	}
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return string(b)
	}

	// No sriov binary: the alias is a relative link to the plugin, kept
	// on the next start.
	dest := filepath.Join(dir, "clean")
	if out := install(dest, true); !strings.Contains(out, "installed "+filepath.Join(dest, "sriov")+" -> sluice-cni") {
		t.Errorf("output %q", out)
	}
	if target, err := os.Readlink(filepath.Join(dest, "sriov")); err != nil || target != "sluice-cni" || read(filepath.Join(dest, "sriov")) != "sluice-cni v1" {
		t.Errorf("alias -> %q (%v)", target, err)
	}
	if out := install(dest, true); !strings.Contains(out, "already runs sluice-cni") {
		t.Errorf("second start: %q", out)
	}
	// Off: the alias goes, the plugin stays.
	if out := install(dest, false); !strings.Contains(out, "removed "+filepath.Join(dest, "sriov")) {
		t.Errorf("output %q", out)
	}
	if _, err := os.Lstat(filepath.Join(dest, "sriov")); !os.IsNotExist(err) || read(filepath.Join(dest, "sluice-cni")) != "sluice-cni v1" {
		t.Errorf("after --sriov-alias off: alias %v, plugin %q", err, read(filepath.Join(dest, "sluice-cni")))
	}

	// sriov-cni is installed (a file, or a link elsewhere): never
	// replaced nor removed, and the output says why.
	for _, foreign := range []string{"file", "link"} {
		dest := filepath.Join(dir, foreign)
		if err := os.MkdirAll(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		sriov := filepath.Join(dest, "sriov")
		if foreign == "file" {
			if err := os.WriteFile(sriov, []byte("sriov-cni"), 0o755); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := os.WriteFile(filepath.Join(dest, "sriov-cni-v2"), []byte("sriov-cni"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("sriov-cni-v2", sriov); err != nil {
				t.Fatal(err)
			}
		}
		out := install(dest, true)
		if !strings.Contains(out, "WARNING: --sriov-alias: not installing "+sriov) || !strings.Contains(out, "never replaced") {
			t.Errorf("%s: output %q", foreign, out)
		}
		install(dest, false)
		if read(sriov) != "sriov-cni" || read(filepath.Join(dest, "sluice-cni")) != "sluice-cni v1" {
			t.Errorf("%s: sriov is %q after install-cni", foreign, read(sriov))
		}
	}
}
