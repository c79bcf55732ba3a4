// Command sluice-cni is the sluice CNI plugin. It is a separate, small
// binary because the container runtime starts it once per pod attachment:
// it does no work at start-up and loads no PCI database.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/sluice-net/sluice/cni/plugin"
	"github.com/sluice-net/sluice/host"
)

func main() {
	p := plugin.New(host.New(host.NodePaths()))
	skel.PluginMainFuncs(p.Funcs(), version.All, "sluice-cni: attaches SR-IOV VFs and their RDMA devices to pods")
}
