package host

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
)

// NetdevState is what the CNI saves of a netdev before it moves it into a
// pod, and puts back when the pod is gone.
type NetdevState struct {
	Name string `json:"name"`
	MAC  string `json:"mac,omitempty"`
	MTU  int    `json:"mtu"`
	// Up is the administrative state (IFF_UP).
	Up bool `json:"up"`
}

// ErrNameInUse is returned (wrapped) when a netdev cannot take a name
// because another netdev has it.
var ErrNameInUse = errors.New("name in use")

// link looks a netdev up; the namespace's socket (n.nl) is open after it
// succeeds.
func (n *Netns) link(name string) (netlink.Link, error) {
	h, err := n.handle()
	if err != nil {
		return nil, err
	}
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, syscall.ENODEV) {
			return nil, stepErr(name, "find netdev in "+n.Path(), fmt.Errorf("%w: %v", ErrNotFound, err))
		}
		return nil, stepErr(name, "find netdev in "+n.Path(), err)
	}
	return l, nil
}

// Netdev reads a netdev's state; a missing netdev is ErrNotFound (wrapped).
func (n *Netns) Netdev(name string) (NetdevState, error) {
	l, err := n.link(name)
	if err != nil {
		return NetdevState{}, err
	}
	return stateOf(l), nil
}

// stateOf is a link's NetdevState.
func stateOf(l netlink.Link) NetdevState {
	a := l.Attrs()
	return NetdevState{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
}

// tempName is a random netdev name ("sl" and 10 hex digits) for a netdev
// changing namespace whose own name is taken in the namespace it goes to.
func tempName() string { return fmt.Sprintf("sl%010x", rand.Uint64()&0xffffffffff) }

// MoveNetdev moves the netdev name from namespace from into namespace to,
// where it is called newName; an empty newName keeps the name it arrived
// under. It returns the netdev's name in to, down.
//
// The netdev moves under its own name when to has no netdev of that name
// (the kernel refuses the move otherwise, changing nothing); when it has,
// it moves under a random temporary name instead, so the name it leaves
// with never makes the move fail. It takes newName once it is in to. When
// a step fails the steps before it are undone: the netdev is back in from
// with its name and state.
func MoveNetdev(from *Netns, name string, to *Netns, newName string) (_ string, err error) {
	link, err := from.link(name)
	if err != nil {
		return "", err
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if link.Attrs().Flags&net.FlagUp != 0 {
		if err := from.nl.LinkSetDown(link); err != nil {
			return "", stepErr(name, "set down", err)
		}
		undo = append(undo, func() {
			if l, err := from.nl.LinkByName(name); err == nil {
				_ = from.nl.LinkSetUp(l)
			}
		})
	}
	arrived := name
	err = from.nl.LinkSetNsFd(link, int(to.Fd()))
	if errors.Is(err, syscall.EEXIST) {
		// to has a netdev called name: travel under a temporary name.
		arrived = tempName()
		if err := from.nl.LinkSetName(link, arrived); err != nil {
			return "", stepErr(name, "rename to "+arrived, err)
		}
		undo = append(undo, func() {
			if l, err := from.nl.LinkByName(arrived); err == nil {
				_ = from.nl.LinkSetName(l, name)
			}
		})
		err = from.nl.LinkSetNsFd(link, int(to.Fd()))
	}
	if err != nil {
		return "", stepErr(name, "move to network namespace "+to.Path(), err)
	}
	undo = append(undo, func() {
		if l, err := to.link(arrived); err == nil {
			_ = to.nl.LinkSetNsFd(l, int(from.Fd()))
		}
	})
	if newName == "" || newName == arrived {
		return arrived, nil
	}
	moved, err := to.link(arrived)
	if err != nil {
		return "", err
	}
	if err := to.nl.LinkSetName(moved, newName); err != nil {
		if errors.Is(err, syscall.EEXIST) {
			err = fmt.Errorf("%w: another netdev in %s is called %s", ErrNameInUse, to.Path(), newName)
		}
		return "", stepErr(name, "rename to "+newName+" in "+to.Path(), err)
	}
	return newName, nil
}

// RenameNetdev renames a netdev, setting it down for it (the caller sets
// its state afterwards).
func (n *Netns) RenameNetdev(name, newName string) error {
	if name == newName {
		return nil
	}
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		if err := n.nl.LinkSetDown(l); err != nil {
			return stepErr(name, "set down", err)
		}
	}
	if err := n.nl.LinkSetName(l, newName); err != nil {
		if errors.Is(err, syscall.EEXIST) {
			err = fmt.Errorf("%w: another netdev in %s is called %s", ErrNameInUse, n.Path(), newName)
		}
		return stepErr(name, "rename to "+newName, err)
	}
	return nil
}

// SetNetdevMTU sets a netdev's MTU.
func (n *Netns) SetNetdevMTU(name string, mtu int) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if l.Attrs().MTU == mtu {
		return nil
	}
	if err := n.nl.LinkSetMTU(l, mtu); err != nil {
		return stepErr(name, fmt.Sprintf("set MTU %d", mtu), err)
	}
	return nil
}

// SetNetdevMAC sets a netdev's MAC address.
func (n *Netns) SetNetdevMAC(name string, mac net.HardwareAddr) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if l.Attrs().HardwareAddr.String() == mac.String() {
		return nil
	}
	if err := n.nl.LinkSetHardwareAddr(l, mac); err != nil {
		return stepErr(name, "set MAC "+mac.String(), err)
	}
	return nil
}

// SetNetdevUp sets a netdev's administrative state.
func (n *Netns) SetNetdevUp(name string, up bool) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if up {
		err = n.nl.LinkSetUp(l)
	} else {
		err = n.nl.LinkSetDown(l)
	}
	if err != nil {
		return stepErr(name, "set "+map[bool]string{true: "up", false: "down"}[up], err)
	}
	return nil
}

// RestoreNetdev gives the netdev now called cur the name, MAC, MTU and
// administrative state in st. It goes on after a failed step, so that as
// much as possible is restored, and returns every failure.
func (n *Netns) RestoreNetdev(cur string, st NetdevState) error {
	if err := n.RenameNetdev(cur, st.Name); err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		// Keep going under the current name.
		return errors.Join(err, n.restoreAttrs(cur, st))
	}
	return n.restoreAttrs(st.Name, st)
}

func (n *Netns) restoreAttrs(name string, st NetdevState) error {
	var errs []error
	if st.MAC != "" {
		if mac, err := net.ParseMAC(st.MAC); err == nil {
			errs = append(errs, n.SetNetdevMAC(name, mac))
		}
	}
	if st.MTU > 0 {
		errs = append(errs, n.SetNetdevMTU(name, st.MTU))
	}
	errs = append(errs, n.SetNetdevUp(name, st.Up))
	return errors.Join(errs...)
}
