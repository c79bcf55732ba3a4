// Command image builds a container image as an OCI image-layout archive
// without a container engine (go-containerregistry), for containerd's
// `ctr images import`: one layer of the given host files, an entrypoint and
// a user. `make image` builds sluice's image with it from the binaries
// `make build` makes, with the Dockerfile's contents and entrypoint; the
// real-cluster node builds its pause and test-pod images the same way.
//
//	go run ./hack/image -out sluice.tar -name ghcr.io/sluice-net/sluice:v0.1.0 \
//	    -add /usr/local/bin/sluice=bin/sluice -add /usr/local/bin/sluice-cni=bin/sluice-cni \
//	    -passwd -entrypoint /usr/local/bin/sluice -user 0:0
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var names, adds, links, envs multi
	out := flag.String("out", "", "the OCI image-layout archive to write (required)")
	flag.Var(&names, "name", "image reference to record (repeatable; the first is also the ref.name tag)")
	flag.Var(&adds, "add", "DEST=SRC: a host file (or directory, recursively) at DEST in the image (repeatable)")
	flag.Var(&links, "symlink", "DEST=TARGET: a symbolic link in the image (repeatable)")
	flag.Var(&envs, "env", "KEY=VALUE in the image's environment (repeatable)")
	libs := flag.Bool("libs", false, "also add the shared libraries each added ELF executable needs (ldd), at their host paths")
	passwd := flag.Bool("passwd", false, "add /etc/passwd and /etc/group with root and distroless's nonroot (65532), and /tmp")
	entrypoint := flag.String("entrypoint", "", "the entrypoint, words separated by spaces")
	user := flag.String("user", "", "the image's user (e.g. 0:0)")
	flag.Parse()
	if err := run(*out, names, adds, links, envs, *libs, *passwd, *entrypoint, *user); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// entry is one file of the layer.
type entry struct {
	src  string // host file; empty for directories and links
	link string // symlink target
	dir  bool
	mode int64
	data []byte // inline content
}

func run(out string, names, adds, links, envs []string, libs, passwd bool, entrypoint, user string) error {
	if out == "" || len(names) == 0 {
		return errors.New("-out and at least one -name are required")
	}
	files := map[string]*entry{}
	for _, a := range adds {
		dst, src, ok := strings.Cut(a, "=")
		if !ok || !path.IsAbs(dst) {
			return fmt.Errorf("-add %q: want /DEST=SRC", a)
		}
		if err := addHost(files, dst, src); err != nil {
			return err
		}
	}
	if libs {
		for dst, e := range maps.Clone(files) {
			if e.src == "" || e.mode&0o111 == 0 {
				continue
			}
			deps, err := sharedLibs(e.src)
			if err != nil {
				return fmt.Errorf("-libs %s: %w", dst, err)
			}
			for _, d := range deps {
				if _, ok := files[d]; !ok {
					if err := addHost(files, d, d); err != nil {
						return err
					}
				}
			}
		}
	}
	for _, l := range links {
		dst, target, ok := strings.Cut(l, "=")
		if !ok || !path.IsAbs(dst) {
			return fmt.Errorf("-symlink %q: want /DEST=TARGET", l)
		}
		files[dst] = &entry{link: target}
	}
	if passwd {
		files["/etc/passwd"] = &entry{mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")}
		files["/etc/group"] = &entry{mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")}
		files["/tmp"] = &entry{dir: true, mode: 0o1777}
		files["/home/nonroot"] = &entry{dir: true, mode: 0o700}
	}
	layerTar, err := tarLayer(files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	if entrypoint != "" {
		cf.Config.Entrypoint = strings.Fields(entrypoint)
	}
	cf.Config.User = user
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, envs...)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "sluice-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	for _, n := range names {
		tag := n
		if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
			tag = n[i+1:]
		}
		if err := lp.AppendImage(img,
			layout.WithAnnotations(map[string]string{
				// containerd names the imported image after this annotation.
				"io.containerd.image.name":          n,
				"org.opencontainers.image.ref.name": tag,
			}),
			layout.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH})); err != nil {
			return err
		}
	}
	return tarDir(dir, out)
}

// addHost adds the host file or directory src at dst, following symlinks
// of the top path (so a library's versioned name is stored as a file).
func addHost(files map[string]*entry, dst, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		files[dst] = &entry{src: src, mode: int64(st.Mode().Perm())}
		return nil
	}
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		d := path.Join(dst, filepath.ToSlash(rel))
		switch {
		case info.IsDir():
			files[d] = &entry{dir: true, mode: int64(info.Mode().Perm())}
		case info.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			files[d] = &entry{link: t}
		case info.Mode().IsRegular():
			files[d] = &entry{src: p, mode: int64(info.Mode().Perm())}
		}
		return nil
	})
}

// sharedLibs lists the libraries (and the dynamic loader) an ELF file
// needs, as ldd resolves them on this host; nothing for a static file.
func sharedLibs(file string) ([]string, error) {
	out, err := exec.Command("ldd", file).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") || strings.Contains(string(out), "statically linked") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd: %w: %s", err, out)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for i, w := range f {
			if path.IsAbs(w) && (i == 0 || (i >= 2 && f[i-1] == "=>")) {
				libs = append(libs, w)
			}
		}
	}
	return libs, nil
}

// tarLayer writes the entries, with every parent directory, in path order
// and with zero timestamps so that the same inputs give the same layer.
func tarLayer(files map[string]*entry) ([]byte, error) {
	for p := range maps.Clone(files) {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			if _, ok := files[d]; !ok {
				files[d] = &entry{dir: true, mode: 0o755}
			}
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, p := range paths {
		e := files[p]
		h := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
		var body []byte
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		case e.data != nil:
			h.Typeflag, body = tar.TypeReg, e.data
		default:
			b, err := os.ReadFile(e.src)
			if err != nil {
				return nil, err
			}
			h.Typeflag, body = tar.TypeReg, b
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDir writes the image layout directory dir as the archive out.
func tarDir(dir, out string) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			_, err = io.Copy(tw, in)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}
