package host

import (
	"path/filepath"

	"github.com/Mellanox/rdmamap"
)

// RDMAPortStates reads the port states (ACTIVE, DOWN, ...) of one RDMA
// device, in port order; ok is false when the device does not exist. It
// reads only that device's port state files, so a health check can poll
// the devices it cares about between full discoveries.
func (h *Host) RDMAPortStates(name string) (states []string, ok bool) {
	dir := filepath.Join(h.classDir(rdmamap.RdmaClassName), name)
	if !exists(dir) {
		return nil, false
	}
	for _, p := range readPorts(filepath.Join(dir, rdmamap.RdmaPortsdir)) {
		states = append(states, p.State)
	}
	return states, true
}

// RDMADeviceNames lists the node's RDMA devices by name, sorted: one
// directory read, so a health check can notice a device that appeared.
func (h *Host) RDMADeviceNames() []string {
	names, _ := readDirNames(h.classDir(rdmamap.RdmaClassName))
	return names
}
