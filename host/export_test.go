package host

import (
	"github.com/jaypipes/ghw/pkg/pci"
	"github.com/vishvananda/netlink"
)

// WithPCIInfoLoader replaces the PCI ID database loader, so that tests can
// see whether a code path loads the database at all.
func WithPCIInfoLoader(load func() *pci.Info) Option {
	return func(h *Host) { h.pciInfo = load }
}

// KernelLinkByName is the real netlink's link look-up.
func KernelLinkByName(name string) (netlink.Link, error) { return newKernelNetlink().LinkByName(name) }
