package nodefiles

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrVFBusy is returned by LockVF when another process keeps the VF's lock
// past the wait.
var ErrVFBusy = errors.New("VF is busy")

// VFLock is an exclusive flock on one VF's lock file. Every CNI command on
// the VF holds it, and so does the agent while it changes the VF. The
// kernel drops it when the process exits, so a crashed holder never leaves
// a VF locked. Lock files are never removed: removing a flocked file races
// with the next locker opening it.
type VFLock struct{ f *os.File }

// LockVF takes the VF's lock in dir, waiting up to timeout for its holder;
// past it the error wraps ErrVFBusy and names the holder's pid, which each
// holder writes into the file.
func LockVF(dir, pci string, timeout time.Duration) (*VFLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create lock directory: %w", err)
	}
	path := filepath.Join(dir, pci+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open VF lock: %w", err)
	}
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			holder, _ := os.ReadFile(path)
			f.Close()
			return nil, fmt.Errorf("%w: %s: process %s holds %s", ErrVFBusy, pci, strings.TrimSpace(string(holder)), path)
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
	// Say who holds it, for the error of the next one waiting.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &VFLock{f: f}, nil
}

// Unlock releases the lock.
func (l *VFLock) Unlock() {
	_ = l.f.Close() // closing the last descriptor releases the flock
}
