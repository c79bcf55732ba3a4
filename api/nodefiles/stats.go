package nodefiles

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// StatsKey is one counter: a CNI command (ADD, DEL, CHECK, GC, STATUS) and its
// result ("success", or "error" with the CNI error code, e.g. "error-7").
type StatsKey struct {
	Command string
	Result  string
}

func (k StatsKey) String() string { return k.Command + "/" + k.Result }

// fileName is the key's tally file: COMMAND.RESULT.
func (k StatsKey) fileName() (string, error) {
	for _, s := range []string{k.Command, k.Result} {
		if s == "" || strings.ContainsAny(s, "./\x00") {
			return "", fmt.Errorf("CNI stats key %q: command and result must be non-empty, without '.' or '/'", k.String())
		}
	}
	return k.Command + "." + k.Result, nil
}

// Stats counts the CNI plugin's outcomes across its invocations. The
// plugin is a process per pod attachment, so it cannot keep counters in
// memory, and counting runs on every pod's path, so it must cost next to
// nothing: each outcome has a tally file in a directory (ADD.success,
// DEL.error-11, ...) and an invocation appends one byte to its outcome's
// file. An O_APPEND write is atomic between processes, so counting takes
// no lock and reads nothing; a count is its file's size. The agent exports
// the counts as Prometheus counters; they survive its restarts and the
// node's reboots. A million outcomes take a megabyte.
type Stats struct{ path string }

// NewStats returns the counts directory at path.
func NewStats(path string) Stats { return Stats{path: path} }

// Add counts one outcome: one byte appended to its tally file, the
// directory created on first use.
func (d Stats) Add(k StatsKey) error {
	name, err := k.fileName()
	if err != nil {
		return err
	}
	path := filepath.Join(d.path, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if errors.Is(err, os.ErrNotExist) {
		if merr := os.MkdirAll(d.path, 0o755); merr != nil {
			return fmt.Errorf("create the CNI stats directory: %w", merr)
		}
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	}
	if err != nil {
		return fmt.Errorf("count CNI outcome: %w", err)
	}
	_, werr := f.Write([]byte{'+'})
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("count CNI outcome in %s: %w", path, werr)
	}
	if cerr != nil {
		return fmt.Errorf("count CNI outcome in %s: %w", path, cerr)
	}
	return nil
}

// Read returns every count; a missing directory is no counts. Files whose
// names are not COMMAND.RESULT are not counters and are skipped.
func (d Stats) Read() (map[StatsKey]uint64, error) {
	entries, err := os.ReadDir(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return map[StatsKey]uint64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CNI stats: %w", err)
	}
	out := make(map[StatsKey]uint64, len(entries))
	for _, e := range entries {
		cmd, res, ok := strings.Cut(e.Name(), ".")
		if !ok || cmd == "" || res == "" || strings.Contains(res, ".") || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read CNI stats: %w", err)
		}
		out[StatsKey{Command: cmd, Result: res}] = uint64(info.Size())
	}
	return out, nil
}

// StatsKeys returns the keys of counts, sorted.
func StatsKeys(counts map[StatsKey]uint64) []StatsKey {
	keys := make([]StatsKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}
