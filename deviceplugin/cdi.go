package deviceplugin

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// Container Device Interface specs: one JSON file per pool in the CDI
// directory, kind "<prefix>/<name>" (sluice.dev/<pool>), one CDI device per
// advertised device that needs device nodes, in the CDI project's own spec
// types.

// cdiFilePrefix marks the spec files this plugin owns in the CDI directory
// (those of nodefiles' CDIFilePrefix are the CNI's, those of its
// DRAClaimCDIFilePrefix the DRA driver's).
const cdiFilePrefix = "sluice-"

// cdiKind is a pool's CDI kind.
func cdiKind(p *Pool) string { return p.Resource() }

// cdiName is the fully qualified CDI device name of a device.
func cdiName(p *Pool, id string) string { return cdiKind(p) + "=" + id }

// cdiWriter keeps the CDI directory in step with the pools.
type cdiWriter struct {
	dir     string
	devPath func(string) string
	// written is the content last written per file, to skip rewrites.
	written map[string][]byte
}

func newCDIWriter(dir string, devPath func(string) string) *cdiWriter {
	return &cdiWriter{dir: dir, devPath: devPath, written: map[string][]byte{}}
}

func (w *cdiWriter) path(p *Pool) string {
	return filepath.Join(w.dir, cdiFilePrefix+fileName(p.Resource())+".json")
}

// spec renders a pool's spec; nil when no device needs device nodes (a CDI
// spec must have devices).
func (w *cdiWriter) spec(pd *PoolDevices) ([]byte, error) {
	var devs []cdispec.Device
	for i := range pd.Devices {
		d := &pd.Devices[i]
		nodes := pd.DeviceNodes(d)
		if len(nodes) == 0 {
			continue
		}
		for j := range nodes {
			nodes[j].HostPath = w.devPath(nodes[j].HostPath)
		}
		devs = append(devs, nodefiles.NewCDIDevice(d.ID, nodes, nil))
	}
	if len(devs) == 0 {
		return nil, nil
	}
	return nodefiles.EncodeCDISpec(cdiKind(&pd.Pool), devs)
}

// sync writes the spec of every pool and removes the specs of pools that
// are gone, including ones left by an earlier run.
func (w *cdiWriter) sync(t *Tree) error {
	keep := map[string]bool{}
	var errs []error
	for _, pd := range t.Pools {
		path := w.path(&pd.Pool)
		b, err := w.spec(pd)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if b == nil {
			continue
		}
		keep[filepath.Base(path)] = true
		if bytes.Equal(w.written[path], b) {
			continue
		}
		if err := nodefiles.WriteFileAtomic(path, b); err != nil {
			errs = append(errs, fmt.Errorf("write CDI spec (check --cdi-dir): %w", err))
			continue
		}
		w.written[path] = b
	}
	entries, err := os.ReadDir(w.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list CDI specs in %s: %w", w.dir, err))
	}
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, cdiFilePrefix) || !strings.HasSuffix(n, ".json") || keep[n] || nodefiles.IsCDISpecFile(n) || nodefiles.IsDRAClaimCDISpecFile(n) {
			continue
		}
		path := filepath.Join(w.dir, n)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove stale CDI spec: %w", err))
		}
		delete(w.written, path)
	}
	return errors.Join(errs...)
}

// DeviceNodes are what a device of the pool needs in /dev, as Allocate and
// the pool's CDI spec hand them out: each node's path in the container and
// its path on the node, relative to the node's /dev (a caller with another
// /dev root maps HostPath, as host.Host.DevPath does). The DRA driver
// builds its claims' CDI specs from them.
func (pd *PoolDevices) DeviceNodes(d *Device) []nodefiles.CDINode {
	nodes := pd.nodesOf(d)
	out := make([]nodefiles.CDINode, len(nodes))
	for i, n := range nodes {
		out[i] = nodefiles.CDINode{Path: n, HostPath: d.hostNode(n)}
	}
	return out
}
