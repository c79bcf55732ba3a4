package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// installCNICommand binds the flags of 'sluice install-cni': the node
// DaemonSet's init container copies the CNI plugin onto the host with it,
// so the image needs no shell.
func installCNICommand(fs *flag.FlagSet) func(ctx context.Context) error {
	src := fs.String("src", "/usr/local/bin/sluice-cni", "the CNI plugin binary in the image")
	destDir := fs.String("dest-dir", "/host/opt/cni/bin", "the host's CNI bin directory, as mounted")
	name := fs.String("name", "sluice-cni", "file name of the plugin on the host (the NAD config's \"type\")")
	return func(context.Context) error {
		dst := filepath.Join(*destDir, *name)
		if err := installFile(*src, dst); err != nil {
			return err
		}
		fmt.Printf("installed %s\n", dst)
		return nil
	}
}

// installFile copies src to dst through a temporary file in dst's
// directory and a rename: a runtime starting the plugin meanwhile runs the
// old or the new binary, never half of one, and a running old binary does
// not make the copy fail with "text file busy".
func installFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open the plugin to install: %w", err)
	}
	defer in.Close()
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("install into %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	return nil
}
