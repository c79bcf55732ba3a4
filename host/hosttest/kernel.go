package hosttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// WriteAttr is the fake kernel: it applies a sysfs write with the rules the
// Linux PCI core applies, and refuses what Linux refuses.
func (n *Node) WriteAttr(path, value string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	rel, err := filepath.Rel(filepath.Join(n.Root, "sys"), path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("hosttest: write outside sysfs: %s", path)
	}
	v := strings.TrimSpace(value)
	n.writes = append(n.writes, rel+"="+v)
	for suffix, ferr := range n.writeFail {
		if strings.HasSuffix(rel, suffix) {
			return &os.PathError{Op: "write", Path: path, Err: ferr}
		}
	}
	fail := func(errno syscall.Errno) error { return &os.PathError{Op: "write", Path: path, Err: errno} }
	p := strings.Split(rel, string(filepath.Separator))
	switch {
	// bus/pci/devices/<addr>/<attr>
	case len(p) == 5 && p[2] == "devices":
		d := n.devs[p[3]]
		if d == nil {
			return fail(syscall.ENOENT)
		}
		switch p[4] {
		case "sriov_numvfs":
			return n.writeNumVFs(p[3], v, fail)
		case "driver_override":
			d.override = v
			shown := v
			if v == "" {
				shown = "(null)"
			}
			must(os.WriteFile(filepath.Join(d.dir, "driver_override"), []byte(shown+"\n"), 0o644))
			return nil
		}
		return fail(syscall.EACCES)
	// bus/pci/devices/<addr>/driver/unbind
	case len(p) == 6 && p[2] == "devices" && p[4] == "driver" && p[5] == "unbind":
		d := n.devs[p[3]]
		if d == nil || d.driver == "" {
			return fail(syscall.ENOENT)
		}
		n.unbind(d)
		return nil
	// bus/pci/drivers/<driver>/{bind,unbind}
	case len(p) == 5 && p[2] == "drivers":
		d := n.devs[v]
		if d == nil {
			return fail(syscall.ENODEV)
		}
		switch p[4] {
		case "unbind":
			if d.driver != p[3] {
				return fail(syscall.ENODEV)
			}
			n.unbind(d)
		case "bind":
			if d.driver != "" {
				return fail(syscall.EBUSY)
			}
			saved := d.override
			d.override = p[3]
			n.probe(d)
			d.override = saved
		}
		return nil
	// bus/pci/drivers_probe
	case len(p) == 3 && p[2] == "drivers_probe":
		d := n.devs[v]
		if d == nil {
			return fail(syscall.ENODEV)
		}
		if d.driver == "" && d.isVF {
			n.probe(d)
		}
		return nil
	}
	return fail(syscall.EACCES)
}

// writeNumVFs follows sriov_numvfs_store: equal is a no-op, a change
// between two non-zero counts is EBUSY, above sriov_totalvfs is ERANGE.
func (n *Node) writeNumVFs(addr, v string, fail func(syscall.Errno) error) error {
	pf := n.pfs[addr]
	if pf == nil {
		return fail(syscall.ENOENT)
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 0 {
		return fail(syscall.EINVAL)
	}
	cur := len(pf.vfs)
	switch {
	case k == cur:
		return nil
	case k > pf.spec.TotalVFs:
		return fail(syscall.ERANGE)
	case k == 0:
		n.destroyVFs(pf)
	case cur != 0:
		return fail(syscall.EBUSY)
	default:
		n.createVFs(pf, k)
	}
	return nil
}
