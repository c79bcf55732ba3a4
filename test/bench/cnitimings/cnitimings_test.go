package cnitimings

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadMedians(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timings.jsonl")
	lines := `{"command":"ADD","result":"success","steps":[{"step":"config","us":1000},{"step":"move netdev","us":50000}],"totalUs":60000}
{"command":"DEL","result":"success","steps":[{"step":"config","us":800}],"totalUs":40000}
{"command":"ADD","result":"success","steps":[{"step":"config","us":3000},{"step":"move netdev","us":54000},{"step":"IPAM","us":9000}],"totalUs":70000}
{"command":"ADD","result":"success","steps":[{"step":"config","us":2000},{"step":"move netdev","us":52000}],"totalUs":65000}
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Medians("ADD"), " config=2.00 move_netdev=52.00 IPAM=9.00"; got != want {
		t.Errorf("ADD medians %q, want %q", got, want)
	}
	if got, want := st.Medians("DEL"), " config=0.80"; got != want {
		t.Errorf("DEL medians %q, want %q", got, want)
	}
	if got := st.InProcess("ADD"); got != 65*time.Millisecond {
		t.Errorf("ADD in process %v, want 65ms", got)
	}
	if got := Median([]time.Duration{4, 1, 3, 2}); got != 2 {
		t.Errorf("median of an even count %v, want 2 (the mean of the middle two, truncated)", got)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file read without error")
	}
}
