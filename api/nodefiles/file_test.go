package nodefiles

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadNamesRemove(t *testing.T) {
	dir := t.TempDir()
	if names, err := JSONNames(filepath.Join(dir, "absent")); err != nil || names != nil {
		t.Errorf("absent directory: %v %v", names, err)
	}
	for name, body := range map[string]string{"a.json": `{"n":1}`, ".a.json.123": `{"n":`, "notes.txt": "x", "bad.json": `{"n":`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names, err := JSONNames(dir)
	if err != nil || !slices.Equal(names, []string{"a.json", "bad.json"}) {
		t.Errorf("JSONNames = %v, %v; want the .json files without hidden temporaries", names, err)
	}
	var v struct{ N int }
	if ok, err := ReadJSON(filepath.Join(dir, "a.json"), &v); !ok || err != nil || v.N != 1 {
		t.Errorf("ReadJSON a.json: %v %v %+v", ok, err, v)
	}
	if ok, err := ReadJSON(filepath.Join(dir, "missing.json"), &v); ok || err != nil {
		t.Errorf("ReadJSON of a missing file: %v %v, want not found and no error", ok, err)
	}
	if ok, err := ReadJSON(filepath.Join(dir, "bad.json"), &v); ok || err == nil || !strings.Contains(err.Error(), "parse "+dir) {
		t.Errorf("ReadJSON of bad JSON: %v %v, want a parse error naming the file", ok, err)
	}
	for range 2 { // the second time the file is already gone
		if err := RemoveFile(filepath.Join(dir, "a.json")); err != nil {
			t.Errorf("RemoveFile: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.json")); !os.IsNotExist(err) {
		t.Errorf("a.json still there: %v", err)
	}
}

// TestInMemory: the syncs are skipped on tmpfs only.
func TestInMemory(t *testing.T) {
	for dir, want := range map[string]bool{"/dev/shm": true, t.TempDir(): false} {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Skipf("measured: cannot statfs %s: %v", dir, err)
		}
		if (st.Type == unix.TMPFS_MAGIC) != want {
			t.Skipf("measured: %s is not on the file system this test needs (type %#x)", dir, st.Type)
		}
		f, err := os.CreateTemp(dir, "inmemory")
		if err != nil {
			t.Fatal(err)
		}
		got := inMemory(f)
		f.Close()
		os.Remove(f.Name())
		if got != want {
			t.Errorf("inMemory(file in %s) = %v, want %v", dir, got, want)
		}
		if err := WriteFileAtomic(filepath.Join(dir, "sluice-inmemory-test.json"), []byte("{}")); err != nil {
			t.Errorf("WriteFileAtomic in %s: %v", dir, err)
		}
		os.Remove(filepath.Join(dir, "sluice-inmemory-test.json"))
	}
}
