package nodefiles

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// A soft-RoCE attachment's RDMA device exists only once the CNI has created
// it in the pod's network namespace, after the device plugin's Allocate.
// The device plugin therefore names it as a CDI device,
// <kind>=<VF PCI address>, and the CNI writes that device's spec at ADD:
// the runtime resolves CDI names when it creates the containers, after the
// sandbox's network is set up. DEL removes the spec. The files share the
// CDI directory with the device plugin's own pool specs, so the names are
// part of this node-level contract.

// CDIFilePrefix starts the name of every spec the CNI writes; the device
// plugin leaves such files alone.
const CDIFilePrefix = "sluice-attachment-"

// cdiVersion is the oldest CDI version with what the specs use.
const cdiVersion = "0.6.0"

// IsCDISpecFile reports whether name is a spec file written by the CNI.
func IsCDISpecFile(name string) bool {
	return strings.HasPrefix(name, CDIFilePrefix) && strings.HasSuffix(name, ".json")
}

// CDISpecPath is the spec file of the VF at pci in dir: one per VF, so a
// spec left by an interrupted DEL is overwritten by the VF's next ADD
// rather than conflicting with it.
func CDISpecPath(dir, pci string) string {
	return filepath.Join(dir, CDIFilePrefix+strings.NewReplacer(":", "_", ".", "_").Replace(pci)+".json")
}

// CDIDevice is the CDI device of one soft-RoCE attachment.
type CDIDevice struct {
	// Kind is the CDI kind, the pool's resource name (sluice.dev/<pool>).
	Kind string
	// PCIAddress is the VF's, the CDI device's name.
	PCIAddress string
	// DeviceNodes are the RDMA char devices (/dev/infiniband/...).
	DeviceNodes []string
	// Env is set in the containers (the RDMA device's name).
	Env []string
}

// QualifiedName is the name the device plugin hands to the kubelet.
func (d CDIDevice) QualifiedName() string { return d.Kind + "=" + d.PCIAddress }

// WriteCDISpec writes d's spec into dir atomically and returns its path.
func WriteCDISpec(dir string, d CDIDevice) (string, error) {
	dev := cdispec.Device{Name: d.PCIAddress, ContainerEdits: cdispec.ContainerEdits{Env: d.Env}}
	for _, n := range d.DeviceNodes {
		dev.ContainerEdits.DeviceNodes = append(dev.ContainerEdits.DeviceNodes, &cdispec.DeviceNode{Path: n, Permissions: "rw"})
	}
	b, err := json.MarshalIndent(cdispec.Spec{Version: cdiVersion, Kind: d.Kind, Devices: []cdispec.Device{dev}}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode the CDI spec of %s: %w", d.QualifiedName(), err)
	}
	path := CDISpecPath(dir, d.PCIAddress)
	if err := WriteFileAtomic(path, b); err != nil {
		return "", fmt.Errorf("write the CDI spec of %s (is the CDI directory %s writable?): %w", d.QualifiedName(), dir, err)
	}
	return path, nil
}

// RemoveCDISpec removes a spec the CNI wrote; a missing file is no error.
func RemoveCDISpec(path string) error {
	if path == "" || !IsCDISpecFile(filepath.Base(path)) {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove CDI spec: %w", err)
	}
	return nil
}
