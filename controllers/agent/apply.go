package agent

import (
	"context"
	"fmt"

	"github.com/sluice-net/sluice/host"
)

// configurer is what applying a plan needs from the host layer;
// *host.Host is one, tests wrap it to stop half-way.
type configurer interface {
	SetNumVFs(ctx context.Context, pfAddr string, n int) error
	BindDriver(ctx context.Context, addr, driver string) error
	SetPFMTU(pfAddr string, mtu int) error
	SetVFMTU(vfAddr string, mtu int) error
	ConfigureVF(pfName string, vf int, cfg host.VFConfig) error
	SetRDMANetnsMode(mode string) error
}

// applyPF makes one pass of a PF's plan: the VF count when it changes
// (the groups' settings then come with the next plan, on the new VFs),
// else every VF step, with the PF MTU raised before them or lowered after.
// Every operation is idempotent, so a pass cut short is finished by the
// next plan. Errors name the PF and the step.
func applyPF(ctx context.Context, h configurer, p *pfPlan) error {
	if p.raisesMTUFirst() {
		if err := h.SetPFMTU(p.address, p.pfMTU.to); err != nil {
			return fmt.Errorf("PF %s: set MTU %d -> %d: %w", p.label, p.pfMTU.from, p.pfMTU.to, err)
		}
	}
	if p.numVFs != nil {
		if err := h.SetNumVFs(ctx, p.address, p.numVFs.to); err != nil {
			return fmt.Errorf("PF %s: set numVfs %d -> %d: %w", p.label, p.numVFs.from, p.numVFs.to, err)
		}
		if !p.remove {
			return nil
		}
	}
	for _, s := range p.vfs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("PF %s: stopped before vf %d: %w", p.label, s.index, err)
		}
		if s.rebind {
			if err := h.BindDriver(ctx, s.address, s.driver); err != nil {
				return fmt.Errorf("PF %s: vf %d (policy %s): bind to %s: %w", p.label, s.index, s.policy, driverName(s.driver), err)
			}
		}
		if s.trust != nil || s.spoofChk != nil {
			if err := h.ConfigureVF(p.name, s.index, host.VFConfig{Trust: s.trust, SpoofChk: s.spoofChk}); err != nil {
				return fmt.Errorf("PF %s: vf %d (policy %s): %w", p.label, s.index, s.policy, err)
			}
		}
		if s.mtu != 0 {
			if err := h.SetVFMTU(s.address, s.mtu); err != nil {
				return fmt.Errorf("PF %s: vf %d (policy %s): set MTU %d: %w", p.label, s.index, s.policy, s.mtu, err)
			}
		}
	}
	if p.pfMTU != nil && !p.raisesMTUFirst() {
		if err := h.SetPFMTU(p.address, p.pfMTU.to); err != nil {
			return fmt.Errorf("PF %s: set MTU %d -> %d: %w", p.label, p.pfMTU.from, p.pfMTU.to, err)
		}
	}
	return nil
}
