// Package plugin is the sluice CNI plugin: it moves an SR-IOV VF (and, in
// exclusive RDMA mode, its RDMA device) into a pod's network namespace, and
// puts everything back when the pod goes.
//
// # State
//
// ADD saves, before it changes anything, a cache entry keyed by containerID
// and ifname (the VF's PCI address, its PF-side settings, its netdev's name,
// MAC, MTU and state, the RDMA device it moves, and the network
// configuration) and an attachment record (package attachment, keyed by
// PCI address) that tells the device plugin and the agent which pod holds
// the VF, with the same original state. DEL uses them to restore the VF and removes them last. All of
// ADD, DEL and GC for one VF hold an exclusive flock on the VF's lock file.
//
// # VFs a DRA claim holds
//
// ADD refuses, under the VF's lock and before it changes anything, a VF
// the DRA driver prepared for a ResourceClaim: the claim's hold file
// (nodefiles.DRAHold, one per VF, one open to read) names it. ADD never
// lists the claim checkpoints.
//
// # DEL without a namespace or a cache entry
//
// When the pod's namespace is gone, the kernel has already returned the VF's
// netdev to the initial namespace (physical netdevs are returned, under the
// pod's name or devN when that is taken): DEL finds it by PCI address and
// gives it back its name and state. Without a cache entry DEL restores the
// VF from the attachment record (a record of an older sluice-cni gives only
// the host name), with the request's IPAM configuration; with neither it
// only releases the IPAM address: it never fails because state is missing,
// so it can run any number of times.
//
// # RDMA
//
// In exclusive RDMA mode the VF's RDMA device moves into the pod with the
// netdev (and back on DEL). In shared mode it cannot move and is visible from
// every namespace: the plugin leaves it, says so on stderr and writes it to
// the attachment record (SharedRDMADevice). The CNI result carries no RDMA
// field, as the spec has none; it stays spec-valid.
//
// # Soft-RoCE
//
// With softRoCE set (a soft-RoCE pool's network), ADD creates a soft-RoCE
// device on the VF once it is in the pod's namespace, from inside that
// namespace, and writes the CDI spec of <cdiKind>=<VF PCI address>, the
// name the device plugin's Allocate gave the kubelet: the runtime resolves
// it when it creates the containers, after ADD, so each container gets
// exactly its own device's /dev/infiniband files. DEL removes the device
// and the spec before the VF leaves the pod (a device whose netdev moves
// dies anyway).
package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// Node is what the plugin needs of the node's VFs; *host.Host is the real
// one, tests use a stand-in whose VF netdevs are veth links.
type Node interface {
	// VF looks up one VF by PCI address (ErrNotFound wrapped when absent).
	VF(pciAddr string) (*host.VF, error)
	// ConfigureVF applies PF-side settings, all or none.
	ConfigureVF(pfName string, vf int, cfg host.VFConfig) error
	// ConfigureVFFrom is ConfigureVF on a VF as VF returned it, held
	// since: its PF is not read again.
	ConfigureVFFrom(vf *host.VF, cfg host.VFConfig) error
	// RDMANetnsMode is "shared" or "exclusive".
	RDMANetnsMode() (string, error)
	// MoveRDMADevice moves an RDMA device between namespaces.
	MoveRDMADevice(from *host.Netns, name string, to *host.Netns) error
	// AddSoftRoCE creates a soft-RoCE device on a netdev of namespace ns.
	AddSoftRoCE(ns *host.Netns, name, netdev string) (*host.RDMADevice, error)
	// DeleteSoftRoCE removes one (ErrNotFound wrapped when it is gone).
	DeleteSoftRoCE(name string) error
}

// Plugin runs the CNI commands.
type Plugin struct {
	Node Node
	// Stdout receives results, Stderr diagnostics.
	Stdout, Stderr io.Writer
	// LockTimeout bounds the wait for another command on the same VF.
	LockTimeout time.Duration
	// HolderWait bounds how long ADD waits for the pod that still holds
	// the VF to give it back (see waitForHolder).
	HolderWait time.Duration
	// Exec runs delegated (IPAM) plugins; nil runs them as processes.
	Exec invoke.Exec
	// Timings, when set, receives one line (a Timing) per command run
	// through Funcs, with the time of each of its steps. Commands timed
	// this way must not run at once on one Plugin.
	Timings io.Writer

	// clock times the command being run through Funcs when Timings is set.
	clock *stepClock
	// log is the running command's log (logged gives each command a copy
	// of the Plugin with its own).
	log *cmdLog
}

// New returns a plugin over node writing to the process's stdout/stderr.
func New(node Node) *Plugin {
	return &Plugin{Node: node, Stdout: os.Stdout, Stderr: os.Stderr, LockTimeout: 10 * time.Second, HolderWait: 30 * time.Second}
}

// Funcs are the commands for skel.PluginMainFuncs; each outcome is counted
// (package stats) for the node agent's metrics.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{
		Add: p.counted("ADD", p.CmdAdd), Del: p.counted("DEL", p.CmdDel), Check: p.counted("CHECK", p.CmdCheck),
		GC: p.counted("GC", p.CmdGC), Status: p.counted("STATUS", p.CmdStatus),
	}
}

// counted runs a command and counts its outcome: "success", or "error-N"
// with the CNI error code. Counting never changes the command's result.
func (p *Plugin) counted(command string, cmd func(*skel.CmdArgs) error) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) error {
		if p.Timings != nil {
			p.clock = newStepClock()
			defer func() { p.clock = nil }()
		}
		err := cmd(args)
		result := "success"
		if err != nil {
			code := uint(types.ErrInternal)
			var e *types.Error
			if errors.As(err, &e) {
				code = e.Code
			}
			result = fmt.Sprintf("error-%d", code)
		}
		// The stats directory is named by the config; a config too broken to
		// read counts in the default directory. Only that field is decoded:
		// a decoder for the whole configuration is built on first use (by
		// reflection), which costs more than the count itself.
		var conf struct {
			StatsDir string `json:"statsDir"`
		}
		_ = json.Unmarshal(args.StdinData, &conf)
		if serr := nodefiles.NewStats(or(conf.StatsDir, nodefiles.DefaultStatsDir)).Add(nodefiles.StatsKey{Command: command, Result: result}); serr != nil {
			p.logf("cannot count the %s outcome: %v", command, serr)
		}
		if p.clock != nil {
			p.mark("stats file")
			if terr := p.clock.write(p.Timings, command, result); terr != nil {
				p.logf("cannot write the %s timings: %v", command, terr)
			}
		}
		return err
	}
}

// ipamTimeout bounds one delegated IPAM call.
const ipamTimeout = 60 * time.Second

func (p *Plugin) ipamContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), ipamTimeout)
}

// lockVF takes the VF's lock (nodefiles.LockVF); a holder that keeps it
// past timeout is CNI error 11, "try again later".
func lockVF(dir, pci string, timeout time.Duration) (*nodefiles.VFLock, error) {
	l, err := nodefiles.LockVF(dir, pci, timeout)
	if errors.Is(err, nodefiles.ErrVFBusy) {
		return nil, types.NewError(types.ErrTryAgainLater, fmt.Sprintf("%v (another sluice-cni command, or the node agent changing the VF); try again later", err), "")
	}
	return l, err
}
