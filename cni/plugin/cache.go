package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// entry is what ADD saves of one attachment before it changes anything.
type entry struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
	PCIAddress  string `json:"pciAddress"`
	PFName      string `json:"pfName"`
	VFIndex     int    `json:"vfIndex"`
	// Original are the VF's PF-side settings before ADD.
	Original host.VFSettings `json:"original"`
	// Netdev is the VF netdev's state before ADD; nil for a VF without a
	// netdev (vfio-pci).
	Netdev *host.NetdevState `json:"netdev,omitempty"`
	// RDMADevice is the RDMA device ADD moves into the pod (exclusive mode).
	RDMADevice string `json:"rdmaDevice,omitempty"`
	// SoftRoCEDevice and SoftRoCECDISpec are the soft-RoCE device ADD
	// creates in the pod and the CDI spec it writes for it.
	SoftRoCEDevice  string `json:"softRoCEDevice,omitempty"`
	SoftRoCECDISpec string `json:"softRoCECDISpec,omitempty"`
	// Config is the ADD's network configuration, for IPAM DEL.
	Config json.RawMessage `json:"config"`
}

// cache is the directory of entries, one file per containerID and ifname.
type cache struct{ dir string }

func (c cache) path(containerID, ifName string) string {
	return filepath.Join(c.dir, containerID+"_"+ifName+".json")
}

func (c cache) put(e entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode cache entry: %w", err)
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create cache directory: %w", err)
	}
	if err := nodefiles.WriteFileAtomic(c.path(e.ContainerID, e.IfName), b); err != nil {
		return fmt.Errorf("write cache entry: %w", err)
	}
	return nil
}

// get returns the entry of an attachment; ok is false when there is none.
func (c cache) get(containerID, ifName string) (e entry, ok bool, err error) {
	return c.read(c.path(containerID, ifName))
}

func (c cache) read(path string) (e entry, ok bool, err error) {
	if ok, err = nodefiles.ReadJSON(path, &e); err != nil {
		return entry{}, false, fmt.Errorf("cache entry: %w", err)
	}
	return e, ok, nil
}

func (c cache) remove(containerID, ifName string) error {
	if err := nodefiles.RemoveFile(c.path(containerID, ifName)); err != nil {
		return fmt.Errorf("cache entry: %w", err)
	}
	return nil
}

// list returns every readable entry, sorted by file name; unreadable ones
// are returned as errors beside them.
func (c cache) list() ([]entry, error) {
	names, err := nodefiles.JSONNames(c.dir)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var out []entry
	var errs []error
	for _, n := range names {
		e, ok, err := c.read(filepath.Join(c.dir, n))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerID+out[i].IfName < out[j].ContainerID+out[j].IfName })
	return out, errors.Join(errs...)
}
