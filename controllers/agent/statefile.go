package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// stateFileName is the state file in Options.StateDir.
const stateFileName = "agent-state.json"

// nodeRecord is what the agent remembers between runs: the PFs it
// configured. A PF is recorded before its first change, so that a crash
// cannot leave VFs sluice made without a record, and forgotten only once
// it is back to zero VFs.
type nodeRecord struct {
	PFs map[string]*pfRecord `json:"pfs"`
}

// pfRecord is one PF sluice configured.
type pfRecord struct {
	// OriginalMTU is the PF's MTU before sluice first changed it, restored
	// when the PF leaves the spec.
	OriginalMTU int `json:"originalMTU,omitempty"`
	// Applied is the spec last verified on the host. It tells drift (the
	// host no longer matches a spec that was applied) from a change, and
	// gives the settings of VFs whose netdev is inside a pod.
	Applied *sluicev1.InterfaceSpec `json:"applied,omitempty"`
}

// stateFile reads and writes the record atomically.
type stateFile struct{ path string }

func newStateFile(dir string) stateFile { return stateFile{path: filepath.Join(dir, stateFileName)} }

// load returns the record; a missing file is an empty record.
func (f stateFile) load() (*nodeRecord, error) {
	rec := &nodeRecord{PFs: map[string]*pfRecord{}}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("parse state file %s: %w; move it away to start afresh (sluice then leaves PFs not in the spec alone)", f.path, err)
	}
	if rec.PFs == nil {
		rec.PFs = map[string]*pfRecord{}
	}
	return rec, nil
}

func (f stateFile) save(rec *nodeRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state file: %w", err)
	}
	if err := nodefiles.WriteFileAtomic(f.path, b); err != nil {
		return fmt.Errorf("save state file: %w", err)
	}
	return nil
}
