package deviceplugin

import (
	"slices"
	"strconv"
)

// wholeSetUnits are the units of a whole-set shared pool, as
// k8s-rdma-shared-dev-plugin advertises them: IDs "0" to SharedMax-1, all
// Healthy and without NUMA node while at least one RDMA device is selected,
// none otherwise. What a unit hands out is the pool's Members.
func wholeSetUnits(p *Pool, members []Device) []Device {
	if len(members) == 0 {
		return nil
	}
	devs := make([]Device, p.SharedMax)
	for k := range devs {
		devs[k] = Device{ID: strconv.Itoa(k), Healthy: true, NUMANode: -1, VFIndex: -1}
	}
	return devs
}

// nodesOf lists what one allocated device needs in /dev, as the container
// sees it: a whole-set unit needs the char devices of every member.
func (pd *PoolDevices) nodesOf(d *Device) []string {
	if !pd.Pool.WholeSet {
		return deviceNodes(&pd.Pool, d)
	}
	var nodes []string
	for i := range pd.Members {
		for _, n := range deviceNodes(&pd.Pool, &pd.Members[i]) {
			if !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
	}
	return nodes
}

// nodePermissions are the cgroup permissions of the device nodes an
// Allocate response lists. sriov-network-device-plugin gives every node
// "rw" (pkg/devices/rdma.go and its info providers), and so does sluice;
// k8s-rdma-shared-dev-plugin gives its RDMA char devices "rwm"
// (pkg/resources/rdma_device_spec.go), so its whole-set pools get the same.
// Both write "rw" in CDI specs, and so does cdiWriter for every pool.
func (p *Pool) nodePermissions() string {
	if p.WholeSet {
		return "rwm"
	}
	return "rw"
}
