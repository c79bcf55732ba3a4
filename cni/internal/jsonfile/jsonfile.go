// Package jsonfile is the small store under the CNI's state directories:
// one JSON file per record, replaced atomically (gate.WriteFileAtomic, whose
// temporary files are hidden), read and removed with a missing file as
// "no record" rather than an error.
package jsonfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Read decodes the file at path into v; found is false when there is no
// such file.
func Read(path string, v any) (found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("parse %s: %w", path, err)
	}
	return true, nil
}

// Remove deletes the file at path; a missing file is not an error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// Names lists the record files of dir (*.json, without the hidden
// temporary files of a write in progress), in directory order; an absent
// directory has none.
func Names(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	return names, nil
}
