package dra

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ipam"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// DefaultCNIPath is where the IPAM plugins of claim configs are looked
// for when neither Options.CNIPath nor $CNI_PATH says.
const DefaultCNIPath = "/opt/cni/bin"

// ipamTimeout bounds one IPAM plugin run.
const ipamTimeout = 30 * time.Second

// ipamType is the "type" of a validated IPAM object.
func ipamType(raw []byte) string {
	var m struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(raw, &m)
	return m.Type
}

// ipamNetwork is the CNI network name the IPAM plugin is given: the same
// for every claim whose ipam object is the same, so that host-local keeps
// one lease store per address range (a name per claim would hand two
// pods of one subnet the same address).
func ipamNetwork(raw []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		buf.Reset()
		buf.Write(raw)
	}
	sum := sha256.Sum256(buf.Bytes())
	return "sluice-dra-" + hex.EncodeToString(sum[:6])
}

func (d *Driver) cniPath() string {
	if d.opts.CNIPath != "" {
		return d.opts.CNIPath
	}
	if p := os.Getenv("CNI_PATH"); p != "" {
		return p
	}
	return DefaultCNIPath
}

// execIPAM runs the attachment's IPAM plugin, as sluice-cni would for a
// network of the attachment's IPAM network name, with the sandbox ID as
// the container ID.
func (d *Driver) execIPAM(ctx context.Context, cmd string, ipamConf []byte, a *nodefiles.DRAAttachment) (*current.Result, error) {
	conf, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": a.IPAMNetwork, "type": "sluice-dra", "ipam": json.RawMessage(ipamConf)})
	if err != nil {
		return nil, fmt.Errorf("IPAM configuration: %w", err)
	}
	var stderr bytes.Buffer
	exe := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: &stderr}}
	path := d.cniPath()
	plugin, err := exe.FindInPath(a.IPAMType, filepath.SplitList(path))
	if err != nil {
		return nil, fmt.Errorf("IPAM plugin %s: %w: install it in %s (the agent's CNI path), or change ipam.type", a.IPAMType, err, path)
	}
	if cmd != "ADD" {
		// A release also runs when the event that asked for it was
		// cancelled (the undo of a sandbox creation that ran out of time).
		ctx = context.WithoutCancel(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, ipamTimeout)
	defer cancel()
	args := &invoke.Args{Command: cmd, ContainerID: a.SandboxID, NetNS: a.Netns, IfName: a.IfName, PluginArgsStr: podArgs(a), Path: path}
	if cmd != "ADD" {
		if err := invoke.ExecPluginWithoutResult(ctx, plugin, conf, args, exe); err != nil {
			return nil, fmt.Errorf("IPAM plugin %s %s: %w%s", a.IPAMType, cmd, err, stderrOf(&stderr))
		}
		return nil, nil
	}
	r, err := invoke.ExecPluginWithResult(ctx, plugin, conf, args, exe)
	if err != nil {
		return nil, fmt.Errorf("IPAM plugin %s: %w%s", a.IPAMType, err, stderrOf(&stderr))
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, fmt.Errorf("IPAM plugin %s: convert its result: %w", a.IPAMType, err)
	}
	return res, nil
}

func stderrOf(b *bytes.Buffer) string {
	if b.Len() == 0 {
		return ""
	}
	return " (stderr: " + string(bytes.TrimSpace(b.Bytes())) + ")"
}

// ipamAdd runs the IPAM plugin's ADD and configures its addresses and
// routes on the VF's interface in the pod; it returns the addresses as
// CIDRs. Addresses it allocated are released when configuring fails.
func (d *Driver) ipamAdd(ctx context.Context, podNS *host.Netns, ipamConf []byte, a *nodefiles.DRAAttachment) (_ []string, err error) {
	res, err := d.execIPAM(ctx, "ADD", ipamConf, a)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if _, derr := d.execIPAM(ctx, "DEL", ipamConf, a); derr != nil {
				d.log.Error(derr, "undo: release the IPAM address")
			}
		}
	}()
	if len(res.IPs) == 0 {
		return nil, fmt.Errorf("IPAM plugin %s returned no IP address: check the claim's ipam configuration", a.IPAMType)
	}
	res.Interfaces = []*current.Interface{{Name: a.IfName, Sandbox: a.Netns}}
	var ips []string
	for _, ip := range res.IPs {
		ip.Interface = current.Int(0)
		ips = append(ips, ip.Address.String())
	}
	if err := podNS.Do(func() error { return ipam.ConfigureIface(a.IfName, res) }); err != nil {
		return nil, fmt.Errorf("configure %s with the addresses of IPAM plugin %s: %w", a.IfName, a.IPAMType, err)
	}
	return ips, nil
}

// ipamDel releases the attachment's address.
func (d *Driver) ipamDel(ctx context.Context, ipamConf []byte, a *nodefiles.DRAAttachment) error {
	if len(ipamConf) == 0 {
		return fmt.Errorf("IPAM plugin %s: the claim's checkpointed config has no ipam to release the address with", a.IPAMType)
	}
	_, err := d.execIPAM(ctx, "DEL", ipamConf, a)
	return err
}
