package plugin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"
)

// vfLock is an exclusive flock on one VF's lock file. The kernel drops it
// when the process exits, so a crashed command never leaves a VF locked.
// Lock files are never removed: removing a flocked file races with the
// next locker opening it.
type vfLock struct{ f *os.File }

// lockVF takes the VF's lock, waiting up to timeout for another command
// on the same VF; past it the error is "try again later" (code 11) naming
// the process that holds it.
func lockVF(dir, pci string, timeout time.Duration) (*vfLock, error) {
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
			return nil, types.NewError(types.ErrTryAgainLater,
				fmt.Sprintf("VF %s is busy: another sluice-cni command (pid %s) holds %s; try again later", pci, strings.TrimSpace(string(holder)), path), "")
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
	// Say who holds it, for the error of the next one waiting.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &vfLock{f: f}, nil
}

func (l *vfLock) unlock() {
	_ = l.f.Close() // closing the last descriptor releases the flock
}
