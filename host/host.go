package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jaypipes/ghw/pkg/pci"
	"github.com/jaypipes/pcidb"
)

// Paths are the roots of the node's pseudo file systems.
type Paths struct {
	// Sys is where sysfs is mounted, "/sys" on a node.
	Sys string
	// Dev is where devtmpfs is mounted, "/dev" on a node.
	Dev string
}

// NodePaths are the paths of a real node.
func NodePaths() Paths { return Paths{Sys: "/sys", Dev: "/dev"} }

// Host reads and configures one node's SR-IOV NICs and RDMA devices.
// It is safe for concurrent use; configuration calls on the same PF must be
// serialised by the caller (the agent applies one PF at a time).
type Host struct {
	paths Paths
	nl    Netlink
	w     AttrWriter

	// settle bounds every wait for the kernel (VFs and netdevs appearing,
	// drivers binding); poll is the first interval of the backoff.
	settle time.Duration
	poll   time.Duration

	// pciInfo decodes PCI identities (ghw); its database loads on first use.
	pciInfo func() *pci.Info
}

// Option configures a Host.
type Option func(*Host)

// WithNetlink replaces the netlink implementation (tests use hosttest's fake).
func WithNetlink(nl Netlink) Option { return func(h *Host) { h.nl = nl } }

// WithAttrWriter replaces how sysfs attributes are written (tests use a fake
// kernel that reacts to the writes as the real one does).
func WithAttrWriter(w AttrWriter) Option { return func(h *Host) { h.w = w } }

// WithSettleTimeout bounds how long configuration waits for the kernel.
func WithSettleTimeout(d time.Duration) Option { return func(h *Host) { h.settle = d } }

// WithPCIIDs sets the pci.ids database used for vendor and device names; an
// empty path disables names. On a node (NodePaths) the default is the
// system database; on other roots names are off unless set here.
func WithPCIIDs(path string) Option {
	return func(h *Host) { h.pciInfo = loadPCIInfo(path) }
}

// New returns a Host over the given roots. Without options it talks to the
// kernel through netlink in the caller's network namespace.
func New(paths Paths, opts ...Option) *Host {
	h := &Host{
		paths:   paths,
		settle:  30 * time.Second,
		poll:    2 * time.Millisecond,
		pciInfo: loadPCIInfo(""),
	}
	if paths == NodePaths() {
		h.pciInfo = loadPCIInfo(systemPCIIDs)
	}
	for _, o := range opts {
		o(h)
	}
	if h.nl == nil {
		h.nl = newKernelNetlink()
	}
	if h.w == nil {
		h.w = fileWriter{}
	}
	return h
}

// Paths returns the roots the Host works on.
func (h *Host) Paths() Paths { return h.paths }

// DevPath maps a device path as a container sees it ("/dev/infiniband/uverbs0")
// to the path on this Host's /dev root.
func (h *Host) DevPath(p string) string {
	return filepath.Join(h.paths.Dev, strings.TrimPrefix(p, "/dev"))
}

const systemPCIIDs = "/usr/share/misc/pci.ids"

// loadPCIInfo returns a function building ghw's PCI decoder once, with the
// PCI ID database at path. A missing database is not an error: names stay
// empty.
func loadPCIInfo(path string) func() *pci.Info {
	return sync.OnceValue(func() *pci.Info {
		var db *pcidb.PCIDB
		if path != "" {
			if _, err := os.Stat(path); err == nil {
				db, _ = pcidb.New(pcidb.WithPath(path))
			}
		}
		return newPCIInfo(db)
	})
}

// StepError is a failed configuration or discovery step: which device, which
// step, and the cause.
type StepError struct {
	// Device is a PCI address or netdev name.
	Device string
	// Step says what was being done, e.g. "write sriov_numvfs=4".
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("%s: %s: %v", e.Device, e.Step, e.Err) }

func (e *StepError) Unwrap() error { return e.Err }

func stepErr(dev, step string, err error) error {
	return &StepError{Device: dev, Step: step, Err: err}
}

// ErrNotFound is returned (wrapped) when a device does not exist.
var ErrNotFound = errors.New("not found")
