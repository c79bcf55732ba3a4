package vm

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestLoadOrder(t *testing.T) {
	dir := t.TempDir()
	dep := `kernel/fs/netfs/netfs.ko.xz:
kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/net/9p/9pnet.ko.xz: kernel/fs/netfs/netfs.ko.xz
kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz kernel/drivers/vfio/vfio.ko.xz
kernel/drivers/vfio/pci/vfio-pci-core.ko.xz: kernel/drivers/vfio/vfio.ko.xz
kernel/drivers/vfio/vfio.ko.xz:
`
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	md, err := ReadModuleDeps(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := md.LoadOrder("9pnet_virtio", "9p", "vfio-pci")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/fs/netfs/netfs.ko.xz", "kernel/net/9p/9pnet.ko.xz", "kernel/net/9p/9pnet_virtio.ko.xz",
		"kernel/fs/9p/9p.ko.xz",
		"kernel/drivers/vfio/vfio.ko.xz", "kernel/drivers/vfio/pci/vfio-pci-core.ko.xz", "kernel/drivers/vfio/pci/vfio-pci.ko.xz",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadOrder:\n got %q\nwant %q", got, want)
	}
	if _, err := md.LoadOrder("nosuch"); err == nil {
		t.Error("LoadOrder(nosuch) succeeded")
	}
}

