package plugin

import (
	"errors"
	"os"
	"time"

	"github.com/sluice-net/sluice/api/nodefiles"
)

// waitForHolder waits, up to p.HolderWait, while VF pci is attached to
// another container whose network namespace still exists, and returns
// once it is not (or the wait is over: ADD's check under the VF's lock
// then refuses the VF as before).
//
// The kubelet frees a pod's devices when the pod object is gone, and that
// can come before the runtime tears the pod's sandbox down (a deletion
// with grace period 0, a force delete): the next pod is then given a VF
// whose DEL is still to come. Refused at once, its sandbox waits for the
// kubelet's retry back-off (tens of seconds, doubling); waited for, it
// starts as soon as the DEL gave the VF back. Nothing is held while
// waiting, so that DEL can take the VF's lock.
func (p *Plugin) waitForHolder(att nodefiles.Attachments, pci, containerID string) {
	deadline := time.Now().Add(p.HolderWait)
	delay := 50 * time.Millisecond
	logged := false
	for {
		rec, ok, err := att.Get(pci)
		if err != nil || !ok || rec.ContainerID == containerID || !netnsExists(rec.Netns) {
			return
		}
		if time.Now().After(deadline) {
			return
		}
		if !logged {
			p.logf("VF %s is still attached to pod %s (container %s): waiting up to %s for its DEL", pci, rec.Pod(), rec.ContainerID, p.HolderWait)
			logged = true
		}
		time.Sleep(delay)
		delay = min(2*delay, time.Second)
	}
}

// netnsExists reports whether a record's network namespace is still there;
// a record without one counts as live.
func netnsExists(path string) bool {
	if path == "" {
		return true
	}
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
