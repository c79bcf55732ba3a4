package controllers

import (
	"slices"
	"testing"
)

// --node-cdi turns the agent's CDI mode on, with the spec directory the
// runtime reads mounted from the host either way.
func TestNodeDaemonSetCDI(t *testing.T) {
	for _, cdi := range []bool{false, true} {
		ds := nodeDaemonSet(NodeDaemonSetOptions{Namespace: "ns", Image: "img", MaxUnavailable: 1, ServiceAccount: "sa", CDI: cdi})
		agent := ds.Spec.Template.Spec.Containers[0]
		if got := slices.Contains(agent.Args, "--cdi"); got != cdi {
			t.Errorf("CDI %t: agent args %v", cdi, agent.Args)
		}
		mounted := false
		for _, m := range agent.VolumeMounts {
			mounted = mounted || *m.MountPath == "/var/run/cdi"
		}
		if !mounted {
			t.Errorf("CDI %t: /var/run/cdi not mounted into the agent", cdi)
		}
	}
}
