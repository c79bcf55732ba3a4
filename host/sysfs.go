package host

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Small readers for sysfs attributes. A missing attribute reads as empty or
// the given default: sysfs differs between kernels and drivers, and a
// discovery must not fail because one optional file is absent.
//
// They use open/read/close and getdents directly: sysfs attributes are
// tiny, and os.File's fstat, poller registration and finalizer cost more
// than the read itself, which matters at a thousand VFs per discovery.

func readAttr(path string) string {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	var buf [256]byte
	n, err := syscall.Read(fd, buf[:])
	syscall.Close(fd)
	if err != nil || n <= 0 {
		return ""
	}
	return strings.TrimSpace(string(buf[:n]))
}

func readInt(path string, def int) int {
	s := readAttr(path)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}

// readHexID reads a "0x15b3" attribute as "15b3".
func readHexID(path string) string {
	return strings.ToLower(strings.TrimPrefix(readAttr(path), "0x"))
}

// linkBase is the last element of a symlink's target ("mlx5_core" for a
// driver link), empty when it is not a link.
func linkBase(path string) string {
	t, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// dirNames lists a directory's entries (unsorted), nil if it cannot.
func dirNames(dir string) []string {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	var names []string
	var buf [8192]byte
	for {
		n, err := syscall.Getdents(fd, buf[:])
		if err != nil || n <= 0 {
			return names
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
}

// firstEntry is the first directory entry's name, empty if none.
func firstEntry(dir string) string {
	names := dirNames(dir)
	if len(names) == 0 {
		return ""
	}
	if len(names) > 1 {
		sort.Strings(names)
	}
	return names[0]
}

// readDirNames lists a directory's entries, sorted.
func readDirNames(dir string) ([]string, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	names := dirNames(dir)
	sort.Strings(names)
	return names, nil
}

// exists reports whether path exists (following links).
func exists(path string) bool {
	var st syscall.Stat_t
	return syscall.Stat(path, &st) == nil
}

func (h *Host) pciDevDir(addr string) string {
	return filepath.Join(h.paths.Sys, "bus", "pci", "devices", addr)
}

// pcieRoot is the PCIe root complex ("pci0000:3a") a PCI device sits
// under: the element of its /sys/devices path that its bus link
// (/sys/bus/pci/devices/<address>) resolves through; empty when the link
// does not resolve into a root complex.
func pcieRoot(busLink string) string {
	t, err := os.Readlink(busLink)
	if err != nil {
		return ""
	}
	for _, e := range strings.Split(filepath.ToSlash(t), "/") {
		if strings.HasPrefix(e, "pci") && strings.Contains(e, ":") {
			return e
		}
	}
	return ""
}
