// Package standin is a stand-in node for testing the CNI plugin on a
// machine without SR-IOV: its VFs' netdevs are real links (veth ends) in
// the caller's network namespace, named like VF netdevs and found by their
// alias, which holds the VF's PCI address (alias survives renames and
// namespace moves, as a PCI parent does). The PF side (VF settings, RDMA
// netns mode and device locations) lives in a JSON file, so the plugin
// run as a separate process (the stand-in binary) sees the same node as
// the test.
package standin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
)

// State is the stand-in node.
type State struct {
	// RDMAMode is "shared" (the default) or "exclusive".
	RDMAMode string `json:"rdmaMode,omitempty"`
	// HostNetns identifies the host namespace (see NetnsID).
	HostNetns string `json:"hostNetns"`
	// VFs by PCI address.
	VFs map[string]*VF `json:"vfs"`
	// SoftRoCE are the soft-RoCE devices created, by name.
	SoftRoCE map[string]*SoftRoCEDevice `json:"softRoCE,omitempty"`
	// Fail makes a method ("VF", "ConfigureVF", "MoveRDMADevice",
	// "AddSoftRoCE") fail with the given message.
	Fail map[string]string `json:"fail,omitempty"`
}

// SoftRoCEDevice is a stand-in soft-RoCE device.
type SoftRoCEDevice struct {
	Netdev      string   `json:"netdev"`
	Netns       string   `json:"netns"`
	CharDevices []string `json:"charDevices"`
}

// VF is one stand-in VF.
type VF struct {
	PFName    string          `json:"pfName"`
	PFAddress string          `json:"pfAddress"`
	Index     int             `json:"index"`
	Driver    string          `json:"driver"`
	Settings  host.VFSettings `json:"settings"`
	// RDMA is the VF's RDMA device, RDMANetns the namespace it is in.
	RDMA      string `json:"rdma,omitempty"`
	RDMANetns string `json:"rdmaNetns,omitempty"`
}

// Node is a stand-in node backed by a state file.
type Node struct{ path string }

// Open returns the node whose state is in path.
func Open(path string) *Node { return &Node{path: path} }

// Path is the state file.
func (n *Node) Path() string { return n.path }

// Read returns the node's state.
func (n *Node) Read() (State, error) {
	var s State
	b, err := os.ReadFile(n.path)
	if err != nil {
		return s, fmt.Errorf("stand-in node: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("stand-in node %s: %w", n.path, err)
	}
	return s, nil
}

// Update changes the state under an exclusive lock (processes share it).
func (n *Node) Update(f func(*State) error) error {
	lf, err := os.OpenFile(n.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	s, err := n.Read()
	if errors.Is(err, os.ErrNotExist) {
		s, err = State{VFs: map[string]*VF{}}, nil
	}
	if err != nil {
		return err
	}
	if err := f(&s); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return nodefiles.WriteFileAtomic(n.path, b)
}

// NetnsID identifies a namespace by its nsfs device and inode.
func NetnsID(ns *host.Netns) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &st); err != nil {
		return "", err
	}
	return strconv.FormatUint(st.Dev, 10) + ":" + strconv.FormatUint(st.Ino, 10), nil
}

func (s *State) failed(method string) error {
	if msg := s.Fail[method]; msg != "" {
		return errors.New(msg)
	}
	return nil
}

// VF looks the VF up; its netdev is the link in the calling thread's
// namespace whose alias is the PCI address.
func (n *Node) VF(addr string) (*host.VF, error) {
	s, err := n.Read()
	if err != nil {
		return nil, err
	}
	if err := s.failed("VF"); err != nil {
		return nil, err
	}
	v := s.VFs[addr]
	if v == nil {
		return nil, &host.StepError{Device: addr, Step: "look up VF", Err: fmt.Errorf("%w: no PCI function %s on this node", host.ErrNotFound, addr)}
	}
	vf := &host.VF{Index: v.Index, PCIAddress: addr, PFAddress: v.PFAddress, PFName: v.PFName, Driver: v.Driver, Settings: v.Settings, NUMANode: -1}
	if v.Driver != host.VfioPci {
		links, err := netlink.LinkList()
		for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 5; try++ {
			links, err = netlink.LinkList()
		}
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			if l.Attrs().Alias == addr {
				vf.Netdev = l.Attrs().Name
				vf.MAC, vf.MTU, vf.Up = l.Attrs().HardwareAddr.String(), l.Attrs().MTU, l.Attrs().RawFlags&unix.IFF_UP != 0
			}
		}
	}
	if v.RDMA != "" && v.RDMANetns == s.HostNetns {
		vf.RDMA = &host.RDMADevice{Name: v.RDMA, Netdev: vf.Netdev}
	}
	return vf, nil
}

// ConfigureVFFrom is ConfigureVF: the stand-in has no PF to read.
func (n *Node) ConfigureVFFrom(vf *host.VF, cfg host.VFConfig) error {
	return n.ConfigureVF(vf.PFName, vf.Index, cfg)
}

