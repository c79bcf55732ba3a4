package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// devicePluginConfig is the device plugin's pools file.
type devicePluginConfig struct {
	ResourcePrefix string                      `json:"resourcePrefix"`
	Pools          []sluicev1.DevicePluginPool `json:"pools"`
	// DRAPools are scanned with the others but served by the DRA driver.
	DRAPools []sluicev1.DevicePluginPool `json:"draPools,omitempty"`
}

// deviceFiles are the two files the agent hands the device plugin.
type deviceFiles struct {
	gatePath, configPath, prefix string
}

// writeGate replaces the readiness gate when its content changes; changed
// reports whether it did. An unreadable gate is replaced.
func (f deviceFiles) writeGate(generation int64, ready []string) (changed bool, err error) {
	ready = slices.Clone(ready)
	slices.Sort(ready)
	if cur, err := nodefiles.ReadGate(f.gatePath); err == nil && cur.Generation == generation && slices.Equal(cur.Ready, ready) {
		return false, nil
	}
	if err := nodefiles.WriteGate(f.gatePath, nodefiles.GateState{Generation: generation, Ready: ready}); err != nil {
		return false, fmt.Errorf("write readiness gate: %w", err)
	}
	return true, nil
}

// closeGate removes PFs from the gate before they are reconfigured; an
// unreadable gate is closed for every PF.
func (f deviceFiles) closeGate(pfs []string) (changed bool, err error) {
	cur, err := nodefiles.ReadGate(f.gatePath)
	switch {
	case nodefiles.GateClosed(err):
		return false, nil
	case err != nil:
		return f.writeGate(0, nil)
	}
	keep := slices.DeleteFunc(slices.Clone(cur.Ready), func(a string) bool { return slices.Contains(pfs, a) })
	if len(keep) == len(cur.Ready) {
		return false, nil
	}
	return f.writeGate(cur.Generation, keep)
}

// writePools replaces the pools file when its content changes: the
// device-plugin pools and the DRA pools, which the device plugin's scan
// covers too but the DRA driver serves.
func (f deviceFiles) writePools(pools, draPools []sluicev1.DevicePluginPool) (changed bool, err error) {
	if pools == nil {
		pools = []sluicev1.DevicePluginPool{}
	}
	b, err := json.MarshalIndent(devicePluginConfig{ResourcePrefix: f.prefix, Pools: pools, DRAPools: draPools}, "", "  ")
	if err != nil {
		return false, fmt.Errorf("encode device plugin config: %w", err)
	}
	cur, err := os.ReadFile(f.configPath)
	if err == nil && bytes.Equal(cur, b) {
		return false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read device plugin config: %w", err)
	}
	if err := nodefiles.WriteFileAtomic(f.configPath, b); err != nil {
		return false, fmt.Errorf("write device plugin config: %w", err)
	}
	return true, nil
}
