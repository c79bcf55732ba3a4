package plugin

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// CmdStatus (CNI 1.1) reports the plugin ready when the directories it
// writes on ADD are usable; otherwise it is "plugin not available" (code
// 50) naming the directory. The IPAM plugin's STATUS is passed on.
func (p *Plugin) CmdStatus(args *skel.CmdArgs) error {
	return p.logged("STATUS", args, func(q *Plugin) error { return q.cmdStatus(args) })
}

func (p *Plugin) cmdStatus(args *skel.CmdArgs) error {
	conf, err := loadBaseConf(args.StdinData)
	if err != nil {
		return err
	}
	for _, d := range []struct{ field, dir string }{
		{"cacheDir", conf.cacheDir()},
		{"attachmentsDir", conf.attachmentsDir()},
		{"lockDir", conf.lockDir()},
	} {
		if err := writable(d.dir); err != nil {
			return cniError(types.ErrPluginNotAvailable, "%s %s is not usable: %v; the plugin cannot record attachments there", d.field, d.dir, err)
		}
	}
	if conf.IPAM.Type != "" {
		if _, err := p.execIPAM("STATUS", conf.IPAM.Type, args.StdinData, &invoke.Args{Path: args.Path}, p.Stderr); err != nil {
			var e *types.Error
			if errors.As(err, &e) && e.Code == types.ErrIncompatibleCNIVersion {
				return nil // an IPAM plugin older than CNI 1.1 has no STATUS
			}
			return cniError(types.ErrPluginNotAvailable, "IPAM plugin %s: %v", conf.IPAM.Type, err)
		}
	}
	return nil
}

// writable creates dir if needed and a file in it.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".status-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}
