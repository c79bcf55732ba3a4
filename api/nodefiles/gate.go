package nodefiles

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
)

// GateState is the content of the gate file.
type GateState struct {
	// Generation is the NodeNetworkState generation the agent applied.
	Generation int64 `json:"generation"`
	// Ready are the PCI addresses of the PFs whose VFs are configured.
	Ready []string `json:"ready"`
}

// IsReady reports whether the PF's VFs may be advertised.
func (s GateState) IsReady(pfAddr string) bool { return slices.Contains(s.Ready, pfAddr) }

// ReadGate reads the gate. A missing file is a closed gate: an empty GateState and
// an error wrapping os.ErrNotExist.
func ReadGate(path string) (GateState, error) {
	var s GateState
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read readiness gate: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return GateState{}, fmt.Errorf("parse readiness gate %s: %w", path, err)
	}
	return s, nil
}

// WriteGate replaces the gate atomically (write to a temporary file, rename).
func WriteGate(path string, s GateState) error {
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

// GateClosed reports whether err from ReadGate means there is no gate file yet.
func GateClosed(err error) bool { return errors.Is(err, os.ErrNotExist) }
