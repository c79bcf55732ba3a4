package vm

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// GuestTools are the host commands the guest's init and the probe suite use
// through the shared root.
func GuestTools() []string {
	return []string{"ip", "rdma", "modprobe", "ping", "ibv_devices", "ib_write_bw", "rping", "tee"}
}

// Available reports what is missing to boot the emulated node on this host,
// or nil when everything is there: QEMU with the igb device, a kernel with
// rdma_rxe and the 9p modules, busybox-static and the guest tools. Run
// hack/node-deps.sh (as root) to install what is missing.
func Available() error {
	var missing []string
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		missing = append(missing, "qemu-system-x86_64 not on PATH (qemu-system-x86 from bookworm-backports)")
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, qemu, "-device", "help").CombinedOutput()
		cancel()
		switch {
		case err != nil:
			missing = append(missing, fmt.Sprintf("%s -device help: %v", qemu, err))
		case !bytes.Contains(out, []byte(`"igb"`)):
			missing = append(missing, qemu+" has no igb device (needs QEMU >= 8: qemu-system-x86 from bookworm-backports)")
		}
	}
	if k, err := ChooseKernel(); err != nil {
		missing = append(missing, err.Error())
	} else if md, err := ReadModuleDeps(k.ModulesDir); err != nil {
		missing = append(missing, fmt.Sprintf("kernel %s: %v", k.Version, err))
	} else if _, err := md.LoadOrder(initrdModules()...); err != nil {
		missing = append(missing, fmt.Sprintf("kernel %s: %v", k.Version, err))
	}
	if _, err := FindBusybox(); err != nil {
		missing = append(missing, err.Error())
	}
	var tools []string
	for _, t := range GuestTools() {
		if _, err := exec.LookPath(t); err != nil {
			tools = append(tools, t)
		}
	}
	if len(tools) > 0 {
		missing = append(missing, "guest tools not on PATH: "+strings.Join(tools, " ")+
			" (iproute2 kmod iputils-ping ibverbs-utils perftest rdmacm-utils)")
	}
	if len(missing) == 0 {
		return nil
	}
	return errors.New("emulated node unavailable: " + strings.Join(missing, "; "))
}

// EnsureDeps makes the host able to boot the node: as root it runs the
// given dependency installer (hack/node-deps.sh, idempotent) and then checks
// Available; otherwise it only checks, and the error says that root is
// needed to install what is missing.
func EnsureDeps(ctx context.Context, installer string) error {
	if os.Geteuid() == 0 {
		cmd := exec.CommandContext(ctx, installer)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w\n%s", installer, err, out.String())
		}
		return Available()
	}
	if err := Available(); err != nil {
		return fmt.Errorf("%w (not root, so %s cannot install it)", err, installer)
	}
	return nil
}

// isStatic reports whether the ELF file at path has no program interpreter.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}
