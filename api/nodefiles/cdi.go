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

// CDIVersion is the version of every CDI spec sluice writes (the device
// plugin's pool specs, the CNI's soft-RoCE specs, the DRA driver's claim
// specs): the oldest with what they use.
const CDIVersion = "0.6.0"

// CDINode is a device node handed to the containers: Path as they see it,
// HostPath on the node ("" when the same).
type CDINode struct{ Path, HostPath string }

// NewCDIDevice is a CDI device giving the containers nodes, read-write, and
// env.
func NewCDIDevice(name string, nodes []CDINode, env []string) cdispec.Device {
	dev := cdispec.Device{Name: name, ContainerEdits: cdispec.ContainerEdits{Env: env}}
	for _, n := range nodes {
		dev.ContainerEdits.DeviceNodes = append(dev.ContainerEdits.DeviceNodes, &cdispec.DeviceNode{Path: n.Path, HostPath: n.HostPath, Permissions: "rw"})
	}
	return dev
}

// EncodeCDISpec renders the spec of kind holding devs.
func EncodeCDISpec(kind string, devs []cdispec.Device) ([]byte, error) {
	b, err := json.MarshalIndent(cdispec.Spec{Version: CDIVersion, Kind: kind, Devices: devs}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode the CDI spec of %s: %w", kind, err)
	}
	return b, nil
}

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
	nodes := make([]CDINode, len(d.DeviceNodes))
	for i, n := range d.DeviceNodes {
		nodes[i] = CDINode{Path: n}
	}
	b, err := EncodeCDISpec(d.Kind, []cdispec.Device{NewCDIDevice(d.PCIAddress, nodes, d.Env)})
	if err != nil {
		return "", err
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

// The DRA driver writes one spec per prepared claim, named after the
// claim's UID, and removes it at Unprepare. Its devices are named
// <claim UID>-<DRA device name>, so two claims never define the same CDI
// device. The device plugin's clean-up of its own pool specs leaves these
// files alone.

// DRAClaimCDIFilePrefix starts the name of every claim spec.
const DRAClaimCDIFilePrefix = "sluice-dra-claim-"

// IsDRAClaimCDISpecFile reports whether name is a claim spec.
func IsDRAClaimCDISpecFile(name string) bool {
	return strings.HasPrefix(name, DRAClaimCDIFilePrefix) && strings.HasSuffix(name, ".json")
}

// DRAClaimCDISpecPath is the spec file of the claim with uid in dir.
func DRAClaimCDISpecPath(dir, uid string) string {
	return filepath.Join(dir, DRAClaimCDIFilePrefix+uid+".json")
}

// WriteDRAClaimCDISpec writes the claim's spec of kind holding devs into
// dir atomically and returns its path.
func WriteDRAClaimCDISpec(dir, uid, kind string, devs []cdispec.Device) (string, error) {
	if err := checkUID(uid); err != nil {
		return "", err
	}
	b, err := EncodeCDISpec(kind, devs)
	if err != nil {
		return "", err
	}
	path := DRAClaimCDISpecPath(dir, uid)
	if err := WriteFileAtomic(path, b); err != nil {
		return "", fmt.Errorf("write the CDI spec of claim %s (is the CDI directory %s writable?): %w", uid, dir, err)
	}
	return path, nil
}

// RemoveDRAClaimCDISpec removes a claim spec; a missing file is no error.
func RemoveDRAClaimCDISpec(path string) error {
	if path == "" || !IsDRAClaimCDISpecFile(filepath.Base(path)) {
		return nil
	}
	return RemoveFile(path)
}
