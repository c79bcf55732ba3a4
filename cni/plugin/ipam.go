package plugin

import (
	"bytes"
	"io"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// ipamNeedsInterface reports whether an IPAM plugin may need the pod's
// interface in place when it runs. host-local, static and whereabouts only
// allocate (from files, the config, the API server), so ADD runs them
// while it configures and moves the VF, the slowest steps of an ADD (the
// VF driver's open); dhcp talks through the interface, and a plugin sluice
// does not know may too, so they run after the move.
func ipamNeedsInterface(ipamType string) bool {
	switch ipamType {
	case "host-local", "static", "whereabouts":
		return false
	}
	return true
}

func ipamArgs(args *skel.CmdArgs) *invoke.Args {
	return &invoke.Args{ContainerID: args.ContainerID, NetNS: args.Netns, IfName: args.IfName, PluginArgsStr: args.Args, Path: args.Path}
}

// ipamCall is an IPAM ADD running beside the rest of ADD.
type ipamCall struct {
	done   chan struct{}
	res    types.Result
	err    error
	stderr bytes.Buffer
}

// startIPAM runs the IPAM plugin's ADD in the background; wait gives its
// result. Its stderr is held until then, so that it does not interleave
// with sluice-cni's own.
func (p *Plugin) startIPAM(ipamType string, args *skel.CmdArgs) *ipamCall {
	c := &ipamCall{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.res, c.err = p.execIPAM("ADD", ipamType, args.StdinData, ipamArgs(args), &c.stderr)
	}()
	return c
}

// wait waits for the call and copies its stderr to w.
func (c *ipamCall) wait(w io.Writer) (types.Result, error) {
	<-c.done
	if c.stderr.Len() > 0 {
		_, _ = w.Write(c.stderr.Bytes())
		c.stderr.Reset()
	}
	return c.res, c.err
}

// releaseIPAM undoes an IPAM ADD that succeeded, once it ended: the undo of
// a failed ADD.
func (p *Plugin) releaseIPAM(c *ipamCall, ipamType string, args *skel.CmdArgs) {
	if _, err := c.wait(p.Stderr); err != nil {
		return // nothing allocated
	}
	if _, err := p.execIPAM("DEL", ipamType, args.StdinData, ipamArgs(args), p.Stderr); err != nil {
		p.logf("undo: release IPAM address: %v", err)
	}
}

// execIPAM runs the IPAM plugin with command cmd, its stderr to stderr;
// the result is nil except for ADD.
func (p *Plugin) execIPAM(cmd, ipamType string, conf []byte, a *invoke.Args, stderr io.Writer) (types.Result, error) {
	paths := filepath.SplitList(a.Path)
	exe := p.Exec
	if exe == nil {
		exe = &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: stderr}}
	}
	pluginPath, err := exe.FindInPath(ipamType, paths)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.ipamContext()
	defer cancel()
	args := *a
	args.Command = cmd
	if cmd == "ADD" {
		return invoke.ExecPluginWithResult(ctx, pluginPath, conf, &args, exe)
	}
	return nil, invoke.ExecPluginWithoutResult(ctx, pluginPath, conf, &args, exe)
}
