package stats

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestConcurrentAdds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cni", "stats.json")
	f := New(path)
	if c, err := f.Read(); err != nil || len(c) != 0 {
		t.Fatalf("no file: %v %v", c, err)
	}
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			// Each worker opens its own lock, as separate processes do.
			g := New(path)
			for i := 0; i < each; i++ {
				k := Key{"ADD", "success"}
				if i%5 == 0 {
					k = Key{"DEL", "error-7"}
				}
				if err := g.Add(k); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	c, err := f.Read()
	if err != nil {
		t.Fatal(err)
	}
	if c[Key{"ADD", "success"}] != workers*20 || c[Key{"DEL", "error-7"}] != workers*5 {
		t.Errorf("counts = %v: increments were lost", c)
	}
	if keys := Keys(c); len(keys) != 2 || keys[0].Command != "ADD" {
		t.Errorf("keys = %v", keys)
	}
}

func TestDamagedFileStartsOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := New(path)
	if _, err := f.Read(); err == nil {
		t.Error("damaged file read without error")
	}
	if err := f.Add(Key{"ADD", "success"}); err != nil {
		t.Fatal(err)
	}
	if c, err := f.Read(); err != nil || c[Key{"ADD", "success"}] != 1 {
		t.Errorf("after start-over: %v %v", c, err)
	}
	if err := f.Add(Key{"A/B", "success"}); err == nil {
		t.Error("a command with a slash was accepted")
	}
}

// TestStuckHolderDoesNotStallAdd: a process holding the lock and never
// letting go (stopped under a debugger, a hung file system) costs each
// command at most LockWait, and its outcome goes uncounted; once the lock
// is free counting goes on.
func TestStuckHolderDoesNotStallAdd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.json")
	f := New(path)
	if err := f.Add(Key{"ADD", "success"}); err != nil {
		t.Fatal(err)
	}
	holder, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = f.Add(Key{"ADD", "success"})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Add with the lock held elsewhere = %v, want ErrBusy", err)
	}
	if waited := time.Since(start); waited < LockWait || waited > LockWait+2*time.Second {
		t.Errorf("Add gave up after %s, want about %s", waited, LockWait)
	}
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(Key{"ADD", "success"}); err != nil {
		t.Fatal(err)
	}
	if c, err := f.Read(); err != nil || c[Key{"ADD", "success"}] != 2 {
		t.Errorf("counts = %v, %v; want 2 (the uncounted one lost, nothing else)", c, err)
	}
}
