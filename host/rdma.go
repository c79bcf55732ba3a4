package host

import (
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/Mellanox/rdmamap"
)

// rdmaIndex is every RDMA device of the node, read once per discovery.
//
// rdmamap knows this sysfs layout, but keeps its roots in package variables
// (rdmamap.RdmaClassDir, ...): setting them per Host would be shared mutable
// state and a data race between Hosts on different roots. So the layout is
// read here, relative to Paths, with rdmamap's names for its parts.
type rdmaIndex struct {
	byName map[string]*RDMADevice
	// byParent maps a PCI function to its RDMA device.
	byParent map[string]*RDMADevice
	// byNetdev maps a software device's netdev (rxe's parent) to the device.
	byNetdev map[string]*RDMADevice
}

func (h *Host) classDir(class string) string {
	return filepath.Join(h.paths.Sys, "class", class)
}

func (h *Host) readRDMA() rdmaIndex {
	idx := rdmaIndex{byName: map[string]*RDMADevice{}, byParent: map[string]*RDMADevice{}, byNetdev: map[string]*RDMADevice{}}
	classDir := h.classDir(rdmamap.RdmaClassName)
	names, err := readDirNames(classDir)
	if err != nil || len(names) == 0 {
		return idx
	}
	// Every device costs a dozen system calls; read them in chunks
	// concurrently (an SR-IOV node has one per VF).
	devs := make([]*RDMADevice, len(names))
	var wg sync.WaitGroup
	var chars map[string][]string
	wg.Go(func() { chars = h.rdmaCharDevices() })
	const chunk = 128
	for lo := 0; lo < len(names); lo += chunk {
		hi := min(lo+chunk, len(names))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				devs[i] = readRDMADevice(classDir, names[i])
			}
		})
	}
	wg.Wait()
	for _, d := range devs {
		d.CharDevices = chars[d.Name]
		idx.byName[d.Name] = d
		if d.Parent != "" {
			idx.byParent[d.Parent] = d
		} else if d.Netdev != "" {
			idx.byNetdev[d.Netdev] = d
		}
	}
	return idx
}

func readRDMADevice(classDir, name string) *RDMADevice {
	dir := filepath.Join(classDir, name)
	d := &RDMADevice{Name: name}
	d.Parent = linkBase(filepath.Join(dir, "device"))
	d.Ports = readPorts(filepath.Join(dir, rdmamap.RdmaPortsdir))
	if d.Parent == "" {
		// Software RDMA (rxe, siw): rxe names its netdev in "parent";
		// otherwise the first GID's netdev says which one it runs on.
		d.Netdev = readAttr(filepath.Join(dir, "parent"))
		if d.Netdev == "" {
			d.Netdev = readAttr(filepath.Join(dir, rdmamap.RdmaPortsdir, "1", rdmamap.RdmaGidAttrDir, rdmamap.RdmaGidAttrNdevDir, "0"))
		}
	}
	return d
}

// forDevice returns the RDMA device of a PCI function: one parented by it
// (mlx5 PFs and VFs), or a software device on its netdev (rxe).
func (idx rdmaIndex) forDevice(addr, netdev string) *RDMADevice {
	if d := idx.byParent[addr]; d != nil {
		return d
	}
	if netdev != "" {
		return idx.byNetdev[netdev]
	}
	return nil
}

// readPorts reads ports 1, 2, ... until one is missing. Ports are numbered
// from 1 without gaps, so this costs one failed open instead of a listing.
func readPorts(dir string) []RDMAPort {
	var ports []RDMAPort
	for num := 1; ; num++ {
		p := filepath.Join(dir, strconv.Itoa(num))
		state := readAttr(filepath.Join(p, "state"))
		if state == "" {
			return ports
		}
		// "4: ACTIVE" -> "ACTIVE"
		if i := strings.IndexByte(state, ':'); i >= 0 {
			state = strings.TrimSpace(state[i+1:])
		}
		ports = append(ports, RDMAPort{Num: num, State: state, LinkLayer: readAttr(filepath.Join(p, "link_layer"))})
	}
}

// charDevicesOf are the char devices of the one RDMA device name, read
// from the sysfs directory of its parent (a PCI function's directory, or
// /sys/devices/virtual for a software device), which holds the
// infiniband_verbs and infiniband_mad entries of its own devices only:
// what sluice-cni reads per pod, never the node's whole list.
func (h *Host) charDevicesOf(name, parentDir string) []string {
	var out []string
	for _, class := range []string{"infiniband_verbs", "infiniband_mad"} {
		dir := filepath.Join(parentDir, class)
		for _, n := range dirNames(dir) {
			if !hasAnyPrefix(n, []string{rdmamap.RdmaUverbsFilxPrefix, rdmamap.RdmaUmadFilxPrefix, rdmamap.RdmaIssmFilePrefix}) {
				continue
			}
			if readAttr(filepath.Join(dir, n, "ibdev")) == name {
				out = append(out, "/dev/infiniband/"+n)
			}
		}
	}
	if len(out) > 0 && exists(filepath.Join(h.paths.Dev, "infiniband", "rdma_cm")) {
		out = append(out, "/dev/infiniband/rdma_cm")
	}
	sort.Strings(out)
	return out
}

// virtualDevicesDir is where the kernel puts devices without a parent
// (soft-RoCE devices and their uverbs).
func (h *Host) virtualDevicesDir() string { return filepath.Join(h.paths.Sys, "devices", "virtual") }

// rdmaCharDevices maps each RDMA device to its char devices: uverbsN from
// infiniband_verbs, umadN and issmN from infiniband_mad, plus rdma_cm when
// the node has it. Paths are as a container sees them (/dev/infiniband/...).
func (h *Host) rdmaCharDevices() map[string][]string {
	out := map[string][]string{}
	add := func(class string, prefixes ...string) {
		dir := h.classDir(class)
		for _, n := range dirNames(dir) {
			if !hasAnyPrefix(n, prefixes) {
				continue
			}
			ib := readAttr(filepath.Join(dir, n, "ibdev"))
			if ib != "" {
				out[ib] = append(out[ib], "/dev/infiniband/"+n)
			}
		}
	}
	add("infiniband_verbs", rdmamap.RdmaUverbsFilxPrefix)
	add("infiniband_mad", rdmamap.RdmaUmadFilxPrefix, rdmamap.RdmaIssmFilePrefix)
	if exists(filepath.Join(h.paths.Dev, "infiniband", "rdma_cm")) {
		for ib := range out {
			out[ib] = append(out[ib], "/dev/infiniband/rdma_cm")
		}
	}
	for ib := range out {
		sort.Strings(out[ib])
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
