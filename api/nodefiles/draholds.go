package nodefiles

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"time"
)

// The claim checkpoints' per-VF index, for the programs that must not
// list every checkpoint (the CNI runs once per pod): one small JSON file
// per VF a claim holds, named by the VF's PCI address, in the holds
// directory under the checkpoints' (<claims dir>/vfs/<pci>.json). A VF
// with a hold file is held by the DRA claim it names, for every program:
// the CNI refuses it on ADD, the agent counts it as in use.
//
// The DRA driver keeps the rule "a hold file exists whenever a
// checkpoint holds its VF":
//
//   - Prepare writes the holds of the claim's VFs, under their VF locks,
//     before the checkpoint (which is before it changes any VF).
//   - Unprepare, and the rollback of a failed or interrupted Prepare,
//     remove them after the checkpoint, once the VFs are restored.
//
// A crash between the two writes leaves a hold without a checkpoint,
// holding a VF that nothing changed: the driver's start removes every
// hold whose claim has no checkpoint (an unreadable checkpoint of the
// claim counts as one: what it holds is unknown), and writes the holds of
// the checkpoints that lack them (checkpoints of older drivers). A reader
// that finds a hold it cannot parse treats the VF as held. Readers need
// no lock to read a hold; the CNI reads it under the VF's lock, which
// Prepare holds while it writes the hold, so a Prepare and an ADD of the
// same VF never both proceed.

// DRAHoldsDir is the holds' directory under the checkpoints' directory.
const DRAHoldsDir = "vfs"

// DRAHold says that a claim holds a VF.
type DRAHold struct {
	PCIAddress string    `json:"pciAddress"`
	ClaimUID   string    `json:"claimUID"`
	Namespace  string    `json:"namespace"`
	Name       string    `json:"name"`
	Created    time.Time `json:"created"`
}

// Claim is the claim's "namespace/name".
func (h DRAHold) Claim() string { return h.Namespace + "/" + h.Name }

// pciRE is what a hold's file name may hold: a PCI address (domain:bus:
// device.function), nothing that walks out of the directory.
var pciRE = regexp.MustCompile(`^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)

func checkPCI(pci string) error {
	if !pciRE.MatchString(pci) {
		return fmt.Errorf("%q is not a PCI address (dddd:bb:dd.f)", pci)
	}
	return nil
}

// HoldsDir is the holds' directory.
func (d DRAClaims) HoldsDir() string { return filepath.Join(d.root, DRAHoldsDir) }

func (d DRAClaims) holdPath(pci string) string { return filepath.Join(d.HoldsDir(), pci+".json") }

// PutHold writes a VF's hold atomically.
func (d DRAClaims) PutHold(h DRAHold) error {
	if err := checkPCI(h.PCIAddress); err != nil {
		return fmt.Errorf("DRA hold: %w", err)
	}
	if err := checkUID(h.ClaimUID); err != nil {
		return fmt.Errorf("DRA hold of VF %s: %w", h.PCIAddress, err)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encode the DRA hold of VF %s: %w", h.PCIAddress, err)
	}
	if err := WriteFileAtomic(d.holdPath(h.PCIAddress), b); err != nil {
		return fmt.Errorf("DRA hold of VF %s: %w", h.PCIAddress, err)
	}
	return nil
}

// Hold returns the hold of a VF: one open, one read. ok is false when no
// claim holds it; an unparsable hold is an *UnreadableError (the VF is
// held all the same).
func (d DRAClaims) Hold(pci string) (h DRAHold, ok bool, err error) {
	if err := checkPCI(pci); err != nil {
		return DRAHold{}, false, fmt.Errorf("DRA hold: %w", err)
	}
	if ok, err = ReadJSON(d.holdPath(pci), &h); err != nil || !ok {
		return DRAHold{}, false, wrap("DRA hold of VF "+pci, err)
	}
	return h, true, nil
}

// DeleteHold removes the hold of VF pci if claim uid is its holder (or
// the hold cannot be parsed); a missing hold, or another claim's, is left
// as it is and not an error.
func (d DRAClaims) DeleteHold(pci, uid string) error {
	h, ok, err := d.Hold(pci)
	var u *UnreadableError
	switch {
	case errors.As(err, &u):
	case err != nil:
		return err
	case !ok, h.ClaimUID != uid:
		return nil
	}
	return wrap("DRA hold of VF "+pci, RemoveFile(d.holdPath(pci)))
}

// Holds returns every hold, sorted by PCI address, and apart from them
// the files that cannot be parsed (Unreadable, as for attachment records:
// their VF is held by a claim no one can name). An absent directory has
// none.
func (d DRAClaims) Holds() (holds []DRAHold, bad []Unreadable, err error) {
	notPCI := func(pci string) error {
		if checkPCI(pci) != nil {
			return errors.New("the file name is not a PCI address")
		}
		return nil
	}
	return listByPCI(d.HoldsDir(), "DRA holds", notPCI, d.Hold, func(h DRAHold) string { return h.PCIAddress })
}

// RemoveHoldFile removes a hold whatever it says (the driver's start-up
// clean-up of holds without a checkpoint, and of unparsable ones).
func (d DRAClaims) RemoveHoldFile(pci string) error {
	if err := checkPCI(pci); err != nil {
		return fmt.Errorf("DRA hold: %w", err)
	}
	return wrap("DRA hold of VF "+pci, RemoveFile(d.holdPath(pci)))
}
