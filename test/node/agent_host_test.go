package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-net/sluice/test/testenv"
)

// The agent suite (test/node/guest/agent) runs the node agent in the guest
// against an envtest API server started here. The guest dials it at
// 10.0.2.2:<port>; envtest's serving certificate names localhost and
// 127.0.0.1 only, so the guest's kubeconfig keeps full verification
// against envtest's CA with tls-server-name: localhost (no insecure mode).
func agentSuite() Suite {
	return Suite{
		Name: "agent",
		PFs:  1,
		Setup: func(t *testing.T, h *Host) {
			env, err := testenv.Start()
			if err != nil {
				t.Fatalf("agent suite: envtest: %v", err)
			}
			t.Cleanup(func() { _ = env.Stop() })
			path := h.Path("kubeconfig")
			if err := env.WriteKubeconfig(path, "https://"+h.GuestAddr(env.HostPort())); err != nil {
				t.Fatal(err)
			}
			h.Setenv("SLUICE_AGENT_KUBECONFIG", path)
		},
		Check: func(t *testing.T, h *Host) {
			raw, err := os.ReadFile(filepath.Join(h.OutDir(), "timings.json"))
			if err != nil {
				t.Logf("agent suite: no timings: %v", err)
				return
			}
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Errorf("agent suite timings: %v", err)
				return
			}
			t.Logf("agent on the emulated node (real igb VFs): %s", raw)
		},
	}
}
