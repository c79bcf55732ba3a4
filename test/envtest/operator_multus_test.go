package envtest

import (
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sluice-net/sluice/controllers"
	"github.com/sluice-net/sluice/test/testenv"
)

// Without Multus's NetworkAttachmentDefinition CRD the operator refuses to
// start and says what to install, instead of failing minutes later on a
// cache that never syncs.
func TestOperatorNeedsMultusCRD(t *testing.T) {
	assets, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(testenv.RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := te.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = te.Stop() })
	_, err = controllers.NewManager(controllers.Options{
		RestConfig: cfg, Namespace: "sluice-system", MetricsBindAddress: "0",
		NodeDaemonSet:                controllers.NodeDaemonSetOptions{Image: testNodeImage, MaxUnavailable: 1},
		SkipControllerNameValidation: true,
	})
	if err == nil || !strings.Contains(err.Error(), "NetworkAttachmentDefinition CRD (k8s.cni.cncf.io/v1) is not installed: install Multus") {
		t.Fatalf("NewManager without the NAD CRD = %v, want an error naming the CRD and Multus", err)
	}
}
