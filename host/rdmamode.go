package host

import (
	"errors"
	"fmt"
	"syscall"
)

// SetRDMANetnsMode switches the kernel's RDMA network-namespace mode to
// "shared" or "exclusive". The kernel only switches while no other network
// namespace exists; on a node running pods that is never, so the error
// says how to set the mode at boot instead.
func (h *Host) SetRDMANetnsMode(mode string) error {
	if mode != "shared" && mode != "exclusive" {
		return stepErr("rdma system", "set netns mode", fmt.Errorf("mode must be shared or exclusive, got %q", mode))
	}
	cur, err := h.nl.RdmaSystemGetNetnsMode()
	if err != nil {
		return stepErr("rdma system", "read netns mode", fmt.Errorf("%w (is the RDMA core, ib_core, loaded?)", err))
	}
	if cur == mode {
		return nil
	}
	if err := h.nl.RdmaSystemSetNetnsMode(mode); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			param := "1"
			if mode == "exclusive" {
				param = "0"
			}
			return stepErr("rdma system", "set netns mode "+mode, fmt.Errorf(
				"%w: other network namespaces exist, and the kernel only switches without them; set it at boot with 'options ib_core netns_mode=%s' in /etc/modprobe.d and reboot the node",
				err, param))
		}
		return stepErr("rdma system", "set netns mode "+mode, err)
	}
	return nil
}
