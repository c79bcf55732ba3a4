package host

import (
	"path/filepath"
	"sync/atomic"
)

// LinkFilter tells the link events of the node's SR-IOV PFs and their VFs
// from all others: the veths and bridges pods come and go with, other
// NICs. It is the keep of the agent's and the device plugin's link
// subscriptions, so that a node starting a thousand pods does not make
// them rediscover it a thousand times.
//
// It knows the netdevs and PCI functions of the last discovery (Update).
// A link it does not know concerns it when its netdev sits on an SR-IOV PF
// or a VF, whichever PF that is: VFs appearing (or a VF netdev coming back
// from a pod) must be noticed. The kernel names a netdev's device in the
// message itself (5.16 and later); on older kernels sysfs is asked, and
// only for hardware kinds, so a veth costs no system call either way.
//
// Concerns may be called from any goroutine while the owner updates.
type LinkFilter struct {
	sys   string
	known atomic.Pointer[knownLinks]
}

// knownLinks are one discovery's PF and VF netdev names and PCI addresses.
type knownLinks struct {
	names, pci map[string]bool
}

// NewLinkFilter returns a filter over this Host's sysfs that knows no
// discovery yet.
func (h *Host) NewLinkFilter() *LinkFilter { return &LinkFilter{sys: h.paths.Sys} }

// Update makes the filter know snap's PFs, VFs and NICs (whose carrier
// the device plugin reports as their health), except the NICs carrying a
// default route: the node's own uplink, which no pool serves.
func (f *LinkFilter) Update(snap *Snapshot) {
	k := &knownLinks{names: map[string]bool{}, pci: map[string]bool{}}
	add := func(name, addr string) {
		if name != "" {
			k.names[name] = true
		}
		k.pci[addr] = true
	}
	for i := range snap.PFs {
		pf := &snap.PFs[i]
		add(pf.Name, pf.PCIAddress)
		for j := range pf.VFs {
			add(pf.VFs[j].Netdev, pf.VFs[j].PCIAddress)
		}
	}
	for i := range snap.NICs {
		if nic := &snap.NICs[i]; !nic.DefaultRoute {
			add(nic.Name, nic.PCIAddress)
		}
	}
	f.known.Store(k)
}

// Concerns reports whether ev is about an SR-IOV PF or VF netdev: one the
// last discovery found, or a new one.
func (f *LinkFilter) Concerns(ev LinkEvent) bool {
	k := f.known.Load()
	if k != nil && (k.names[ev.Name] || ev.ParentDev != "" && k.pci[ev.ParentDev]) {
		return true
	}
	if ev.ParentBus != "" {
		return ev.ParentBus == "pci" && f.sriovFunction(ev.ParentDev)
	}
	// No device named: a software link, a link that went before it could be
	// looked at, or a kernel older than 5.16, where sysfs tells.
	if ev.Deleted || ev.Name == "" || !hardwareKind(ev.Kind) {
		return false
	}
	addr := linkBase(filepath.Join(f.sys, "class", "net", ev.Name, "device"))
	if addr == "" || !exists(filepath.Join(f.sys, "bus", "pci", "devices", addr)) {
		return false // not a PCI function
	}
	return k != nil && k.pci[addr] || f.sriovFunction(addr)
}

// sriovFunction: the PCI function is a VF, or a PF able to have some.
func (f *LinkFilter) sriovFunction(addr string) bool {
	if addr == "" {
		return false
	}
	dir := filepath.Join(f.sys, "bus", "pci", "devices", addr)
	return exists(filepath.Join(dir, "physfn")) || exists(filepath.Join(dir, "sriov_totalvfs"))
}

// hardwareKind: a kind a PCI function's netdev may have.
func hardwareKind(kind string) bool { return kind == "device" || kind == "ipoib" }
