package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	eventsv1 "k8s.io/api/events/v1"

	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// recordsHarness is twoPFHarness with the CNI's real attachment registry
// as a usage source beside the fake one.
func recordsHarness(t *testing.T) (*harness, nodefiles.Attachments) {
	t.Helper()
	var att nodefiles.Attachments
	h := twoPFHarness(t, func(h *harness) {
		att = nodefiles.NewAttachments(filepath.Join(h.dir, "attachments"))
		h.opts.AttachmentsDir = att.Root()
		h.opts.Usage = multiUsage{h.usage, attachmentUsage{dir: att}}
	})
	return h, att
}

// damage writes a record for vf cut short, as a crash or a bad disk leaves
// it.
func damage(t *testing.T, att nodefiles.Attachments, vf string) string {
	t.Helper()
	path := filepath.Join(att.Root(), vf+".json")
	if err := os.MkdirAll(att.Root(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"pciAddress":"`+vf+`","containerID":"ab`), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (h *harness) events(reason string) []string {
	h.t.Helper()
	var list eventsv1.EventList
	if err := h.env.Client.List(context.Background(), &list); err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Reason == reason && e.Regarding.Name == h.name {
			out = append(out, e.Note)
		}
	}
	return out
}

// TestUnreadableRecordOfAFreeVFIsQuarantined: one damaged attachment
// record made every sync fail (the registry stopped at the first bad file)
// and, in the device plugin, every VF in a pod Unhealthy. Now the sync
// reads the others and, the VF being back in the host namespace, moves the
// file to the quarantine with an event saying where.
func TestUnreadableRecordOfAFreeVFIsQuarantined(t *testing.T) {
	h, att := recordsHarness(t)
	a := h.pod("a", nil)
	if err := att.Put(nodefiles.Record{PCIAddress: h.node.VFAddress(pfB, 0), ContainerID: "c1", IfName: "net1",
		PodNamespace: h.ns, PodName: a.Name, PodUID: a.UID}); err != nil {
		t.Fatal(err)
	}
	vf := h.node.VFAddress(pfA, 1)
	damaged := damage(t, att, vf)
	gen := h.setSpec(twoPFs(6, nil))
	h.synced(sluicev1.SyncSucceeded, gen)
	if _, err := os.Stat(damaged); !os.IsNotExist(err) {
		t.Errorf("damaged record %s still in the registry (%v)", damaged, err)
	}
	q, _ := filepath.Glob(filepath.Join(att.Root(), nodefiles.QuarantineDir, vf+".json.*"))
	if len(q) != 1 {
		t.Errorf("quarantine holds %v, want the damaged record", q)
	}
	h.eventually("an AttachmentRecordQuarantined event", func() error {
		if ev := h.events("AttachmentRecordQuarantined"); len(ev) == 0 || !strings.Contains(ev[0], vf) {
			return fmt.Errorf("events %v", ev)
		}
		return nil
	})
	if n := h.numVFs(pfA); n != 6 {
		t.Errorf("pfA has %d VFs, want 6", n)
	}
}

// TestUnreadableRecordOfAVFInAPodHoldsIt: a damaged record whose VF is not
// in the host namespace may describe a pod using it. A change that would
// destroy that VF waits, without taking a drain slot, and says which file
// to delete; the change on the other PF goes on.
func TestUnreadableRecordOfAVFInAPodHoldsIt(t *testing.T) {
	h, att := recordsHarness(t)
	vf := h.node.VFAddress(pfA, 1)
	h.node.RemoveNetdev(h.node.Netdev(vf)) // in a pod's namespace
	damaged := damage(t, att, vf)
	gen := h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		twoPFs(6, nil)(s)
		s.Interfaces[1].NumVfs = 4
		s.Interfaces[1].VFGroups[0].VFRange = "0-3"
	})
	n := h.waitFor("the change held for the unreadable record", func(n *sluicev1.NodeNetworkState) error {
		d := n.Status.Drain
		if n.Status.ObservedGeneration < gen || d == nil || d.State != sluicev1.DrainWaiting || !strings.Contains(d.Reason, damaged) {
			return fmt.Errorf("generation %d, drain %+v", n.Status.ObservedGeneration, d)
		}
		return nil
	})
	if !strings.Contains(n.Status.Drain.Reason, "delete the files") {
		t.Errorf("drain reason %q does not say what to do", n.Status.Drain.Reason)
	}
	if got := h.numVFs(pfA); got != 4 {
		t.Errorf("pfA has %d VFs: its VFs were destroyed under the unreadable record", got)
	}
	if got := h.numVFs(pfB); got != 4 {
		t.Errorf("pfB has %d VFs, want 4: the other PF's change waited too", got)
	}
	h.noSlotHeld() // no eviction can end this drain
	if _, err := os.Stat(damaged); err != nil {
		t.Errorf("damaged record of a VF that may be in use was moved: %v", err)
	}
	h.eventually("an UnreadableAttachmentRecord event", func() error {
		if ev := h.events("UnreadableAttachmentRecord"); len(ev) == 0 || !strings.Contains(ev[0], damaged) {
			return fmt.Errorf("events %v", ev)
		}
		return nil
	})
	// The person deletes it: the change goes on.
	if err := os.Remove(damaged); err != nil {
		t.Fatal(err)
	}
	h.synced(sluicev1.SyncSucceeded, gen)
	if got := h.numVFs(pfA); got != 6 {
		t.Errorf("pfA has %d VFs after the record went, want 6", got)
	}
}

