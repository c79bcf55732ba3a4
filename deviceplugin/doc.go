// Package deviceplugin is sluice's kubelet device plugin: one
// k8s.io/kubelet deviceplugin/v1beta1 server per pool, resource name
// <prefix>/<name>, advertising SR-IOV VFs (device ID: the VF's PCI
// address), network functions served whole as sriov-network-device-plugin
// serves them (NICs without SR-IOV, PFs without VFs; device ID: the PCI
// address; wholenic.go) or shares of RDMA devices (device ID: <rdma
// device>-<k>).
//
// Scanning is kept apart from gRPC. A scan reads the node (host.Discover),
// the readiness gate the node agent writes (package gate) and the CNI's
// attachment registry, and builds a Tree: pool -> devices with their
// health, NUMA node and what an allocation hands out. The Manager diffs
// each Tree against the last one and starts, updates or stops the pool
// servers; a server only serves the Tree it was given.
//
// Scans run on events: the config file replaced (fsnotify on its
// directory), the gate changed, a netlink link event, an RDMA device
// appearing, vanishing or changing port state (a light poll, as RDMA has
// no event source here), a Rescan call or Options.Trigger, and a periodic
// safety resync. When the kubelet restarts (kubelet.sock recreated, plugin
// sockets wiped) every pool's socket is recreated and registered again,
// once: the kubelet (1.37) refuses a registration of a socket path it is
// connected to and then never cleans that endpoint up, so a pool is sent
// only when its socket or the kubelet is new, and a refused pool moves to a
// fresh socket name.
//
// Allocate answers as sriov-network-device-plugin does for what pods and
// CNIs see: the PCIDEVICE_<RESOURCE> and _INFO variables (names.go,
// info.go) and a device-info file per VF for Multus (devinfo.go), removed
// by a scan once the device is released or gone.
//
// The config file is the node agent's native format, or an unchanged
// sriov-network-device-plugin or k8s-rdma-shared-dev-plugin config.
package deviceplugin
