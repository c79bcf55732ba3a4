package vm

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The first-stage init, run by busybox from the initrd, and the second stage,
// run by the host's /bin/sh after switch_root into the shared root.
var (
	//go:embed init.sh
	stage1Script string
	//go:embed stage2.sh
	stage2Script string
)

// initrdModules are what the first stage needs to mount the host's root
// (9p over virtio) and to make it writable in the guest (overlay).
func initrdModules() []string { return []string{"netfs", "9pnet", "9pnet_virtio", "9p", "overlay"} }

// BusyboxCandidates are where Debian's busybox-static puts its binary.
func busyboxCandidates() []string { return []string{"/bin/busybox", "/usr/bin/busybox"} }

// FindBusybox returns a statically linked busybox on the host.
func FindBusybox() (string, error) {
	for _, p := range busyboxCandidates() {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			static, err := isStatic(p)
			if err != nil {
				return "", err
			}
			if !static {
				return "", fmt.Errorf("%s is dynamically linked; install busybox-static", p)
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("no busybox in %s (install busybox-static)", strings.Join(busyboxCandidates(), " or "))
}

// Initrd builds (or takes from cacheDir) the initrd for kernel k and returns
// its path. The file name carries a hash of everything that goes into it, so
// a changed kernel, busybox or init script gives a new initrd.
func Initrd(cacheDir string, k *Kernel) (string, error) {
	busybox, err := FindBusybox()
	if err != nil {
		return "", err
	}
	md, err := ReadModuleDeps(k.ModulesDir)
	if err != nil {
		return "", err
	}
	mods, err := md.LoadOrder(initrdModules()...)
	if err != nil {
		return "", fmt.Errorf("kernel %s: %w", k.Version, err)
	}

	h := sha256.New()
	fmt.Fprintf(h, "kernel %s\n", k.Version)
	inputs := append([]string{busybox}, prefixAll(k.ModulesDir, mods)...)
	for _, p := range inputs {
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "file %s\n", p)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	fmt.Fprintf(h, "stage1 %s\nstage2 %s\n", stage1Script, stage2Script)
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	out := filepath.Join(cacheDir, "initrd-"+sum+".cpio.gz")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}

	var names []string
	files := map[string][]byte{}
	for _, m := range mods {
		data, err := readModule(busybox, filepath.Join(k.ModulesDir, m))
		if err != nil {
			return "", err
		}
		name := ModuleName(m) + ".ko"
		names = append(names, name)
		files["modules/"+name] = data
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return "", err
	}

	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	cw := newCpioWriter(zw)
	for _, d := range []string{"bin", "dev", "proc", "sys", "modules", "lower", "rw", "newroot"} {
		cw.dir(d)
	}
	cw.charDev("dev/console", 5, 1)
	cw.file("bin/busybox", 0o755, bb)
	cw.file("init", 0o755, []byte(stage1Script))
	cw.file("stage2", 0o755, []byte(stage2Script))
	cw.file("modules/order", 0o644, []byte(strings.Join(names, "\n")+"\n"))
	for _, n := range names {
		cw.file("modules/"+n, 0o644, files["modules/"+n])
	}
	if err := cw.close(); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(cacheDir, ".initrd-*")
	if err != nil {
		return "", err
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return out, nil
}

func prefixAll(dir string, rel []string) []string {
	out := make([]string, len(rel))
	for i, r := range rel {
		out[i] = filepath.Join(dir, r)
	}
	return out
}

// readModule returns a module's uncompressed bytes: busybox's insmod hands
// the file to init_module as is, so the initrd carries plain .ko files.
func readModule(busybox, path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.gz"):
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return io.ReadAll(zr)
	case strings.HasSuffix(path, ".ko.xz"):
		var out, errb bytes.Buffer
		cmd := exec.Command(busybox, "xzcat", path)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("busybox xzcat %s: %w: %s", path, err, errb.String())
		}
		return out.Bytes(), nil
	default:
		return nil, fmt.Errorf("%s: unsupported module compression", path)
	}
}

// cpioWriter writes the "newc" format the kernel unpacks into its initramfs.
type cpioWriter struct {
	w    io.Writer
	ino  int
	err  error
	size int64
}

func newCpioWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: w, ino: 1} }

func (c *cpioWriter) header(name string, mode uint32, size int) { c.headerDev(name, mode, size, 0, 0) }

func (c *cpioWriter) headerDev(name string, mode uint32, size int, rdevMajor, rdevMinor int) {
	if c.err != nil {
		return
	}
	c.ino++
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad()
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.size += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.size % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) dir(name string) { c.header(name, 0o040755, 0) }

// charDev adds a character device node.
func (c *cpioWriter) charDev(name string, major, minor int) {
	c.headerDev(name, 0o020600, 0, major, minor)
}

func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	c.header(name, 0o100000|perm, len(data))
	c.write(data)
	c.pad()
}

func (c *cpioWriter) close() error {
	c.header("TRAILER!!!", 0, 0)
	return c.err
}
