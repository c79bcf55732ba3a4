package vm

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kernel is a guest kernel on the host: its image and its modules, which the
// guest reads through the shared root (bind-mounted at
// /lib/modules/<Version> when they live elsewhere, as a fetched kernel's do).
type Kernel struct {
	Version    string // e.g. 6.12.95+deb12-amd64
	Image      string // /boot/vmlinuz-<Version>, or <dir>/vmlinuz of a fetched kernel
	ModulesDir string // /lib/modules/<Version>, or <dir>/lib/modules/<Version>
	// Why says why this kernel was chosen, for the harness's log.
	Why string
}

// NamespacedRDMA reports whether soft-RoCE carries RDMA between network
// namespaces on this kernel: from 7.x on (measured: 6.12 fails, 7.2 works;
// see docs/emulated-node.md).
func (k *Kernel) NamespacedRDMA() bool {
	n := versionNums(k.Version)
	return len(n) > 0 && n[0] >= 7
}

// KernelCacheDir is where hack/guest-kernel.sh extracts fetched kernels:
// <SLUICE_CACHE>/kernel.
func KernelCacheDir() string { return filepath.Join(filepath.Dir(DefaultCacheDir()), "kernel") }

// FetchedKernels returns the complete kernels hack/guest-kernel.sh
// extracted under dir (each <dir>/<version>/{vmlinuz,lib/modules/<version>}
// with a .complete marker), oldest first.
func FetchedKernels(dir string) []*Kernel {
	marks, _ := filepath.Glob(filepath.Join(dir, "*", ".complete"))
	var out []*Kernel
	for _, m := range marks {
		kdir := filepath.Dir(m)
		ver := filepath.Base(kdir)
		k := &Kernel{Version: ver, Image: filepath.Join(kdir, "vmlinuz"), ModulesDir: filepath.Join(kdir, "lib", "modules", ver)}
		if _, err := os.Stat(k.Image); err != nil {
			continue
		}
		if matches, _ := filepath.Glob(filepath.Join(k.ModulesDir, rxeModule+"*")); len(matches) == 0 {
			continue
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return versionLess(out[i].Version, out[j].Version) })
	return out
}

// ChooseKernel picks the guest kernel, and says why in Kernel.Why:
// SLUICE_NODE_KERNEL (a version, or "boot" for /boot's newest) when set;
// else the newest kernel fetched into KernelCacheDir (a 7.x kernel, on
// which soft-RoCE works between network namespaces); else /boot's newest
// kernel with rdma_rxe (6.12 from bookworm-backports), on which it does not.
func ChooseKernel() (*Kernel, error) {
	fetched := FetchedKernels(KernelCacheDir())
	want := os.Getenv("SLUICE_NODE_KERNEL")
	switch want {
	case "":
	case "boot":
		k, err := FindKernel("", "")
		if err != nil {
			return nil, err
		}
		k.Why = "SLUICE_NODE_KERNEL=boot: /boot's newest kernel with rdma_rxe"
		return k, nil
	default:
		for _, k := range fetched {
			if k.Version == want {
				k.Why = "SLUICE_NODE_KERNEL=" + want
				return k, nil
			}
		}
		if k, err := FindKernel("", ""); err == nil && k.Version == want {
			k.Why = "SLUICE_NODE_KERNEL=" + want
			return k, nil
		}
		return nil, fmt.Errorf("SLUICE_NODE_KERNEL=%s: no such kernel in %s or /boot (fetch one with GUEST_KERNEL=%s hack/guest-kernel.sh, or unset it)", want, KernelCacheDir(), want)
	}
	if len(fetched) > 0 {
		k := fetched[len(fetched)-1]
		k.Why = "newest kernel fetched by hack/guest-kernel.sh into " + KernelCacheDir()
		if k.NamespacedRDMA() {
			k.Why += " (soft-RoCE works between network namespaces from 7.x)"
		}
		return k, nil
	}
	k, err := FindKernel("", "")
	if err != nil {
		return nil, err
	}
	k.Why = "no kernel fetched into " + KernelCacheDir() + " (hack/guest-kernel.sh): /boot's newest with rdma_rxe, on which soft-RoCE cannot carry RDMA between network namespaces"
	return k, nil
}