// ConfigureVF applies cfg to the VF, all or nothing.
func (n *Node) ConfigureVF(pfName string, idx int, cfg host.VFConfig) error {
	return n.Update(func(s *State) error {
		if err := s.failed("ConfigureVF"); err != nil {
			return err
		}
		var v *VF
		for _, c := range s.VFs {
			if c.PFName == pfName && c.Index == idx {
				v = c
			}
		}
		if v == nil {
			return &host.StepError{Device: pfName, Step: fmt.Sprintf("configure vf %d", idx), Err: host.ErrNotFound}
		}
		next := v.Settings
		if cfg.Trust != nil {
			next.Trust = *cfg.Trust
		}
		if cfg.MAC != nil {
			next.MAC = *cfg.MAC
		}
		if cfg.VLAN != nil {
			if *cfg.VLAN < 0 || *cfg.VLAN > 4095 || cfg.QoS < 0 || cfg.QoS > 7 {
				return syscall.EINVAL
			}
			next.VLAN, next.QoS, next.VLANProto = *cfg.VLAN, cfg.QoS, cfg.VLANProto
		}
		if cfg.MinTxRate != nil {
			next.MinTxRate = *cfg.MinTxRate
		}
		if cfg.MaxTxRate != nil {
			next.MaxTxRate = *cfg.MaxTxRate
		}
		if next.MaxTxRate != 0 && next.MinTxRate > next.MaxTxRate {
			return syscall.EINVAL
		}
		if cfg.LinkState != nil {
			next.LinkState = *cfg.LinkState
		}
		if cfg.SpoofChk != nil {
			next.SpoofChk = *cfg.SpoofChk
		}
		v.Settings = next
		return nil
	})
}

// RDMANetnsMode is the node's RDMA mode.
func (n *Node) RDMANetnsMode() (string, error) {
	s, err := n.Read()
	if err != nil {
		return "", err
	}
	if s.RDMAMode == "" {
		return "shared", nil
	}
	return s.RDMAMode, nil
}

// MoveRDMADevice moves a VF's RDMA device; like the kernel, only in
// exclusive mode and only from the namespace it is in.
func (n *Node) MoveRDMADevice(from *host.Netns, name string, to *host.Netns) error {
	fromID, err := NetnsID(from)
	if err != nil {
		return err
	}
	toID, err := NetnsID(to)
	if err != nil {
		return err
	}
	return n.Update(func(s *State) error {
		if err := s.failed("MoveRDMADevice"); err != nil {
			return err
		}
		for _, v := range s.VFs {
			if v.RDMA != name {
				continue
			}
			if s.RDMAMode != "exclusive" {
				return &host.StepError{Device: name, Step: "move RDMA device", Err: syscall.EOPNOTSUPP}
			}
			if v.RDMANetns != fromID {
				return &host.StepError{Device: name, Step: "find RDMA device", Err: host.ErrNotFound}
			}
			v.RDMANetns = toID
			return nil
		}
		return &host.StepError{Device: name, Step: "find RDMA device", Err: host.ErrNotFound}
	})
}

// AddSoftRoCE creates a stand-in soft-RoCE device on netdev, which must be
// in ns, with a uverbs char device numbered in creation order.
func (n *Node) AddSoftRoCE(ns *host.Netns, name, netdev string) (*host.RDMADevice, error) {
	if _, err := ns.Netdev(netdev); err != nil {
		return nil, &host.StepError{Device: name, Step: "create soft-RoCE device on " + netdev, Err: syscall.ENODEV}
	}
	id, err := NetnsID(ns)
	if err != nil {
		return nil, err
	}
	var dev *SoftRoCEDevice
	err = n.Update(func(s *State) error {
		if err := s.failed("AddSoftRoCE"); err != nil {
			return err
		}
		if s.SoftRoCE[name] != nil {
			return &host.StepError{Device: name, Step: "create soft-RoCE device on " + netdev, Err: syscall.EEXIST}
		}
		if s.SoftRoCE == nil {
			s.SoftRoCE = map[string]*SoftRoCEDevice{}
		}
		dev = &SoftRoCEDevice{Netdev: netdev, Netns: id,
			CharDevices: []string{"/dev/infiniband/rdma_cm", "/dev/infiniband/uverbs" + strconv.Itoa(len(s.SoftRoCE))}}
		s.SoftRoCE[name] = dev
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &host.RDMADevice{Name: name, Netdev: netdev, CharDevices: dev.CharDevices}, nil
}

// DeleteSoftRoCE removes a stand-in soft-RoCE device.
func (n *Node) DeleteSoftRoCE(name string) error {
	return n.Update(func(s *State) error {
		if s.SoftRoCE[name] == nil {
			return &host.StepError{Device: name, Step: "delete soft-RoCE device", Err: host.ErrNotFound}
		}
		delete(s.SoftRoCE, name)
		return nil
	})
}
