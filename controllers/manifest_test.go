package controllers

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// The node DaemonSet in config/agent is the operator's own rendering with
// the default options, so `kubectl apply -k config/default` installs
// exactly what the operator then keeps. Run with SLUICE_UPDATE_MANIFESTS=1
// (make manifests) to rewrite it after changing the renderer.
func TestNodeDaemonSetManifestUpToDate(t *testing.T) {
	ds := nodeDaemonSet(NodeDaemonSetOptions{
		Namespace:      DefaultNamespace,
		Image:          "sluice",
		MaxUnavailable: 1,
		ServiceAccount: DefaultServiceAccount,
		ResourcePrefix: DefaultResourcePrefix,
	})
	body, err := yaml.Marshal(ds)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("# Generated from controllers/daemonset.go by `make manifests`: do not edit.\n"), body...)
	path := filepath.Join("..", "config", "agent", "daemonset.yaml")
	if os.Getenv("SLUICE_UPDATE_MANIFESTS") != "" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run make manifests)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the operator's rendering: run make manifests\nwant:\n%s", path, want)
	}
}
