// Package stats counts the CNI plugin's outcomes across its invocations.
// The plugin is a process per pod attachment, so it cannot keep counters
// in memory: each invocation adds one to a small JSON file under an
// exclusive lock, and the node agent exports the totals as Prometheus
// counters. The totals survive the agent's restarts, as counters should.
package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-net/sluice/deviceplugin/gate"
)

// DefaultFile is where the counts live on a node.
const DefaultFile = "/var/lib/cni/sluice/stats.json"

// Key is one counter: a CNI command (ADD, DEL, CHECK, GC, STATUS) and its
// result ("success", or "error" with the CNI error code, e.g. "error-7").
type Key struct {
	Command string
	Result  string
}

func (k Key) String() string { return k.Command + "/" + k.Result }

// File is a counts file.
type File struct{ path string }

// New returns the counts file at path.
func New(path string) File { return File{path: path} }

// Add counts one outcome.
func (f File) Add(k Key) error {
	if strings.Contains(k.Command, "/") {
		return fmt.Errorf("command %q: no slash allowed", k.Command)
	}
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	m, err := f.read()
	if err != nil {
		// A damaged file must not stop the plugin from counting: start over.
		m = map[string]uint64{}
	}
	m[k.String()]++
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode CNI stats: %w", err)
	}
	return gate.WriteFileAtomic(f.path, b)
}

// Read returns every count; a missing file is no counts.
func (f File) Read() (map[Key]uint64, error) {
	m, err := f.read()
	if err != nil {
		return nil, err
	}
	out := make(map[Key]uint64, len(m))
	for k, v := range m {
		cmd, res, ok := strings.Cut(k, "/")
		if !ok {
			continue
		}
		out[Key{Command: cmd, Result: res}] = v
	}
	return out, nil
}

// Keys returns the keys of counts, sorted.
func Keys(counts map[Key]uint64) []Key {
	keys := make([]Key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}

func (f File) read() (map[string]uint64, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]uint64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CNI stats: %w", err)
	}
	m := map[string]uint64{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse CNI stats %s: %w", f.path, err)
	}
	return m, nil
}

// LockWait bounds the wait for the counts file's lock. Counting is
// optional: a holder that is stuck (a process stopped under a debugger, a
// hung file system) must not stall every pod's network setup on the node,
// so past the wait the outcome goes uncounted (ErrBusy).
const LockWait = time.Second

// ErrBusy is returned by Add when the lock stays taken for LockWait.
var ErrBusy = errors.New("the CNI stats file stays locked by another process")

// lock takes an exclusive flock on a lock file beside the counts (the
// counts file itself is replaced by rename, so it cannot hold the lock),
// waiting at most LockWait. The wait is the kernel's own queue (a
// blocking flock in a goroutine), fair among the waiting commands; given
// up, the goroutine releases the lock if it still gets it.
func (f File) lock() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(f.path), err)
	}
	lf, err := os.OpenFile(f.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open CNI stats lock: %w", err)
	}
	unlock := func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
	}
	got := make(chan error, 1)
	go func() { got <- syscall.Flock(int(lf.Fd()), syscall.LOCK_EX) }()
	timer := time.NewTimer(LockWait)
	defer timer.Stop()
	select {
	case err := <-got:
		if err != nil {
			lf.Close()
			return nil, fmt.Errorf("lock CNI stats: %w", err)
		}
		return unlock, nil
	case <-timer.C:
		go func() {
			if err := <-got; err == nil {
				unlock()
				return
			}
			lf.Close()
		}()
		return nil, fmt.Errorf("%w (%s.lock, waited %s); this outcome is not counted", ErrBusy, f.path, LockWait)
	}
}
