package nodefiles

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sluice-net/sluice/host"
)

// The DRA driver's claim checkpoints: one JSON file per ResourceClaim it
// prepares, named by the claim's UID. Prepare writes it, in state
// DRAClaimPreparing, before it changes any VF, and marks it
// DRAClaimPrepared once every VF is configured and the claim's CDI spec is
// written; Unprepare restores the VFs from it and removes it last. A
// checkpoint holds its VFs: no other claim, and no CNI attachment, gets
// them while it exists; the holds (draholds.go) say so per VF to the
// programs that must not list the checkpoints. The files live under /run like the attachment
// records: a reboot recreates the VFs with their defaults and must also
// forget the claims, so that the kubelet's next Prepare configures them
// again.

// DefaultDRAClaimsDir holds the checkpoints.
const DefaultDRAClaimsDir = RunDir + "/dra/claims"

// Checkpoint states.
const (
	// DRAClaimPreparing: Prepare may have changed some of the VFs and has
	// not answered. A driver that finds it at start puts the VFs back and
	// removes the checkpoint: the kubelet prepares the claim again.
	DRAClaimPreparing = "Preparing"
	// DRAClaimPrepared: Prepare answered with the recorded CDI devices.
	DRAClaimPrepared = "Prepared"
)

// DRAClaim is the checkpoint of one claim.
type DRAClaim struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	State     string `json:"state"`
	// CDISpec is the claim's CDI spec file.
	CDISpec string           `json:"cdiSpec,omitempty"`
	Devices []DRAClaimDevice `json:"devices"`
	Created time.Time        `json:"created"`
	// PodUIDs are the pods the claim is reserved for at Prepare
	// (status.reservedFor, resource "pods"): the sandboxes whose creation
	// moves the claim's VFs in. Absent in checkpoints of older agents.
	PodUIDs []string `json:"podUIDs,omitempty"`
}

// DRA attachment states.
const (
	// DRAAttachmentAttaching: the attachment is recorded and the VF may
	// be on its way into the pod. A driver that finds it without the
	// event running gives the VF back.
	DRAAttachmentAttaching = "Attaching"
	// DRAAttachmentAttached: the VF is in the pod.
	DRAAttachmentAttached = "Attached"
)

// DRAAttachment is what moving a claim's VF into a pod's network
// namespace did, written before each change, so that the VF can be given
// back after a crash at any point.
type DRAAttachment struct {
	State string `json:"state"`
	// PodUID, PodNamespace, PodName and SandboxID name the pod sandbox;
	// Netns is its network namespace.
	PodUID       string `json:"podUID"`
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
	SandboxID    string `json:"sandboxID"`
	Netns        string `json:"netns"`
	// IfName is the VF's interface name in the pod.
	IfName string `json:"ifName"`
	// Original is the VF netdev in the host namespace before the move:
	// its name, MAC, MTU and state come back.
	Original host.NetdevState `json:"original"`
	// MAC is the VF's MAC in the pod.
	MAC string `json:"mac,omitempty"`
	// RDMADevice is the RDMA device moved with it (exclusive RDMA mode).
	RDMADevice string `json:"rdmaDevice,omitempty"`
	// IPAMType and IPAMNetwork are the IPAM plugin run and the network
	// name it was given, for its DEL; IPs the addresses it returned
	// (CIDRs).
	IPAMType    string    `json:"ipamType,omitempty"`
	IPAMNetwork string    `json:"ipamNetwork,omitempty"`
	IPs         []string  `json:"ips,omitempty"`
	Created     time.Time `json:"created"`
}

// DRAClaimDevice is one VF of a claim.
type DRAClaimDevice struct {
	// Request is the claim's request (or request/subrequest) it serves;
	// Pool and Device name it in the ResourceSlices.
	Request string `json:"request"`
	Pool    string `json:"pool"`
	Device  string `json:"device"`
	// PCIAddress, PFName and VFIndex locate the VF.
	PCIAddress string `json:"pciAddress"`
	PFName     string `json:"pfName"`
	VFIndex    int    `json:"vfIndex"`
	// Original are the VF's PF-side settings before Prepare; Applied is
	// what Prepare set (nil fields untouched).
	Original host.VFSettings `json:"original"`
	Applied  host.VFConfig   `json:"applied"`
	// Config is the claim configuration that applied to the device
	// (dradevice.ClaimConfig): its ifName, mtu and ipam apply when the VF
	// moves into the pod.
	Config json.RawMessage `json:"config,omitempty"`
	// CDIDeviceIDs are the CDI devices Prepare returned for it.
	CDIDeviceIDs []string `json:"cdiDeviceIDs,omitempty"`
	// RDMADevice is the VF's RDMA device when its pool hands RDMA out:
	// in exclusive RDMA mode it moves into the pod with the netdev.
	RDMADevice string `json:"rdmaDevice,omitempty"`
	// Attachment is set while the VF is (being) moved into a pod.
	Attachment *DRAAttachment `json:"attachment,omitempty"`
}

