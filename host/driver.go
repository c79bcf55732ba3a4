package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
)

// DefaultDriver asks BindDriver for the VF's own driver (igbvf, iavf,
// mlx5_core, ...), whichever the kernel picks without an override.
const DefaultDriver = ""

// BindDriver binds a PCI function to driver through driver_override, or
// back to its default driver with DefaultDriver. It waits until the kernel
// has bound it and, for a network driver, created its netdev. On failure
// it restores the previous binding.
func (h *Host) BindDriver(ctx context.Context, addr, driver string) (err error) {
	dir := h.pciDevDir(addr)
	if !exists(dir) {
		return stepErr(addr, "bind driver", fmt.Errorf("%w: no such PCI function", ErrNotFound))
	}
	cur := linkBase(filepath.Join(dir, "driver"))
	oldOverride := readAttr(filepath.Join(dir, "driver_override"))
	if oldOverride == "(null)" {
		oldOverride = ""
	}
	if driver != DefaultDriver {
		if cur == driver {
			return nil
		}
		if !exists(filepath.Join(h.paths.Sys, "bus", "pci", "drivers", driver)) {
			return stepErr(addr, "bind to "+driver, fmt.Errorf("driver %s is not loaded: load its module (modprobe %s) on the node", driver, driver))
		}
		if driver == VfioPci && linkBase(filepath.Join(dir, "iommu_group")) == "" {
			return stepErr(addr, "bind to vfio-pci", errors.New("the function has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on on the kernel command line)"))
		}
	} else if oldOverride == "" && cur != "" && cur != VfioPci {
		return nil // already on its default driver
	}

	target := driver
	if target == DefaultDriver {
		target = "its default driver"
	}
	defer func() {
		if err == nil {
			return
		}
		// Put the function back as it was: old override, old driver.
		_ = h.w.WriteAttr(filepath.Join(dir, "driver_override"), oldOverride+"\n")
		if now := linkBase(filepath.Join(dir, "driver")); now != cur {
			if now != "" {
				_ = h.w.WriteAttr(filepath.Join(dir, "driver", "unbind"), addr)
			}
			_ = h.w.WriteAttr(filepath.Join(h.paths.Sys, "bus", "pci", "drivers_probe"), addr)
		}
	}()
	if err := h.w.WriteAttr(filepath.Join(dir, "driver_override"), driver+"\n"); err != nil {
		return stepErr(addr, "write driver_override="+driver, err)
	}
	if cur != "" {
		if err := h.w.WriteAttr(filepath.Join(dir, "driver", "unbind"), addr); err != nil {
			return stepErr(addr, "unbind from "+cur, err)
		}
	}
	if err := h.w.WriteAttr(filepath.Join(h.paths.Sys, "bus", "pci", "drivers_probe"), addr); err != nil {
		return stepErr(addr, "probe for "+target, err)
	}
	return h.waitFor(ctx, addr, "binding to "+target, func() (bool, string) {
		now := linkBase(filepath.Join(dir, "driver"))
		switch {
		case now == "":
			return false, "no driver bound"
		case driver != DefaultDriver && now != driver:
			return false, "bound to " + now
		case driver == DefaultDriver && now == VfioPci:
			return false, "still bound to vfio-pci"
		case now == VfioPci:
			return true, ""
		case firstEntry(filepath.Join(dir, "net")) == "":
			return false, "bound to " + now + ", no netdev yet"
		}
		return true, ""
	})
}

// Driver returns the driver bound to a PCI function, empty if none.
func (h *Host) Driver(addr string) string {
	return linkBase(filepath.Join(h.pciDevDir(addr), "driver"))
}

// VfioGroup returns the /dev/vfio/N path (as a container sees it) of a
// function bound to vfio-pci, empty without an IOMMU group.
func (h *Host) VfioGroup(addr string) string {
	g := linkBase(filepath.Join(h.pciDevDir(addr), "iommu_group"))
	if g == "" {
		return ""
	}
	return "/dev/vfio/" + g
}
