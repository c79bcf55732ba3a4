// Command sluice-cni is the sluice CNI plugin. It is a separate, small
// binary because the container runtime starts it once per pod attachment:
// it does no work at start-up and loads no PCI database.
package main

import (
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/sluice-net/sluice/cni/plugin"
	"github.com/sluice-net/sluice/host"
)

func main() {
	p := plugin.New(host.New(host.NodePaths()))
	if path := os.Getenv(plugin.TimingsEnv); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sluice-cni: %s=%s: %v; running without timings\n", plugin.TimingsEnv, path, err)
		} else {
			defer f.Close()
			p.Timings = f
		}
	}
	skel.PluginMainFuncs(p.Funcs(), version.All, "sluice-cni: attaches SR-IOV VFs and their RDMA devices to pods")
}
