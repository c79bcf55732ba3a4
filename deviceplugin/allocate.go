package deviceplugin

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const (
	vfioDriver    = "vfio-pci"
	vfioContainer = "/dev/vfio/vfio"
)

// allocator builds Allocate responses for one pool.
type allocator struct {
	// devPath maps a container device path to the host's.
	devPath func(string) string
	// cdi names CDI devices instead of listing device nodes.
	cdi bool
	// devInfo writes the allocated devices' device-info files; nil for none.
	devInfo *devInfoFiles
}

// deviceNodes lists what a device needs in /dev, as the container sees it;
// Device.hostNode maps each to the host's.
func deviceNodes(p *Pool, d *Device) []string {
	var nodes []string
	if d.Driver == vfioDriver && d.IOMMUGroup != "" && !p.Shared() {
		nodes = append(nodes, vfioContainer, "/dev/vfio/"+d.IOMMUGroup)
	}
	if n := d.uioNode(); n != "" && !p.Shared() {
		nodes = append(nodes, n)
	}
	if d.RDMA != nil && (p.RDMA || p.Shared()) {
		nodes = append(nodes, d.RDMA.CharDevices...)
	}
	if p.NeedVhostNet {
		nodes = append(nodes, "/dev/vhost-net", "/dev/net/tun")
	}
	return nodes
}

// container answers one container's request.
func (a allocator) container(pd *PoolDevices, ids []string) (*pluginapi.ContainerAllocateResponse, error) {
	p := &pd.Pool
	devs := make([]*Device, 0, len(ids))
	var unknown []string
	for _, id := range ids {
		d, ok := pd.Device(id)
		if !ok {
			unknown = append(unknown, id)
			continue
		}
		// An Unhealthy device is still handed out: the kubelet picked it
		// before it learnt, and failing the pod's admission would not
		// make it pick another.
		devs = append(devs, d)
	}
	if len(unknown) > 0 {
		return nil, status.Errorf(codes.NotFound, "%s has no device %s: the kubelet's list is older than the plugin's; it corrects itself on the next ListAndWatch update",
			p.Resource(), strings.Join(unknown, ", "))
	}

	resp := &pluginapi.ContainerAllocateResponse{Envs: make(map[string]string, 4)}
	info := make(map[string]map[string]map[string]string, len(devs))
	addrs := make([]string, 0, len(devs))
	seenAddr := make(map[string]bool, len(devs))
	seenNode := map[string]bool{}
	for _, d := range devs {
		if !seenAddr[d.PCIAddress] {
			seenAddr[d.PCIAddress] = true
			addrs = append(addrs, d.PCIAddress)
		}
		info[d.ID] = deviceInfo(p, d)
		if p.SoftRoCE {
			// The device does not exist yet: sluice-cni creates it and its
			// CDI spec in the pod's sandbox, before the containers.
			resp.CdiDevices = append(resp.CdiDevices, &pluginapi.CDIDevice{Name: cdiName(p, d.PCIAddress)})
		}
		nodes := pd.nodesOf(d)
		if a.cdi {
			if len(nodes) > 0 {
				resp.CdiDevices = append(resp.CdiDevices, &pluginapi.CDIDevice{Name: cdiName(p, d.ID)})
			}
			continue
		}
		for _, n := range nodes {
			if seenNode[n] {
				continue
			}
			seenNode[n] = true
			resp.Devices = append(resp.Devices, &pluginapi.DeviceSpec{ContainerPath: n, HostPath: a.devPath(d.hostNode(n)), Permissions: p.nodePermissions()})
		}
	}
	sort.Slice(resp.Devices, func(i, j int) bool { return resp.Devices[i].ContainerPath < resp.Devices[j].ContainerPath })
	if p.WholeSet {
		// k8s-rdma-shared-dev-plugin sets no variable: a unit stands for
		// the whole set, and the pod finds its devices in /dev/infiniband.
		return resp, nil
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode device info: %v", err)
	}
	if a.devInfo != nil {
		if err := a.devInfo.save(p, devs, time.Now()); err != nil {
			return nil, status.Errorf(codes.Internal, "%s: %v", p.Resource(), err)
		}
	}
	names := []string{envName(p.Resource())}
	if sh := shellEnvName(p.Resource()); sh != names[0] {
		names = append(names, sh)
	}
	for _, name := range names {
		resp.Envs[name] = strings.Join(addrs, ",")
		resp.Envs[name+"_INFO"] = string(b)
	}
	return resp, nil
}
