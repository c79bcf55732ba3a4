package nodefiles

import (
	"os"
	"path/filepath"
	"testing"
)

func TestGate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run", "readiness.json")
	if _, err := ReadGate(p); !GateClosed(err) {
		t.Fatalf("missing gate: err = %v, want closed", err)
	}
	if err := WriteGate(p, GateState{Generation: 3, Ready: []string{"0000:3b:00.1", "0000:3b:00.0"}}); err != nil {
		t.Fatal(err)
	}
	s, err := ReadGate(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.Generation != 3 || !s.IsReady("0000:3b:00.0") || !s.IsReady("0000:3b:00.1") || s.IsReady("0000:5e:00.0") {
		t.Errorf("state = %+v", s)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadGate(p); err == nil || GateClosed(err) {
		t.Errorf("corrupt gate: err = %v, want a parse error", err)
	}
}