// rxeModule is the module whose presence tells a guest-capable kernel apart
// from the host's own (which has no RDMA stack).
const rxeModule = "kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko"

// FindKernel returns the newest kernel under bootDir (normally /boot) whose
// modules under modRoot (normally /lib/modules) include rdma_rxe. An empty
// bootDir or modRoot means the default.
func FindKernel(bootDir, modRoot string) (*Kernel, error) {
	if bootDir == "" {
		bootDir = "/boot"
	}
	if modRoot == "" {
		modRoot = "/lib/modules"
	}
	images, err := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
	if err != nil {
		return nil, err
	}
	var found []*Kernel
	var rejected []string
	for _, img := range images {
		ver := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		k := &Kernel{Version: ver, Image: img, ModulesDir: filepath.Join(modRoot, ver)}
		if matches, _ := filepath.Glob(filepath.Join(k.ModulesDir, rxeModule+"*")); len(matches) == 0 {
			rejected = append(rejected, ver+" (no rdma_rxe module)")
			continue
		}
		f, err := os.Open(img)
		if err != nil {
			rejected = append(rejected, fmt.Sprintf("%s (image not readable: %v)", ver, err))
			continue
		}
		f.Close()
		found = append(found, k)
	}
	if len(found) == 0 {
		msg := fmt.Sprintf("no kernel with rdma_rxe under %s/vmlinuz-* and %s (install linux-image-amd64 from bookworm-backports: hack/node-deps.sh)", bootDir, modRoot)
		if len(rejected) > 0 {
			msg += "; rejected: " + strings.Join(rejected, ", ")
		}
		return nil, fmt.Errorf("%s", msg)
	}
	sort.Slice(found, func(i, j int) bool { return versionLess(found[i].Version, found[j].Version) })
	return found[len(found)-1], nil
}

// versionLess orders kernel versions by their numeric dotted prefix, then
// lexically.
func versionLess(a, b string) bool {
	na, nb := versionNums(a), versionNums(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		if na[i] != nb[i] {
			return na[i] < nb[i]
		}
	}
	if len(na) != len(nb) {
		return len(na) < len(nb)
	}
	return a < b
}

func versionNums(v string) []int {
	var out []int
	n, digits := 0, false
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9':
			n, digits = n*10+int(c-'0'), true
		case c == '.' && digits:
			out = append(out, n)
			n, digits = 0, false
		default:
			if digits {
				out = append(out, n)
			}
			return out
		}
	}
	if digits {
		out = append(out, n)
	}
	return out
}

// ModuleDeps maps a module's path relative to the modules directory (as in
// modules.dep) to the paths of the modules it depends on.
type ModuleDeps struct {
	deps   map[string][]string
	byName map[string]string
}

// ReadModuleDeps parses <modulesDir>/modules.dep.
func ReadModuleDeps(modulesDir string) (*ModuleDeps, error) {
	f, err := os.Open(filepath.Join(modulesDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	md := &ModuleDeps{deps: map[string][]string{}, byName: map[string]string{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		md.deps[mod] = strings.Fields(rest)
		md.byName[ModuleName(mod)] = mod
	}
	return md, sc.Err()
}

// ModuleName turns kernel/fs/9p/9p.ko.xz into 9p (dashes become
// underscores, as modprobe does).
func ModuleName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// LoadOrder returns the module paths to insert, dependencies first, so that
// all of names are loaded. Each module appears once.
func (md *ModuleDeps) LoadOrder(names ...string) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	var visit func(path string)
	visit = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		deps := md.deps[path]
		// modules.dep lists the deepest dependency last: load from the end.
		for i := len(deps) - 1; i >= 0; i-- {
			visit(deps[i])
		}
		order = append(order, path)
	}
	for _, n := range names {
		path, ok := md.byName[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			return nil, fmt.Errorf("module %s not in modules.dep", n)
		}
		visit(path)
	}
	return order, nil
}
