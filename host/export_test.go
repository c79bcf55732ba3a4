package host

import "github.com/jaypipes/ghw/pkg/pci"

// WithPCIInfoLoader replaces the PCI ID database loader, so that tests can
// see whether a code path loads the database at all.
func WithPCIInfoLoader(load func() *pci.Info) Option {
	return func(h *Host) { h.pciInfo = load }
}
