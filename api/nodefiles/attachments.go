package nodefiles

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sluice-net/sluice/host"
)

// Record is one VF attached to one pod interface.
type Record struct {
	// PCIAddress is the VF's.
	PCIAddress  string `json:"pciAddress"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
	// Pod identity from CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID).
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
	PodUID       string `json:"podUID,omitempty"`
	// HostIfName is the VF netdev's name in the host namespace before ADD;
	// empty for a VF without netdev (vfio-pci).
	HostIfName string `json:"hostIfName,omitempty"`
	// PFName and VFIndex locate the VF on its PF. OriginalVF and
	// OriginalNetdev are the VF's PF-side settings and its netdev's state
	// before ADD (nil without a netdev): the CNI keeps them here as well as
	// in its cache entry, so that a DEL or GC whose cache entry is gone
	// still restores the VF completely.
	PFName         string            `json:"pfName,omitempty"`
	VFIndex        int               `json:"vfIndex"`
	OriginalVF     *host.VFSettings  `json:"originalVF,omitempty"`
	OriginalNetdev *host.NetdevState `json:"originalNetdev,omitempty"`
	// RDMADevice is the RDMA device moved into the pod with the VF (exclusive
	// RDMA mode), empty otherwise.
	RDMADevice string `json:"rdmaDevice,omitempty"`
	// SharedRDMADevice is the VF's RDMA device when the pod asked for RDMA
	// and the node is in shared RDMA mode: it stayed in the host namespace
	// and is visible from every namespace.
	SharedRDMADevice string `json:"sharedRDMADevice,omitempty"`
	// SoftRoCEDevice is the soft-RoCE device the CNI created on the VF in
	// the pod's namespace, and SoftRoCECDISpec the CDI spec it wrote for
	// it; DEL removes both.
	SoftRoCEDevice  string `json:"softRoCEDevice,omitempty"`
	SoftRoCECDISpec string `json:"softRoCECDISpec,omitempty"`
	// Network is the CNI network name (a GC of that network only considers
	// its own records).
	Network string    `json:"network,omitempty"`
	Created time.Time `json:"created"`
}

// Pod is "namespace/name", or the container ID when the runtime gave no pod.
func (r Record) Pod() string {
	if r.PodName != "" {
		return r.PodNamespace + "/" + r.PodName
	}
	return r.ContainerID
}

// Attachments is a registry directory.
type Attachments struct{ root string }

// NewAttachments returns the registry rooted at dir.
func NewAttachments(dir string) Attachments { return Attachments{root: dir} }

// Root is the registry's directory.
func (d Attachments) Root() string { return d.root }

func (d Attachments) path(pci string) string { return filepath.Join(d.root, pci+".json") }

// Put records an attachment, replacing the file atomically.
func (d Attachments) Put(r Record) error {
	if r.PCIAddress == "" {
		return errors.New("attachment record without a PCI address")
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode attachment of %s: %w", r.PCIAddress, err)
	}
	return WriteFileAtomic(d.path(r.PCIAddress), b)
}

// Get returns the record of a VF; ok is false when it is not attached.
func (d Attachments) Get(pci string) (r Record, ok bool, err error) {
	if ok, err = ReadJSON(d.path(pci), &r); err != nil || !ok {
		return Record{}, false, wrap("attachment of "+pci, err)
	}
	return r, true, nil
}

// PCIAddresses returns the PCI addresses that have a record, from the
// directory's listing alone: no record is read or parsed.
func (d Attachments) PCIAddresses() (map[string]bool, error) {
	names, err := JSONNames(d.root)
	if err != nil {
		return nil, wrap("attachments", err)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[strings.TrimSuffix(n, ".json")] = true
	}
	return out, nil
}

// Delete removes a VF's record; a missing record is not an error.
func (d Attachments) Delete(pci string) error {
	return wrap("attachment of "+pci, RemoveFile(d.path(pci)))
}

// Unreadable is a record file that cannot be parsed. Its VF is held all
// the same: the file's name still says the VF was attached, and nothing
// else tells whether it still is.
type Unreadable struct {
	PCIAddress string
	Path       string
	Err        error
}

// List returns every record, sorted by PCI address, and apart from them the
// files that cannot be parsed: one damaged file does not hide the others.
// An absent directory is an empty registry; err is the directory's own
// failure, or a record that exists and cannot be read at all.
func (d Attachments) List() (recs []Record, bad []Unreadable, err error) {
	return listByPCI(d.root, "attachments", nil, d.Get, func(r Record) string { return r.PCIAddress })
}

// listByPCI reads the <pci>.json files of dir with get, sorted by PCI
// address, and apart from them the files that cannot be parsed (or whose
// name checkName refuses, when given). An absent directory has none; err
// is the directory's own failure, or a file that exists and cannot be
// read at all. what names the files in errors.
func listByPCI[T any](dir, what string, checkName func(pci string) error, get func(pci string) (T, bool, error), pciOf func(T) string) (items []T, bad []Unreadable, err error) {
	names, err := JSONNames(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	for _, name := range names {
		pci := strings.TrimSuffix(name, ".json")
		if checkName != nil {
			if err := checkName(pci); err != nil {
				bad = append(bad, Unreadable{PCIAddress: pci, Path: filepath.Join(dir, name), Err: err})
				continue
			}
		}
		it, ok, err := get(pci)
		var u *UnreadableError
		switch {
		case errors.As(err, &u):
			bad = append(bad, Unreadable{PCIAddress: pci, Path: u.Path, Err: u.Err})
		case err != nil:
			return nil, nil, err
		case ok:
			items = append(items, it)
		}
	}
	sort.Slice(items, func(i, j int) bool { return pciOf(items[i]) < pciOf(items[j]) })
	return items, bad, nil
}

// QuarantineDir is where Quarantine moves unreadable records, under the
// registry's directory: kept for a person to read, no longer a record.
const QuarantineDir = "quarantine"

// Quarantine moves the record of pci out of the registry into QuarantineDir
// (named <pci>.json.<UTC time>) and returns its new path. Call it only once
// the VF is known to be attached to nothing, with its lock held: a
// quarantined record no longer holds the VF.
func (d Attachments) Quarantine(pci string, now time.Time) (string, error) {
	dir := filepath.Join(d.root, QuarantineDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("quarantine the attachment of %s: %w", pci, err)
	}
	to := filepath.Join(dir, pci+".json."+now.UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(d.path(pci), to); err != nil {
		return "", fmt.Errorf("quarantine the attachment of %s: %w", pci, err)
	}
	if err := syncDir(d.root); err != nil {
		return "", fmt.Errorf("quarantine the attachment of %s: %w", pci, err)
	}
	return to, nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Attached returns the attached VFs by PCI address, an unreadable record
// holding its VF as a Record with the PCI address alone, and the
// unreadable records apart.
func (d Attachments) Attached() (map[string]Record, []Unreadable, error) {
	rs, bad, err := d.List()
	if err != nil {
		return nil, nil, err
	}
	m := make(map[string]Record, len(rs)+len(bad))
	for _, r := range rs {
		m[r.PCIAddress] = r
	}
	for _, u := range bad {
		m[u.PCIAddress] = Record{PCIAddress: u.PCIAddress}
	}
	return m, bad, nil
}
