package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The probe suite (test/node/guest/probe) proves the node's capabilities.
// Its host side opens a TCP echo server the guest dials through 10.0.2.2,
// hands it an executable through the run directory, and checks the file it
// writes back.
func probeSuite() Suite {
	return Suite{
		Name:  "probe",
		PFs:   2,
		IOMMU: true,
		First: true,
		Setup: func(t *testing.T, h *Host) {
			l, guestAddr := h.Listen(t)
			go serveEcho(l)
			h.Setenv("SLUICE_PROBE_ECHO", guestAddr)

			tool := h.Path("probe-tool")
			if err := os.WriteFile(tool, []byte("#!/bin/sh\necho probe tool ok\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			h.Setenv("SLUICE_PROBE_TOOL", tool)
		},
		Check: func(t *testing.T, h *Host) {
			if h.GuestResult("TestOutDir") != "pass" {
				t.Skipf("guest TestOutDir: %q", h.GuestResult("TestOutDir"))
			}
			b, err := os.ReadFile(filepath.Join(h.OutDir(), "probe-result.json"))
			if err != nil {
				t.Fatalf("the guest's result file did not reach the host: %v", err)
			}
			var res map[string]string
			if err := json.Unmarshal(b, &res); err != nil || res["kernel"] == "" {
				t.Fatalf("probe-result.json: %v: %s", err, b)
			}
		},
	}
}

// serveEcho answers each line with "echo: <line>" until the listener closes.
func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Fprintf(c, "echo: %s\n", strings.TrimSpace(sc.Text()))
			}
		}()
	}
}
