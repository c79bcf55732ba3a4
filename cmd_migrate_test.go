package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-net/sluice/controllers/migrate"
)

const migrateInput = `apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetworkNodePolicy
metadata: {name: policy-1, namespace: sriov-network-operator}
spec: {resourceName: intelnics, numVfs: 6, nodeSelector: {}, nicSelector: {vendor: "8086", pfNames: [ens803f0]}}
---
apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetwork
metadata: {name: example-network, namespace: sriov-network-operator}
spec: {resourceName: intelnics, networkNamespace: default, ipam: '{"type": "host-local", "subnet": "10.56.217.0/24"}'}
`

func writeInput(t *testing.T, docs ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, d := range docs {
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".yaml"), []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestMigrateDryRun: a directory of SNO objects gives the sluice objects on
// stdout, the report where asked, and changes nothing (no cluster is
// reachable in this test).
func TestMigrateDryRun(t *testing.T) {
	dir := writeInput(t, migrateInput)
	report := filepath.Join(t.TempDir(), "report.json")
	var out, errb bytes.Buffer
	o := &migrateOptions{files: stringList{dir}, reportFile: report, reportFormat: "json", kubeconfig: "/nonexistent"}
	if err := runMigrate(context.Background(), o, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, want := range []string{"kind: NetworkNodePolicy", "kind: VFNetwork", "namespace: sluice-system", "priority: 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "dry run") {
		t.Errorf("stderr %q does not say dry run", errb.String())
	}
	var r migrate.Report
	b, err := os.ReadFile(report)
	if err != nil || json.Unmarshal(b, &r) != nil || len(r.Entries) == 0 {
		t.Fatalf("report %s: %v", b, err)
	}
}

// TestMigrateRefusesToApply: an object that cannot be converted stops
// --apply before any cluster is contacted, naming the field.
func TestMigrateRefusesToApply(t *testing.T) {
	dir := writeInput(t, migrateInput+`---
apiVersion: sriovnetwork.openshift.io/v1
kind: SriovNetworkNodePolicy
metadata: {name: offload}
spec: {resourceName: ovs, numVfs: 4, eSwitchMode: switchdev, nicSelector: {vendor: "15b3"}}
`)
	var out, errb bytes.Buffer
	o := &migrateOptions{files: stringList{dir}, reportFormat: "table", apply: true, kubeconfig: "/nonexistent"}
	err := runMigrate(context.Background(), o, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "nothing applied") || !strings.Contains(err.Error(), "spec.eSwitchMode") {
		t.Fatalf("err %v, want nothing applied naming spec.eSwitchMode", err)
	}
	if !strings.Contains(errb.String(), "unsupported") {
		t.Errorf("report not written:\n%s", errb.String())
	}
}

// TestMigrateOutDir: -o writes one file per object.
func TestMigrateOutDir(t *testing.T) {
	dir := writeInput(t, migrateInput)
	outDir := filepath.Join(t.TempDir(), "out")
	var out, errb bytes.Buffer
	o := &migrateOptions{files: stringList{dir}, outDir: outDir, reportFormat: "table"}
	if err := runMigrate(context.Background(), o, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"networknodepolicy-policy-1.yaml", "vfnetwork-sluice-system-example-network.yaml"} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err != nil {
			t.Error(err)
		}
	}
	if out.Len() != 0 {
		t.Errorf("stdout not empty with -o: %s", out.String())
	}
}

func TestMigrateNeedsInput(t *testing.T) {
	var out, errb bytes.Buffer
	if err := runMigrate(context.Background(), &migrateOptions{reportFormat: "table"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "-f") {
		t.Errorf("err %v", err)
	}
}
