package agent

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// sweepRecords deals with the attachment records that cannot be parsed. A
// record whose VF is back in the host namespace (or gone) held nothing: it
// is quarantined, under the VF's lock so that no ADD races it. The others
// keep their VF held, by a pod the agent cannot name (attachmentUsage),
// and are reported until a person removes them.
func (s *syncRun) sweepRecords() {
	r := s.r
	if r.attachments.Root() == "" {
		return
	}
	_, bad, err := r.attachments.List()
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("read the CNI attachment records: %w", err))
		return
	}
	held := 0
	for _, u := range bad {
		if _, vf := s.snap.VFByAddress(u.PCIAddress); vf != nil && vf.Netdev == "" {
			held++
			s.event(corev1.EventTypeWarning, "UnreadableAttachmentRecord", "Hold",
				fmt.Sprintf("VF %s stays held: its attachment record %s cannot be parsed (%v) and its netdev is not in the host namespace, so a pod may use it; if none does, delete the file", u.PCIAddress, u.Path, u.Err))
			continue
		}
		to, err := s.quarantine(u)
		if err != nil {
			held++
			s.errs = append(s.errs, err)
			continue
		}
		if to != "" {
			s.event(corev1.EventTypeWarning, "AttachmentRecordQuarantined", "Quarantine",
				fmt.Sprintf("the attachment record of VF %s could not be parsed (%v) and the VF is in the host namespace, attached to nothing: moved it to %s", u.PCIAddress, u.Err, to))
		}
	}
	r.metrics.unreadable(held)
}

// quarantine moves u aside with the VF locked, if it is still unreadable
// then ("" when a CNI command replaced or removed it meanwhile).
func (s *syncRun) quarantine(u nodefiles.Unreadable) (string, error) {
	l, err := nodefiles.LockVF(s.r.lockDir, u.PCIAddress, s.r.lockTimeout)
	if err != nil {
		return "", fmt.Errorf("quarantine the unreadable attachment record %s: %w", u.Path, err)
	}
	defer l.Unlock()
	var bad *nodefiles.UnreadableError
	if _, _, err := s.r.attachments.Get(u.PCIAddress); !errors.As(err, &bad) {
		return "", nil
	}
	return s.r.attachments.Quarantine(u.PCIAddress, s.r.now())
}
