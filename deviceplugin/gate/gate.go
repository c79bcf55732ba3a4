// Package gate is the readiness gate between the node agent and the device
// plugin: the agent lists the PFs whose VFs are configured as the node's
// state asks, and the device plugin advertises only VFs of those PFs. A VF
// is therefore never offered to the kubelet before it is configured.
//
// The gate is a small JSON file, replaced atomically, so the two can run in
// one process or in two.
package gate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// State is the content of the gate file.
type State struct {
	// Generation is the NodeNetworkState generation the agent applied.
	Generation int64 `json:"generation"`
	// Ready are the PCI addresses of the PFs whose VFs are configured.
	Ready []string `json:"ready"`
}

// IsReady reports whether the PF's VFs may be advertised.
func (s State) IsReady(pfAddr string) bool { return slices.Contains(s.Ready, pfAddr) }

// Read reads the gate. A missing file is a closed gate: an empty State and
// an error wrapping os.ErrNotExist.
func Read(path string) (State, error) {
	var s State
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read readiness gate: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("parse readiness gate %s: %w", path, err)
	}
	return s, nil
}

// Write replaces the gate atomically (write to a temporary file, rename).
func Write(path string, s State) error {
	if s.Ready == nil {
		s.Ready = []string{}
	}
	slices.Sort(s.Ready)
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode readiness gate: %w", err)
	}
	return WriteFileAtomic(path, b)
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so a reader sees the old or the new content,
// never a partial one.
func WriteFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// Closed reports whether err from Read means there is no gate file yet.
func Closed(err error) bool { return errors.Is(err, os.ErrNotExist) }