// DRAClaims is a checkpoint directory.
type DRAClaims struct{ root string }

// NewDRAClaims returns the checkpoints in dir.
func NewDRAClaims(dir string) DRAClaims { return DRAClaims{root: dir} }

// Root is the checkpoints' directory.
func (d DRAClaims) Root() string { return d.root }

// uidRE is what a claim UID (a UUID from the API server) may hold: it
// names files, so nothing that walks out of the directory. At most 128
// characters, checked apart: a bounded repetition ({0,127}) compiles into
// a program of 128 copies, which every process linking this package (the
// CNI, once per pod) would build at its start.
var uidRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]*$`)

func checkUID(uid string) error {
	if len(uid) > 128 || !uidRE.MatchString(uid) {
		return fmt.Errorf("claim UID %q is not a UID (letters, digits and '-')", uid)
	}
	return nil
}

func (d DRAClaims) path(uid string) string { return filepath.Join(d.root, uid+".json") }

// Put writes a claim's checkpoint atomically.
func (d DRAClaims) Put(c DRAClaim) error {
	if err := checkUID(c.UID); err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode the checkpoint of claim %s: %w", c.UID, err)
	}
	if err := WriteFileAtomic(d.path(c.UID), b); err != nil {
		return fmt.Errorf("checkpoint of claim %s: %w", c.UID, err)
	}
	return nil
}

// Get returns a claim's checkpoint; ok is false when there is none.
func (d DRAClaims) Get(uid string) (c DRAClaim, ok bool, err error) {
	if err := checkUID(uid); err != nil {
		return DRAClaim{}, false, err
	}
	if ok, err = ReadJSON(d.path(uid), &c); err != nil || !ok {
		return DRAClaim{}, false, wrap("checkpoint of claim "+uid, err)
	}
	return c, true, nil
}

// Delete removes a claim's checkpoint; a missing one is not an error.
func (d DRAClaims) Delete(uid string) error {
	if err := checkUID(uid); err != nil {
		return err
	}
	return wrap("checkpoint of claim "+uid, RemoveFile(d.path(uid)))
}

// UnreadableClaim is a checkpoint that cannot be parsed.
type UnreadableClaim struct {
	UID  string
	Path string
	Err  error
}

// List returns every checkpoint, sorted by UID, and apart from them the
// files that cannot be parsed. An absent directory has none.
func (d DRAClaims) List() (claims []DRAClaim, bad []UnreadableClaim, err error) {
	names, err := JSONNames(d.root)
	if err != nil {
		return nil, nil, fmt.Errorf("DRA claim checkpoints: %w", err)
	}
	for _, n := range names {
		uid := strings.TrimSuffix(n, ".json")
		c, ok, err := d.Get(uid)
		var u *UnreadableError
		switch {
		case errors.As(err, &u):
			bad = append(bad, UnreadableClaim{UID: uid, Path: u.Path, Err: u.Err})
		case err != nil && checkUID(uid) != nil:
			bad = append(bad, UnreadableClaim{UID: uid, Path: filepath.Join(d.root, n), Err: err})
		case err != nil:
			return nil, nil, err
		case ok:
			claims = append(claims, c)
		}
	}
	sort.Slice(claims, func(i, j int) bool { return claims[i].UID < claims[j].UID })
	return claims, bad, nil
}

// RemoveTemporaries deletes the temporary files of writes a crash
// interrupted (WriteFileAtomic's hidden .<name>.json.* files), of
// checkpoints and of holds: the file they were to replace, if any, is
// still whole.
func (d DRAClaims) RemoveTemporaries() error {
	var errs []error
	for _, dir := range []string{d.root, d.HoldsDir()} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", dir, err))
			continue
		}
		for _, e := range entries {
			if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".json.") {
				errs = append(errs, RemoveFile(filepath.Join(dir, n)))
			}
		}
	}
	return errors.Join(errs...)
}
