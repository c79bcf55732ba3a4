package dra

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// The holds (nodefiles.DRAHold): the checkpoints' per-VF index, which the
// CNI and the agent read to tell a VF a claim holds. A hold exists
// whenever a checkpoint holds its VF: Prepare writes the holds before the
// checkpoint, and release removes them after it; loadClaims repairs what
// a crash between the two left (syncHolds).

// putHolds writes the holds of cl's VFs, whose locks the caller holds.
// On failure it removes those it wrote.
func (d *Driver) putHolds(cl nodefiles.DRAClaim) error {
	now := time.Now().UTC()
	for _, cd := range cl.Devices {
		h := nodefiles.DRAHold{PCIAddress: cd.PCIAddress, ClaimUID: cl.UID, Namespace: cl.Namespace, Name: cl.Name, Created: now}
		if err := d.claims.store.PutHold(h); err != nil {
			if rerr := d.removeHolds(cl); rerr != nil {
				d.log.Error(rerr, "remove the holds of a claim whose Prepare failed; the driver's next start removes them", "claim", cl.Namespace+"/"+cl.Name)
			}
			return fmt.Errorf("device %s: %w", cd.Device, err)
		}
	}
	return nil
}

// removeHolds removes the holds of cl's VFs that name cl: call it once
// its checkpoint is gone.
func (d *Driver) removeHolds(cl nodefiles.DRAClaim) error {
	var errs []error
	for _, cd := range cl.Devices {
		errs = append(errs, d.claims.store.DeleteHold(cd.PCIAddress, cl.UID))
	}
	return errors.Join(errs...)
}

// dropCheckpoint undoes a checkpoint write that failed (the file may be
// there all the same: a rename done, its directory's sync failed), then
// the holds written before it, and returns err with what failed.
func (d *Driver) dropCheckpoint(cl nodefiles.DRAClaim, err error) error {
	if derr := d.claims.store.Delete(cl.UID); derr != nil {
		return fmt.Errorf("%w; removing the checkpoint failed too, so the claim's holds stay: %v", err, derr)
	}
	if herr := d.removeHolds(cl); herr != nil {
		return fmt.Errorf("%w; removing its VFs' holds failed too: %v", err, herr)
	}
	return err
}

// checkHolds refuses VFs that a hold of another claim names: one whose
// checkpoint cannot be read (its holds still say which VFs it holds), or
// an unreadable hold.
func (d *Driver) checkHolds(uid types.UID, devs []*device) error {
	for _, dv := range devs {
		h, ok, err := d.claims.store.Hold(dv.dev.PCIAddress)
		var unreadable *nodefiles.UnreadableError
		switch {
		case errors.As(err, &unreadable):
			return fmt.Errorf("device %s: VF %s has an unreadable DRA hold %s, so a claim may hold it: if no claim does, delete the file", dv.result.Device, dv.dev.PCIAddress, unreadable.Path)
		case err != nil:
			return fmt.Errorf("device %s: %w", dv.result.Device, err)
		case ok && h.ClaimUID != string(uid):
			return fmt.Errorf("device %s: VF %s is held by claim %s (uid %s), whose checkpoint was not loaded (unreadable?): it stays held until that claim is unprepared", dv.result.Device, dv.dev.PCIAddress, h.Claim(), h.ClaimUID)
		}
	}
	return nil
}

// removeHoldsOf removes every hold naming claim uid: the clean-up of a
// checkpoint that could not be read, whose VFs are unknown but for them.
func (d *Driver) removeHoldsOf(uid string) error {
	holds, _, err := d.claims.store.Holds()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range holds {
		if h.ClaimUID == uid {
			errs = append(errs, d.claims.store.DeleteHold(h.PCIAddress, uid))
		}
	}
	return errors.Join(errs...)
}

// syncHolds makes the holds match the loaded checkpoints at start: it
// writes the missing holds of the claims that hold VFs (a checkpoint of a
// driver before holds), and removes the holds no checkpoint backs (a
// crash between a hold's and a checkpoint's write or removal) and the
// unparsable ones. Holds naming a claim whose checkpoint cannot be read
// (unreadable) stay: its VFs are held, and they say which.
func (d *Driver) syncHolds(unreadable []nodefiles.UnreadableClaim) {
	want := map[string]nodefiles.DRAClaim{}
	for _, cl := range d.claims.holders() {
		for _, cd := range cl.Devices {
			want[cd.PCIAddress] = cl
		}
	}
	keep := map[string]bool{}
	for _, u := range unreadable {
		keep[u.UID] = true
	}
	holds, bad, err := d.claims.store.Holds()
	if err != nil {
		d.log.Error(err, "cannot read the DRA holds: left as they are")
		return
	}
	have := map[string]bool{}
	for _, h := range holds {
		cl, ok := want[h.PCIAddress]
		switch {
		case ok && cl.UID == h.ClaimUID:
			have[h.PCIAddress] = true
		case ok:
			d.log.Error(nil, "VF is held by two claims: the checkpoint of one and the hold of the other; left as it is", "pci", h.PCIAddress,
				"checkpoint", cl.Namespace+"/"+cl.Name, "hold", h.Claim(), "holdUID", h.ClaimUID)
			have[h.PCIAddress] = true
		case keep[h.ClaimUID]:
		default:
			d.log.Info("removing a DRA hold without a checkpoint (a crash between the two)", "pci", h.PCIAddress, "claim", h.Claim(), "uid", h.ClaimUID)
			if err := d.claims.store.RemoveHoldFile(h.PCIAddress); err != nil {
				d.log.Error(err, "cannot remove a DRA hold without a checkpoint: the VF stays held", "pci", h.PCIAddress)
			}
		}
	}
	for _, u := range bad {
		if _, ok := want[u.PCIAddress]; ok || len(keep) > 0 {
			continue // rewritten below, or perhaps an unreadable checkpoint's
		}
		d.log.Error(u.Err, "removing an unreadable DRA hold that no checkpoint backs", "path", u.Path)
		if err := d.claims.store.RemoveHoldFile(u.PCIAddress); err != nil {
			d.log.Error(err, "cannot remove an unreadable DRA hold: the VF stays held", "path", u.Path)
		}
	}
	for pci, cl := range want {
		if have[pci] {
			continue
		}
		h := nodefiles.DRAHold{PCIAddress: pci, ClaimUID: cl.UID, Namespace: cl.Namespace, Name: cl.Name, Created: time.Now().UTC()}
		if err := d.claims.store.PutHold(h); err != nil {
			d.log.Error(err, "cannot write the hold of a claim's VF: sluice-cni and the agent do not see the VF held", "pci", pci, "claim", h.Claim())
		}
	}
}
