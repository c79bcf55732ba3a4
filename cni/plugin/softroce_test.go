package plugin_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/cni/internal/standin"
	"github.com/sluice-net/sluice/host"
)

func (e *env) softRoCE() map[string]any {
	return map[string]any{"softRoCE": map[string]any{"cdiKind": "sluice.dev/roce", "cdiDir": filepath.Join(e.dir, "cdi")}}
}

// ADD creates the soft-RoCE device on net1 inside the pod's namespace and
// writes the CDI spec of sluice.dev/roce=<VF>, listing exactly that
// device's char devices; DEL removes both and leaves the node as it was.
func TestSoftRoCEAddAndDel(t *testing.T) {
	e := newEnv(t, 2)
	pod, other := newNS(t), newNS(t)
	before := e.snapshot()
	args := cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), e.softRoCE()))
	e.mustAdd(args)
	args2 := cmdArgs(other, "c2", "net1", e.conf(vfAddr(1), e.softRoCE()))
	e.mustAdd(args2)

	st := e.state()
	name := host.SoftRoCEName(vfAddr(0))
	dev := st.SoftRoCE[name]
	podID := nsID(t, pod)
	if dev == nil || dev.Netdev != "net1" || dev.Netns != podID {
		t.Fatalf("soft-RoCE device %s = %+v, want one on net1 in the pod's namespace %s", name, dev, podID)
	}
	path := nodefiles.CDISpecPath(filepath.Join(e.dir, "cdi"), vfAddr(0))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec cdispec.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Kind != "sluice.dev/roce" || len(spec.Devices) != 1 || spec.Devices[0].Name != vfAddr(0) {
		t.Fatalf("CDI spec = %s", b)
	}
	var nodes []string
	for _, n := range spec.Devices[0].ContainerEdits.DeviceNodes {
		nodes = append(nodes, n.Path)
	}
	if !slices.Equal(nodes, dev.CharDevices) {
		t.Errorf("CDI device nodes %v, want the pod's own device's %v", nodes, dev.CharDevices)
	}
	if other := st.SoftRoCE[host.SoftRoCEName(vfAddr(1))]; other == nil || slices.Contains(nodes, other.CharDevices[len(other.CharDevices)-1]) {
		t.Errorf("the first pod's spec %v names the second pod's device %+v", nodes, other)
	}
	rec, ok := e.record(vfAddr(0))
	if !ok || rec.SoftRoCEDevice != name || rec.SoftRoCECDISpec != path {
		t.Errorf("attachment record = %+v", rec)
	}

	e.mustDel(args)
	e.mustDel(args2)
	e.requireSame(before, "soft-RoCE ADD then DEL")
}

// A failure at or after the soft-RoCE step leaves nothing behind.
func TestSoftRoCEAddUndoes(t *testing.T) {
	for _, tc := range []struct {
		name, fail string
		cdiDir     func(e *env) string
		want       string
	}{
		{"device creation fails", "AddSoftRoCE", nil, "softRoCE"},
		{"CDI spec cannot be written", "", func(e *env) string {
			f := filepath.Join(e.dir, "not-a-dir")
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return f
		}, "CDI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1)
			if tc.fail != "" {
				if err := e.node.Update(func(s *standin.State) error {
					s.Fail = map[string]string{tc.fail: "injected failure"}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			extra := e.softRoCE()
			if tc.cdiDir != nil {
				extra["softRoCE"].(map[string]any)["cdiDir"] = tc.cdiDir(e)
			}
			pod := newNS(t)
			before := e.snapshot()
			_, err := e.add(cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), extra)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ADD error = %v, want one naming %q", err, tc.want)
			}
			e.requireSame(before, "failed soft-RoCE ADD")
			if l := podLinks(t, pod); len(l) != 0 {
				t.Errorf("pod has %v after a failed ADD", l)
			}
		})
	}
}

// Bad soft-RoCE requests are refused before anything changes.
func TestSoftRoCEBadInput(t *testing.T) {
	for _, tc := range []struct {
		name      string
		exclusive bool
		kind      string
		want      string
	}{
		{"exclusive RDMA mode", true, "sluice.dev/roce", "spec.rdma.mode shared"},
		{"kind without class", false, "sluice.dev", "softRoCE.cdiKind"},
		{"kind with a device name", false, "sluice.dev/roce=0000:3b:02.0", "softRoCE.cdiKind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1)
			if tc.exclusive {
				if err := e.node.Update(func(s *standin.State) error { s.RDMAMode = "exclusive"; return nil }); err != nil {
					t.Fatal(err)
				}
			}
			pod := newNS(t)
			before := e.snapshot()
			extra := e.softRoCE()
			extra["softRoCE"].(map[string]any)["cdiKind"] = tc.kind
			_, err := e.add(cmdArgs(pod, "c1", "net1", e.conf(vfAddr(0), extra)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ADD error = %v, want one naming %q", err, tc.want)
			}
			e.requireSame(before, "refused soft-RoCE ADD")
		})
	}
}
