package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
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
	sriovAlias := fs.Bool("sriov-alias", false, "also serve NetworkAttachmentDefinitions of \"type\": \"sriov\" (sriov-cni's): a symbolic link <dest-dir>/"+sriovAliasName+
		" to the plugin, made only when no other "+sriovAliasName+" plugin is there (one is never replaced); without this flag such a link is removed")
	return func(context.Context) error {
		return installCNI(*src, *destDir, *name, *sriovAlias, os.Stdout)
	}
}

// sriovAliasName is sriov-cni's binary name, the "type" of its
// NetworkAttachmentDefinitions.
const sriovAliasName = "sriov"

// installCNI installs src as destDir/name, then makes or removes the
// sriov alias (sriovAlias); what it did is written to w.
func installCNI(src, destDir, name string, sriovAlias bool, w io.Writer) error {
	dst := filepath.Join(destDir, name)
	if err := installFile(src, dst); err != nil {
		return err
	}
	fmt.Fprintf(w, "installed %s\n", dst)
	return syncSriovAlias(destDir, name, sriovAlias, w)
}

// syncSriovAlias makes destDir/sriov a symbolic link to the plugin (name,
// relative, so it holds on the host) when on, and removes such a link
// when off. Anything else called sriov is another plugin (sriov-cni) and
// is left alone: replacing it would hand the VFs of the pods it attached
// to a plugin that has no record of them. That is said on w, not an
// error, so that the node agent still starts.
func syncSriovAlias(destDir, name string, on bool, w io.Writer) error {
	alias := filepath.Join(destDir, sriovAliasName)
	target, err := os.Readlink(alias)
	exists := err == nil || !errors.Is(err, fs.ErrNotExist)
	ours := err == nil && target == name
	switch {
	case on && ours:
		fmt.Fprintf(w, "%s already runs %s\n", alias, name)
	case on && !exists:
		if err := os.Symlink(name, alias); err != nil {
			return fmt.Errorf("--sriov-alias: link %s to %s: %w", alias, name, err)
		}
		fmt.Fprintf(w, "installed %s -> %s: NetworkAttachmentDefinitions of type %q run %s\n", alias, name, sriovAliasName, name)
	case on:
		what := "a file"
		if err == nil {
			what = "a link to " + target
		}
		fmt.Fprintf(w, "WARNING: --sriov-alias: not installing %s: it is %s, another plugin (sriov-cni?), which is never replaced; "+
			"NetworkAttachmentDefinitions of type %q keep running it. Remove it once no pod it attached runs on this node, then restart this pod\n", alias, what, sriovAliasName)
	case ours:
		if err := os.Remove(alias); err != nil {
			return fmt.Errorf("remove %s (--sriov-alias is off): %w", alias, err)
		}
		fmt.Fprintf(w, "removed %s -> %s: --sriov-alias is off\n", alias, name)
	}
	return nil
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
