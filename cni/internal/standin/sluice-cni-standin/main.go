// Command sluice-cni-standin is sluice-cni on a stand-in node (package
// standin) whose state file is $SLUICE_STANDIN_NODE: the plugin's code
// run as a process on veth links, for tests and benchmarks on machines
// without SR-IOV.
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/sluice-net/sluice/cni/internal/standin"
	"github.com/sluice-net/sluice/cni/plugin"
)

func main() {
	p := plugin.New(standin.Open(os.Getenv("SLUICE_STANDIN_NODE")))
	skel.PluginMainFuncs(p.Funcs(), version.All, "sluice-cni on a stand-in node")
}
