package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SetNumVFs gives the PF exactly n VFs and waits until they are usable:
// every VF exists and, when it is bound to a network driver, has its
// netdev. The kernel only changes a non-zero VF count through 0, so going
// from N to M destroys all VFs first; the caller must have drained users.
//
// It is idempotent: n equal to the current count changes nothing (those
// VFs may be in pods, with their netdevs in other namespaces). It is
// crash-safe: stopped half-way, the PF has 0 VFs, the old count or the new
// one, and the next call finishes the job.
func (h *Host) SetNumVFs(ctx context.Context, pfAddr string, n int) error {
	dir := h.pciDevDir(pfAddr)
	total := readInt(filepath.Join(dir, "sriov_totalvfs"), -1)
	if total < 0 {
		return stepErr(pfAddr, "read sriov_totalvfs", fmt.Errorf("%w: not an SR-IOV capable PCI function", ErrNotFound))
	}
	if n < 0 || n > total {
		return stepErr(pfAddr, fmt.Sprintf("set %d VFs", n), fmt.Errorf("the PF supports 0 to %d VFs (sriov_totalvfs)", total))
	}
	attr := filepath.Join(dir, "sriov_numvfs")
	cur := readInt(attr, 0)
	if cur == n {
		return nil
	}
	if cur != 0 {
		if err := h.w.WriteAttr(attr, "0"); err != nil {
			return stepErr(pfAddr, "write sriov_numvfs=0 (before changing from "+strconv.Itoa(cur)+")", err)
		}
		if err := h.waitFor(ctx, pfAddr, "VFs to be removed", func() (bool, string) {
			left := len(h.virtfns(dir))
			return left == 0, fmt.Sprintf("%d VFs still present", left)
		}); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	if err := h.w.WriteAttr(attr, strconv.Itoa(n)); err != nil {
		return stepErr(pfAddr, "write sriov_numvfs="+strconv.Itoa(n), err)
	}
	return h.waitFor(ctx, pfAddr, fmt.Sprintf("%d VFs with their netdevs", n), func() (bool, string) {
		return h.vfsReady(dir, n)
	})
}

// vfsReady reports whether the PF has n VFs, each bound to a driver that
// is done probing: a network driver's VF has its netdev. A VF with no
// driver (autoprobe off) or on vfio-pci has nothing more to wait for.
func (h *Host) vfsReady(pfDir string, n int) (bool, string) {
	vfs := h.virtfns(pfDir)
	if len(vfs) != n {
		return false, fmt.Sprintf("%d of %d VFs present", len(vfs), n)
	}
	var missing []string
	for idx, addr := range vfs {
		d := h.pciDevDir(addr)
		drv := linkBase(filepath.Join(d, "driver"))
		if drv == "" || drv == VfioPci {
			continue
		}
		if firstEntry(filepath.Join(d, "net")) == "" {
			missing = append(missing, fmt.Sprintf("vf %d (%s)", idx, addr))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return false, "no netdev yet for " + strings.Join(missing, ", ")
	}
	return true, ""
}

// virtfns maps VF index to VF PCI address.
func (h *Host) virtfns(pfDir string) map[int]string {
	out := map[int]string{}
	for _, e := range dirNames(pfDir) {
		s, ok := strings.CutPrefix(e, "virtfn")
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(s); err == nil {
			out[i] = linkBase(filepath.Join(pfDir, e))
		}
	}
	return out
}

// waitFor polls cond with a backoff (from h.poll, doubling up to 100ms)
// until it holds, the settle timeout passes or ctx ends. The error names
// the device, what was awaited and what was still missing.
func (h *Host) waitFor(ctx context.Context, dev, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(h.settle)
	delay := h.poll
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return stepErr(dev, "wait for "+what, fmt.Errorf("%w after %s: %s", ErrTimeout, h.settle, why))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return stepErr(dev, "wait for "+what, fmt.Errorf("%w: %s", ctx.Err(), why))
		case <-t.C:
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// ErrTimeout is returned (wrapped) when the kernel did not settle in time.
var ErrTimeout = errors.New("timed out")

// VfioPci is the driver that hands a VF to user space.
const VfioPci = "vfio-pci"