// TestDeletedPodsVFHeldUntilItsDEL: the pod object is gone (deleted with
// grace period 0) but its VF is still in its namespace, its record there:
// the runtime has not run the CNI DEL yet. A change to the VF's PF waits
// for that DEL, with no eviction and no drain slot, and goes on after it.
// (Changing the PF during the DEL deadlocked igbvf under rtnl.)
func TestDeletedPodsVFHeldUntilItsDEL(t *testing.T) {
	h, att := recordsHarness(t)
	vf := h.node.VFAddress(pfA, 1)
	netdev := h.node.Netdev(vf)
	h.node.RemoveNetdev(netdev) // in the pod's namespace
	if err := att.Put(nodefiles.Record{PCIAddress: vf, ContainerID: "c1", IfName: "net1", Netns: "/var/run/netns/gone",
		PodNamespace: "default", PodName: "deleted-0", PodUID: "u1"}); err != nil {
		t.Fatal(err)
	}
	gen := h.setSpec(func(s *sluicev1.NodeNetworkStateSpec) {
		twoPFs(6, nil)(s)
		s.Interfaces[1].NumVfs = 4
		s.Interfaces[1].VFGroups[0].VFRange = "0-3"
	})
	n := h.waitFor("the change held for the DEL to come", func(n *sluicev1.NodeNetworkState) error {
		d := n.Status.Drain
		if n.Status.ObservedGeneration < gen || d == nil || d.State != sluicev1.DrainWaiting || !strings.Contains(d.Reason, "default/deleted-0") {
			return fmt.Errorf("generation %d, drain %+v", n.Status.ObservedGeneration, d)
		}
		return nil
	})
	if !strings.Contains(n.Status.Drain.Reason, "CNI DEL") {
		t.Errorf("drain reason %q does not say what it waits for", n.Status.Drain.Reason)
	}
	if got := h.numVFs(pfA); got != 4 {
		t.Errorf("pfA has %d VFs: its VFs were destroyed under the VF still in a pod", got)
	}
	h.noSlotHeld() // no eviction can end this drain
	// The DEL: the VF back on the host, the record gone.
	h.node.RestoreNetdev(vf, netdev)
	if err := att.Delete(vf); err != nil {
		t.Fatal(err)
	}
	h.synced(sluicev1.SyncSucceeded, gen)
	if got := h.numVFs(pfA); got != 6 {
		t.Errorf("pfA has %d VFs after the DEL, want 6", got)
	}
}
