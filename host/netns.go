package host

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Netns is an open network namespace with a netlink socket inside it, so
// that links there are read and changed without moving the calling thread.
// Do runs code that has to run inside (IPAM address configuration).
type Netns struct {
	ns ns.NetNS
	nl *netlink.Handle
}

// OpenNetns opens the network namespace at path (/var/run/netns/NAME,
// /proc/PID/ns/net). A path that does not exist is ErrNotFound (wrapped).
func OpenNetns(path string) (*Netns, error) {
	n, err := ns.GetNS(path)
	if err != nil {
		var missing ns.NSPathNotExistErr
		if errors.As(err, &missing) {
			return nil, stepErr(path, "open network namespace", fmt.Errorf("%w: %v", ErrNotFound, err))
		}
		return nil, stepErr(path, "open network namespace", err)
	}
	return newNetns(n)
}

// CurrentNetns opens the calling thread's network namespace.
func CurrentNetns() (*Netns, error) {
	n, err := ns.GetCurrentNS()
	if err != nil {
		return nil, stepErr("current", "open network namespace", err)
	}
	// The socket is opened where the thread is: no switch into the
	// namespace and back, as NewHandleAt does.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		_ = n.Close()
		return nil, stepErr(n.Path(), "open netlink socket in network namespace", err)
	}
	return &Netns{ns: n, nl: h}, nil
}

func newNetns(n ns.NetNS) (*Netns, error) {
	h, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		_ = n.Close()
		return nil, stepErr(n.Path(), "open netlink socket in network namespace", err)
	}
	return &Netns{ns: n, nl: h}, nil
}

// Path is the path the namespace was opened by.
func (n *Netns) Path() string { return n.ns.Path() }

// Fd is the namespace's file descriptor, valid until Close.
func (n *Netns) Fd() uintptr { return n.ns.Fd() }

// Do runs f with the calling goroutine's thread in the namespace.
func (n *Netns) Do(f func() error) error {
	return n.ns.Do(func(ns.NetNS) error { return f() })
}

// Close releases the namespace and its netlink socket.
func (n *Netns) Close() error {
	n.nl.Close()
	return n.ns.Close()
}
