package deviceplugin

import (
	"strings"
)

// deviceInfo is one allocated device's entry in the INFO variable, shaped
// as sriov-network-device-plugin shapes it: one string map per kind of
// information, under the name that plugin gives its info provider:
//
//	generic  {"deviceID"}                    always
//	vfio     {"mount", "dev-mount"}          VFs bound to vfio-pci
//	uio      {"mount"}                       functions on a uio driver
//	rdma     {"uverbs", "umad", "issm",
//	          "rdma_cm", "rdma_dev"}         devices handed out with RDMA
//	vhost    {"net-mount", "tun-mount"}      pools with needVhostNet
//	extra    the pool's additionalInfo       pools that set it ("*" first,
//	                                         then the device's own keys)
//
// A workload parses the same JSON whichever plugin serves it.
func deviceInfo(p *Pool, d *Device) map[string]map[string]string {
	info := map[string]map[string]string{
		"generic": {"deviceID": d.ID},
	}
	if d.Driver == vfioDriver && !p.Shared() {
		v := map[string]string{"mount": vfioContainer}
		if d.IOMMUGroup != "" {
			v["dev-mount"] = "/dev/vfio/" + d.IOMMUGroup
		}
		info["vfio"] = v
	}
	if n := d.uioNode(); n != "" && !p.Shared() {
		info["uio"] = map[string]string{"mount": n}
	}
	if d.RDMA != nil && (p.RDMA || p.Shared()) {
		info["rdma"] = rdmaEnv(d.RDMA)
	}
	if p.NeedVhostNet {
		info["vhost"] = map[string]string{"net-mount": "/dev/vhost-net", "tun-mount": "/dev/net/tun"}
	}
	if len(p.AdditionalInfo) > 0 {
		extra := map[string]string{}
		for _, key := range []string{"*", d.ID} {
			for k, v := range p.AdditionalInfo[key] {
				extra[k] = v
			}
		}
		info["extra"] = extra
	}
	return info
}

// rdmaEnv names an RDMA device's char devices by kind, as the container
// sees them, and the device itself.
func rdmaEnv(r *RDMAInfo) map[string]string {
	m := map[string]string{}
	for _, c := range r.CharDevices {
		switch {
		case strings.Contains(c, "uverbs"):
			m["uverbs"] = c
		case strings.Contains(c, "umad"):
			m["umad"] = c
		case strings.Contains(c, "issm"):
			m["issm"] = c
		case strings.Contains(c, "rdma_cm"):
			m["rdma_cm"] = c
		}
	}
	if r.Name != "" {
		m["rdma_dev"] = r.Name
	}
	return m
}
