package deviceplugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// With --cdi a whole-set unit is the CDI device <resource>=<unit>, whose
// spec lists the char devices of every selected HCA.
func TestWholeSetCDI(t *testing.T) {
	n := twoNICNode(t, 1)
	e := newEnv(t, n, map[string]any{"configList": []any{
		map[string]any{"resourceName": "hca", "rdmaHcaMax": 2, "selectors": map[string]any{"vendors": []string{"15b3"}, "deviceIDs": []string{"101d"}}},
	}}, func(o *Options) { o.CDI = true })
	const res = "sluice.dev/hca"
	e.kubelet.Wait(res, wait, "2 units", allHealthy(2))
	r, err := e.kubelet.Allocate(context.Background(), res, "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.CdiDevices) != 1 || r.CdiDevices[0].Name != res+"=1" || len(r.Devices) != 0 || len(r.Envs) != 0 {
		t.Fatalf("CDI %v, devices %v, envs %v; want %s=1 only", r.CdiDevices, r.Devices, r.Envs, res)
	}
	b, err := os.ReadFile(filepath.Join(e.m.opts.CDIDir, "sluice-sluice.dev_hca.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec cdispec.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(charDevices(t, n, cx0), charDevices(t, n, cx1))
	slices.Sort(want)
	want = slices.Compact(want)
	if len(spec.Devices) != 2 {
		t.Fatalf("spec has %d devices, want units 0 and 1: %s", len(spec.Devices), b)
	}
	for _, d := range spec.Devices {
		var got []string
		for _, node := range d.ContainerEdits.DeviceNodes {
			got = append(got, node.Path)
			// k8s-rdma-shared-dev-plugin's CDI specs (pkg/cdi/cdi.go)
			// give "rw", where its Allocate device specs give "rwm".
			if node.Permissions != "rw" {
				t.Errorf("unit %s: %s has permissions %q, want rw", d.Name, node.Path, node.Permissions)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("unit %s: device nodes %v, want both HCAs' %v", d.Name, got, want)
		}
	}
}
