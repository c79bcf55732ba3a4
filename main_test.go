package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsageAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "device-plugin") {
		t.Errorf("no command: code %d, stderr %q", code, errb.String())
	}
	for _, c := range commands() {
		out.Reset()
		errb.Reset()
		if code := run([]string{c.name, "--help"}, &out, &errb); code != 0 {
			t.Errorf("%s --help: code %d", c.name, code)
		}
		if !strings.Contains(errb.String(), "Usage: sluice "+c.name) {
			t.Errorf("%s --help printed %q", c.name, errb.String())
		}
	}
	errb.Reset()
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: code %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"version", "extra"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unexpected arguments") {
		t.Errorf("stray argument: code %d, %q", code, errb.String())
	}
}

func TestInstallCNI(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "sluice-cni")
	if err := os.WriteFile(src, []byte("v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "host", "opt", "cni", "bin")
	var out, errb bytes.Buffer
	if code := run([]string{"install-cni", "--src", src, "--dest-dir", dest}, &out, &errb); code != 0 {
		t.Fatalf("install-cni: %d %s", code, errb.String())
	}
	if err := os.WriteFile(src, []byte("v2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"install-cni", "--src", src, "--dest-dir", dest}, &out, &errb); code != 0 {
		t.Fatalf("second install-cni: %d %s", code, errb.String())
	}
	installed := filepath.Join(dest, "sluice-cni")
	b, err := os.ReadFile(installed)
	st, err2 := os.Stat(installed)
	if err != nil || err2 != nil || string(b) != "v2" || st.Mode().Perm() != 0o755 {
		t.Errorf("installed %q mode %v (%v %v)", b, st.Mode(), err, err2)
	}
	if entries, _ := os.ReadDir(dest); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	errb.Reset()
	if code := run([]string{"install-cni", "--src", filepath.Join(dir, "missing"), "--dest-dir", dest}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "open the plugin to install") {
		t.Errorf("missing source: %d %q", code, errb.String())
	}
}
