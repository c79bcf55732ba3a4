package host

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Netns is an open network namespace with a netlink socket inside it, so
// that links there are read and changed without moving the calling thread.
// Its sockets open at first use: a namespace only moved into (the
// pod's, on ADD) never pays for it. Do runs code that has to run inside
// (IPAM address configuration).
type Netns struct {
	ns ns.NetNS
	// nl is nil until handle opens it; raw until socket does.
	nl  *netlink.Handle
	raw *nl.NetlinkSocket
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
	return &Netns{ns: n}, nil
}

// CurrentNetns opens the calling thread's network namespace. Its sockets
// are opened at once, where the thread is: no switch into the namespace
// and back, as for another namespace.
func CurrentNetns() (*Netns, error) {
	n, err := ns.GetCurrentNS()
	if err != nil {
		return nil, stepErr("current", "open network namespace", err)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		_ = n.Close()
		return nil, stepErr(n.Path(), "open netlink socket in network namespace", err)
	}
	raw, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		_ = n.Close()
		return nil, stepErr(n.Path(), "open netlink socket in network namespace", err)
	}
	return &Netns{ns: n, nl: h, raw: raw}, nil
}

// handle returns the namespace's netlink handle, opening it the first
// time (NewHandleAt: a switch into the namespace and back).
func (n *Netns) handle() (*netlink.Handle, error) {
	if n.nl != nil {
		return n.nl, nil
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(n.ns.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, stepErr(n.Path(), "open netlink socket in network namespace", err)
	}
	n.nl = h
	return h, nil
}

// socket returns a raw netlink route socket in the namespace, for requests
// the netlink package has no call for, opening it the first time.
func (n *Netns) socket() (*nl.NetlinkSocket, error) {
	if n.raw != nil {
		return n.raw, nil
	}
	s, err := nl.GetNetlinkSocketAt(netns.NsHandle(n.ns.Fd()), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, stepErr(n.Path(), "open netlink socket in network namespace", err)
	}
	n.raw = s
	return s, nil
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
	if n.nl != nil {
		n.nl.Close()
	}
	if n.raw != nil {
		n.raw.Close()
	}
	return n.ns.Close()
}