func TestFindKernel(t *testing.T) {
	boot, mods := t.TempDir(), t.TempDir()
	for _, v := range []string{"6.1.0-40-amd64", "6.12.9+bpo-amd64", "6.12.10+bpo-amd64", "6.18.1-host"} {
		if err := os.WriteFile(filepath.Join(boot, "vmlinuz-"+v), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// 6.18.1-host has no rdma_rxe: the host's own kernel is not a candidate.
	for _, v := range []string{"6.1.0-40-amd64", "6.12.9+bpo-amd64", "6.12.10+bpo-amd64"} {
		p := filepath.Join(mods, v, rxeModule+".xz")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k, err := FindKernel(boot, mods)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.12.10+bpo-amd64" {
		t.Errorf("FindKernel chose %s, want 6.12.10+bpo-amd64", k.Version)
	}
	if _, err := FindKernel(t.TempDir(), mods); err == nil || !strings.Contains(err.Error(), "node-deps.sh") {
		t.Errorf("FindKernel with no images: %v", err)
	}
}

func TestCpioWriter(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("no cpio tool to check the archive with")
	}
	var buf bytes.Buffer
	cw := newCpioWriter(&buf)
	cw.dir("bin")
	cw.charDev("dev/console", 5, 1)
	cw.file("bin/hello", 0o755, []byte("#!/bin/sh\necho hi\n"))
	cw.file("odd", 0o644, []byte("12345"))
	if err := cw.close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-t", "-v", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	for _, want := range []string{"bin", "dev/console", "bin/hello", "odd", "crw-------", "-rwxr-xr-x"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, out)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", `a "b" $c \d`, "new\nline"} {
		out, err := exec.Command("sh", "-c", "printf %s "+ShellQuote(s)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != s {
			t.Errorf("ShellQuote(%q) round trip gave %q", s, out)
		}
	}
}

func TestNodeEnvAndArgs(t *testing.T) {
	opts := Options{PFs: 2, IOMMU: true, Modules: []string{"igb", "igbvf"}, CPUs: 2, MemoryMB: 2048,
		Env: map[string]string{"B": "x y", "A": "it's"}, Kernel: &Kernel{Image: "/boot/vmlinuz-x"},
		KernelArgs: []string{"ib_core.netns_mode=0"},
		HostDirs:   []string{"/work/repo/test/x", "/tmp/clone/test/a", "/tmp/clone/test/a/", "/tmp/clone/test/b"}}
	env := nodeEnv("/cache/runs/1", opts)
	out, err := exec.Command("sh", "-c", env+`printf '%s|%s|%s|%s|%s|%s' "$SLUICE_NODE_RUNDIR" "$SLUICE_NODE_MODULES" "$SLUICE_NODE_PF_COUNT" "$A" "$B" "$SLUICE_NODE_HOST_TMP_DIRS"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	// Only directories under /tmp need binding, each once.
	if got := string(out); got != "/cache/runs/1|igb igbvf|2|it's|x y|/tmp/clone/test/a /tmp/clone/test/b" {
		t.Errorf("node env evaluates to %q", got)
	}
	args := strings.Join(qemuArgs(opts, "/cache/initrd", "/cache/runs/1"), " ")
	for _, want := range []string{
		"-accel tcg,thread=single", "-machine q35", "-device intel-iommu,intremap=off",
		"mount_tag=hostroot,security_model=none,readonly=on", "path=/cache/runs/1,mount_tag=rundir",
		"-device igb,bus=rp1,netdev=pf0", "-device igb,bus=rp2,netdev=pf1",
		"sluice.rundir=/cache/runs/1", "intel_iommu=on iommu=pt", "ib_core.netns_mode=0",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("QEMU arguments lack %q:\n%s", want, args)
		}
	}
	if strings.Index(args, "intel-iommu") > strings.Index(args, "-device igb") {
		t.Error("the IOMMU must come before the igb devices")
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	k := &Kernel{Version: "x", Image: "/nonexistent", ModulesDir: "/nonexistent"}
	for name, o := range map[string]Options{
		"no script":   {Kernel: k, RunDir: "/var/tmp/x"},
		"3 PFs":       {Script: "true", PFs: 3, Kernel: k, RunDir: "/var/tmp/x"},
		"bad env":     {Script: "true", Env: map[string]string{"A-B": "1"}, Kernel: k, RunDir: "/var/tmp/x"},
		"tmp run dir": {Script: "true", Kernel: k, RunDir: "/tmp/sluice-run"},
		"comma":       {Script: "true", Kernel: k, RunDir: "/var/tmp/a,b"},
	} {
		if _, err := Run(t.Context(), o); err == nil {
			t.Errorf("%s: Run succeeded", name)
		}
	}
	for _, d := range []string{"test/node", "/tmp/a b"} {
		_, err := Run(t.Context(), Options{Script: "true", Kernel: k, RunDir: "/var/tmp/x", HostDirs: []string{d}})
		if err == nil || !strings.Contains(err.Error(), "host directory") {
			t.Errorf("host directory %q: Run gave %v, want an error naming the host directory", d, err)
		}
	}
}

// TestInitrd builds the real initrd when the guest kernel is installed and
// checks that it is cached and holds init, busybox and the modules.
func TestInitrd(t *testing.T) {
	k, err := FindKernel("", "")
	if err != nil {
		t.Skip(err)
	}
	if _, err := FindBusybox(); err != nil {
		t.Skip(err)
	}
	cache := t.TempDir()
	p1, err := Initrd(cache, k)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Initrd(cache, k)
	if err != nil || p2 != p1 {
		t.Fatalf("second Initrd: %s, %v (want cached %s)", p2, err, p1)
	}
	f, err := os.Open(p1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	names := cpioNames(t, raw)
	for _, want := range []string{"init", "stage2", "bin/busybox", "dev/console", "modules/order", "modules/9p.ko", "modules/overlay.ko"} {
		if !names[want] {
			t.Errorf("initrd lacks %s (has %v)", want, names)
		}
	}
}

// cpioNames lists a newc archive's entries.
func cpioNames(t *testing.T, b []byte) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for off := 0; off+110 <= len(b); {
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("bad cpio magic at %d", off)
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
		size, nameLen := field(6), field(11)
		name := string(b[off+110 : off+110+nameLen-1])
		if name == "TRAILER!!!" {
			break
		}
		names[name] = true
		off = align4(off + 110 + nameLen)
		off = align4(off + size)
	}
	return names
}

func align4(n int) int { return (n + 3) &^ 3 }
