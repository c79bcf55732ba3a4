package nodefiles

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestConcurrentAdds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cni", "stats")
	d := NewStats(dir)
	if c, err := d.Read(); err != nil || len(c) != 0 {
		t.Fatalf("no directory: %v %v", c, err)
	}
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			// Each worker opens the files itself, as separate processes do,
			// and the first ones race to create the directory.
			g := NewStats(dir)
			for i := 0; i < each; i++ {
				k := StatsKey{"ADD", "success"}
				if i%5 == 0 {
					k = StatsKey{"DEL", "error-7"}
				}
				if err := g.Add(k); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	c, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	if c[StatsKey{"ADD", "success"}] != workers*20 || c[StatsKey{"DEL", "error-7"}] != workers*5 {
		t.Errorf("counts = %v: increments were lost", c)
	}
	if keys := StatsKeys(c); len(keys) != 2 || keys[0].Command != "ADD" {
		t.Errorf("keys = %v", keys)
	}
}

// TestOnlyTallyFilesCount: what else is in the directory (an editor's
// backup, a subdirectory, a file without a result) is not a counter, and
// keys that cannot name a tally file are refused before anything is
// written.
func TestOnlyTallyFilesCount(t *testing.T) {
	dir := t.TempDir()
	d := NewStats(dir)
	for name, data := range map[string]string{"README": "x", "ADD.success.bak": "xx", ".ADD": "x", "ADD.": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "DEL.success"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(StatsKey{"ADD", "success"}); err != nil {
		t.Fatal(err)
	}
	c, err := d.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 1 || c[StatsKey{"ADD", "success"}] != 1 {
		t.Errorf("counts = %v, want only ADD/success = 1", c)
	}
	for _, k := range []StatsKey{{"A/B", "success"}, {"ADD", "x.y"}, {"", "success"}, {"ADD", ""}} {
		if err := d.Add(k); err == nil {
			t.Errorf("key %q accepted", k.String())
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 6 {
		t.Errorf("refused keys left files: %d entries, want 6", len(entries))
	}
}

func TestAddReportsAnUnusableDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := NewStats(file).Add(StatsKey{"ADD", "success"}); err == nil {
		t.Error("counting into a regular file's path succeeded")
	}
}
