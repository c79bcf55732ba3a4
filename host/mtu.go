package host

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// MTUInUseError says that lowering a PF's MTU would leave VFs with a larger
// MTU than their PF can carry.
type MTUInUseError struct {
	PF  string
	MTU int
	// VFs are "netdev (mtu N)" of the VFs that need more.
	VFs []string
}

func (e *MTUInUseError) Error() string {
	return fmt.Sprintf("%s: lowering the MTU to %d would leave VFs above it: %s; lower their MTU first",
		e.PF, e.MTU, strings.Join(e.VFs, ", "))
}

// SetPFMTU sets a PF's MTU. It never lowers it below the MTU of one of its
// VFs (in this namespace): it returns an *MTUInUseError naming them.
func (h *Host) SetPFMTU(pfAddr string, mtu int) error {
	dir := h.pciDevDir(pfAddr)
	name := firstEntry(filepath.Join(dir, "net"))
	if name == "" {
		return stepErr(pfAddr, fmt.Sprintf("set MTU %d", mtu), fmt.Errorf("%w: the PF has no netdev", ErrNotFound))
	}
	link, err := h.nl.LinkByName(name)
	if err != nil {
		return stepErr(name, "find link", err)
	}
	cur := link.Attrs().MTU
	if cur == mtu {
		return nil
	}
	if mtu < cur {
		var above []string
		for _, vf := range h.virtfns(dir) {
			vdir := h.pciDevDir(vf)
			nd := firstEntry(filepath.Join(vdir, "net"))
			if nd == "" {
				continue
			}
			if m := readInt(filepath.Join(vdir, "net", nd, "mtu"), 0); m > mtu {
				above = append(above, fmt.Sprintf("%s (mtu %d)", nd, m))
			}
		}
		if len(above) > 0 {
			sort.Strings(above)
			return &MTUInUseError{PF: name, MTU: mtu, VFs: above}
		}
	}
	if err := h.nl.LinkSetMTU(link, mtu); err != nil {
		return stepErr(name, fmt.Sprintf("set MTU %d", mtu), err)
	}
	return nil
}

// SetVFMTU sets a VF netdev's MTU; it refuses one above its PF's.
func (h *Host) SetVFMTU(vfAddr string, mtu int) error {
	dir := h.pciDevDir(vfAddr)
	name := firstEntry(filepath.Join(dir, "net"))
	if name == "" {
		return stepErr(vfAddr, fmt.Sprintf("set MTU %d", mtu), fmt.Errorf("%w: the VF has no netdev in this namespace", ErrNotFound))
	}
	pfDir := filepath.Join(dir, "physfn")
	if pfName := firstEntry(filepath.Join(pfDir, "net")); pfName != "" {
		if pfMTU := readInt(filepath.Join(pfDir, "net", pfName, "mtu"), 0); pfMTU > 0 && mtu > pfMTU {
			return stepErr(name, fmt.Sprintf("set MTU %d", mtu), fmt.Errorf("above its PF %s's MTU %d: raise the PF's MTU first", pfName, pfMTU))
		}
	}
	link, err := h.nl.LinkByName(name)
	if err != nil {
		return stepErr(name, "find link", err)
	}
	if link.Attrs().MTU == mtu {
		return nil
	}
	if err := h.nl.LinkSetMTU(link, mtu); err != nil {
		return stepErr(name, fmt.Sprintf("set MTU %d", mtu), err)
	}
	return nil
}
