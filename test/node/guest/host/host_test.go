//go:build nodetest

// Package hostsuite is the host layer (github.com/sluice-net/sluice/host) on a
// real kernel: the emulated igb PF, its VFs, vfio-pci and soft-RoCE.
// Results are checked against the kernel directly (sysfs, `ip -j`, `rdma`),
// not only through the package under test.
package hostsuite

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/test/node/guest/nodeutil"
)

func newHost(t *testing.T) *host.Host {
	t.Helper()
	nodeutil.Require(t)
	return host.New(host.NodePaths())
}

// withVFs gives the first PF n VFs through the host layer and removes them
// through it at the end.
func withVFs(t *testing.T, h *host.Host, n int) (nodeutil.PF, *host.PF) {
	t.Helper()
	pf := nodeutil.PFs(t)[0]
	start := time.Now()
	if err := h.SetNumVFs(context.Background(), pf.PCI, n); err != nil {
		t.Fatal(err)
	}
	t.Logf("SetNumVFs(%d) on %s: %s", n, pf.PCI, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := h.SetNumVFs(context.Background(), pf.PCI, 0); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	snap, err := h.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := snap.PFByAddress(pf.PCI)
	if got == nil {
		t.Fatalf("discovery lost PF %s", pf.PCI)
	}
	return pf, got
}

func TestDiscoverIGB(t *testing.T) {
	h := newHost(t)
	start := time.Now()
	snap, err := h.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("discovery: %s (first, loads pci.ids)", time.Since(start).Round(time.Microsecond))
	start = time.Now()
	if _, err := h.Discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("discovery: %s (warm)", time.Since(start).Round(time.Microsecond))
	pfs := nodeutil.PFs(t)
	if len(snap.PFs) != len(pfs) {
		t.Fatalf("discovered %d PFs, the node has %d (%v)", len(snap.PFs), len(pfs), pfs)
	}
	for i, want := range pfs {
		got := snap.PFs[i]
		if got.PCIAddress != want.PCI || got.Name != want.Netdev {
			t.Errorf("PF %d = %s (%s), want %s (%s)", i, got.PCIAddress, got.Name, want.PCI, want.Netdev)
		}
		if got.Vendor != "8086" || got.Device != "10c9" || got.Driver != "igb" || got.TotalVFs != 7 || got.NumVFs != 0 || len(got.VFs) != 0 {
			t.Errorf("PF %s = %s:%s driver %s totalVfs %d numVfs %d", got.PCIAddress, got.Vendor, got.Device, got.Driver, got.TotalVFs, got.NumVFs)
		}
		if got.VendorName != "Intel Corporation" {
			t.Errorf("vendor name %q (pci.ids)", got.VendorName)
		}
		mac := nodeutil.MustRead(t, "/sys/class/net/"+want.Netdev+"/address")
		mtu, _ := strconv.Atoi(nodeutil.MustRead(t, "/sys/class/net/"+want.Netdev+"/mtu"))
		if got.LinkType != "eth" || got.MAC != mac || got.MTU != mtu || !got.Carrier {
			t.Errorf("PF link = %+v, sysfs says mac %s mtu %d", got.Link, mac, mtu)
		}
	}
}

func TestNumVFsRoundTrip(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	pf, got := withVFs(t, h, 4)
	if got.NumVFs != 4 || len(got.VFs) != 4 {
		t.Fatalf("after SetNumVFs(4): numVfs %d, %d VFs", got.NumVFs, len(got.VFs))
	}
	kernel, err := nodeutil.ListVFs(pf)
	if err != nil {
		t.Fatal(err)
	}
	for i, vf := range got.VFs {
		k := kernel[i]
		if vf.Index != k.Index || vf.PCIAddress != k.PCI || vf.Netdev != k.Netdev || vf.Netdev == "" {
			t.Errorf("VF %d = %s %q, kernel says %s %q", i, vf.PCIAddress, vf.Netdev, k.PCI, k.Netdev)
		}
		if vf.Driver != "igbvf" || vf.Device != "10ca" || vf.PFName != pf.Netdev {
			t.Errorf("VF %d: driver %s device %s pf %s", i, vf.Driver, vf.Device, vf.PFName)
		}
		// The single-VF lookup agrees with the full discovery.
		one, err := h.VF(vf.PCIAddress)
		if err != nil || one.Index != vf.Index || one.Netdev != vf.Netdev || one.PFAddress != pf.PCI {
			t.Errorf("VF(%s) = %+v, %v", vf.PCIAddress, one, err)
		}
	}

	// 4 -> 2 goes through 0; every VF has its netdev when it returns.
	if err := h.SetNumVFs(ctx, pf.PCI, 2); err != nil {
		t.Fatal(err)
	}
	kernel, _ = nodeutil.ListVFs(pf)
	if len(kernel) != 2 || kernel[0].Netdev == "" || kernel[1].Netdev == "" {
		t.Errorf("after 4 -> 2 the kernel has %+v", kernel)
	}
	if err := h.SetNumVFs(ctx, pf.PCI, 0); err != nil {
		t.Fatal(err)
	}
	if n := nodeutil.MustRead(t, pf.Device()+"/sriov_numvfs"); n != "0" {
		t.Errorf("sriov_numvfs = %s after SetNumVFs(0)", n)
	}
	if vfs, _ := nodeutil.ListVFs(pf); len(vfs) != 0 {
		t.Errorf("virtfn links left: %+v", vfs)
	}
	if err := h.SetNumVFs(ctx, pf.PCI, 8); err == nil || !strings.Contains(err.Error(), "0 to 7 VFs") {
		t.Errorf("8 VFs on an igb: err = %v", err)
	}
}

// ipVF is one "vfinfo_list" entry of `ip -j -d link show PF`.
type ipVF struct {
	VF      int    `json:"vf"`
	Address string `json:"address"`
	VLANs   []struct {
		VLAN int `json:"vlan"`
		QoS  int `json:"qos"`
	} `json:"vlan_list"`
	SpoofChk bool `json:"spoofchk"`
	Trust    bool `json:"trust"`
}

func ipVFs(t *testing.T, pf string) []ipVF {
	t.Helper()
	var links []struct {
		VFs []ipVF `json:"vfinfo_list"`
	}
	if err := json.Unmarshal([]byte(nodeutil.Run(t, "ip", "-j", "-d", "link", "show", pf)), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v", pf, err)
	}
	return links[0].VFs
}

func TestConfigureVF(t *testing.T) {
	h := newHost(t)
	pf, _ := withVFs(t, h, 2)
	mac, vlan, on, off := "02:5e:00:00:00:01", 100, true, false
	if err := h.ConfigureVF(pf.Netdev, 1, host.VFConfig{MAC: &mac, VLAN: &vlan, QoS: 2, Trust: &on, SpoofChk: &off}); err != nil {
		t.Fatal(err)
	}
	got, err := h.VFSettingsOf(pf.Netdev, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.MAC != mac || got.VLAN != 100 || got.QoS != 2 || !got.Trust || got.SpoofChk {
		t.Errorf("host layer reads back %+v", got)
	}
	// The kernel's own view, through iproute2.
	k := ipVFs(t, pf.Netdev)
	if len(k) != 2 || k[1].Address != mac || !k[1].Trust || k[1].SpoofChk || len(k[1].VLANs) == 0 || k[1].VLANs[0].VLAN != 100 || k[1].VLANs[0].QoS != 2 {
		t.Errorf("ip link says %+v", k)
	}
	if k[0].Trust || k[0].Address == mac {
		t.Errorf("vf 0 changed: %+v", k[0])
	}

	// igb has no VF link-state control: the step fails, and the steps
	// before it in the same call are undone on the real PF.
	mac2, state := "02:5e:00:00:00:02", "disable"
	err = h.ConfigureVF(pf.Netdev, 1, host.VFConfig{MAC: &mac2, LinkState: &state})
	if err == nil {
		t.Fatal("igb accepted a VF link state; the probe suite says it does not")
	}
	if !strings.Contains(err.Error(), pf.Netdev+" vf 1: set state disable") || !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("err = %v, want the step and EOPNOTSUPP", err)
	}
	if k := ipVFs(t, pf.Netdev); k[1].Address != mac {
		t.Errorf("MAC after a failed configure = %s, want %s restored", k[1].Address, mac)
	}
}

func TestBindVfioAndBack(t *testing.T) {
	h := newHost(t)
	if os.Getenv("SLUICE_NODE_IOMMU") != "1" {
		t.Skip("vfio-pci needs the emulated IOMMU: the suite is registered with IOMMU")
	}
	ctx := context.Background()
	nodeutil.Run(t, "modprobe", "vfio-pci")
	_, pf := withVFs(t, h, 2)
	vf := pf.VFs[1]
	if err := h.BindDriver(ctx, vf.PCIAddress, host.VfioPci); err != nil {
		t.Fatal(err)
	}
	if d := nodeutil.Driver(vf.PCIAddress); d != "vfio-pci" {
		t.Fatalf("driver %q after binding to vfio-pci", d)
	}
	group := h.VfioGroup(vf.PCIAddress)
	if group == "" {
		t.Fatal("no IOMMU group")
	}
	if st, err := os.Stat(group); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("%s: %v (mode %v), want the VFIO group char device", group, err, st)
	}
	if entries, _ := os.ReadDir("/sys/bus/pci/devices/" + vf.PCIAddress + "/net"); len(entries) != 0 {
		t.Errorf("netdev left on a vfio-pci VF: %v", entries)
	}
	snap, err := h.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, d := snap.VFByAddress(vf.PCIAddress); d.Driver != host.VfioPci || d.Netdev != "" || d.IOMMUGroup == "" {
		t.Errorf("discovered %+v", d)
	}

	if err := h.BindDriver(ctx, vf.PCIAddress, host.DefaultDriver); err != nil {
		t.Fatal(err)
	}
	if d := nodeutil.Driver(vf.PCIAddress); d != "igbvf" {
		t.Errorf("driver %q after returning to the default", d)
	}
	if o := nodeutil.MustRead(t, "/sys/bus/pci/devices/"+vf.PCIAddress+"/driver_override"); o != "(null)" {
		t.Errorf("driver_override left as %q", o)
	}
	if entries, _ := os.ReadDir("/sys/bus/pci/devices/" + vf.PCIAddress + "/net"); len(entries) != 1 {
		t.Errorf("no netdev after returning to igbvf")
	}
}

func TestRXEMappedToItsVF(t *testing.T) {
	h := newHost(t)
	_, pf := withVFs(t, h, 3)
	vf := pf.VFs[2]
	nodeutil.Run(t, "ip", "link", "set", vf.Netdev, "up")
	nodeutil.AddRXE(t, "", "rxehost0", vf.Netdev)
	nodeutil.WaitRDMAActive(t, "rxehost0")

	snap, err := h.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.RDMANetnsMode != "shared" {
		t.Errorf("RDMA netns mode %q, want the kernel default shared", snap.RDMANetnsMode)
	}
	got := snap.PFByAddress(pf.PCIAddress)
	for _, v := range got.VFs {
		switch {
		case v.Index == 2 && (v.RDMA == nil || v.RDMA.Name != "rxehost0"):
			t.Errorf("VF 2 RDMA = %+v, want rxehost0", v.RDMA)
		case v.Index != 2 && v.RDMA != nil:
			t.Errorf("VF %d got RDMA %s, which runs on VF 2's netdev", v.Index, v.RDMA.Name)
		}
	}
	r := got.VFs[2].RDMA
	if r == nil {
		t.FailNow()
	}
	if r.Parent != "" || r.Netdev != vf.Netdev || !r.Active() || r.Ports[0].LinkLayer != "Ethernet" {
		t.Errorf("rxehost0 = %+v", r)
	}
	var uverbs bool
	for _, c := range r.CharDevices {
		if _, err := os.Stat(c); err != nil {
			t.Errorf("char device %s: %v", c, err)
		}
		uverbs = uverbs || strings.HasPrefix(filepath.Base(c), "uverbs")
	}
	if !uverbs || !strings.Contains(strings.Join(r.CharDevices, " "), "/dev/infiniband/rdma_cm") {
		t.Errorf("char devices %v, want uverbsN and rdma_cm", r.CharDevices)
	}
	// rdma(8) agrees on which netdev rxehost0 runs.
	if out := nodeutil.Run(t, "rdma", "link", "show", "rxehost0/1"); !strings.Contains(out, "netdev "+vf.Netdev) {
		t.Errorf("rdma link show: %s", out)
	}
	// The single-VF lookup (sluice-cni's, per pod) finds a soft-RoCE device
	// by the name sluice-cni gives it, not by scanning the node's devices:
	// rxehost0 is Discover's only.
	if one, err := h.VF(vf.PCIAddress); err != nil || one.RDMA != nil {
		t.Errorf("VF(%s).RDMA = %+v, %v; want none (a foreign name)", vf.PCIAddress, one.RDMA, err)
	}
	nodeutil.DeleteRXE("rxehost0")
	own := host.SoftRoCEName(vf.PCIAddress)
	nodeutil.AddRXE(t, "", own, vf.Netdev)
	nodeutil.WaitRDMAActive(t, own)
	one, err := h.VF(vf.PCIAddress)
	if err != nil || one.RDMA == nil || one.RDMA.Name != own || one.RDMA.Netdev != vf.Netdev {
		t.Fatalf("VF(%s).RDMA = %+v, %v; want %s", vf.PCIAddress, one.RDMA, err, own)
	}
	var snapChars []string
	if snap, err := h.Discover(context.Background()); err == nil {
		if r := snap.PFByAddress(pf.PCIAddress).VFs[2].RDMA; r != nil {
			snapChars = r.CharDevices
		}
	}
	if strings.Join(one.RDMA.CharDevices, " ") != strings.Join(snapChars, " ") || len(snapChars) == 0 {
		t.Errorf("char devices of %s: lookup %v, discovery %v", own, one.RDMA.CharDevices, snapChars)
	}
}

func TestRDMAModeSwitchRefusedWithNamespaces(t *testing.T) {
	h := newHost(t)
	nodeutil.Run(t, "modprobe", "ib_core")
	nodeutil.Netns(t, "hostsuite-ns")
	err := h.SetRDMANetnsMode("exclusive")
	if err == nil {
		// It switched: put it back (possible only without namespaces, so
		// this is a failure of the kernel rule we rely on).
		t.Fatal("the kernel switched RDMA netns mode with another namespace present")
	}
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "options ib_core netns_mode=0") {
		t.Errorf("err = %v, want EBUSY with the boot-time fix", err)
	}
	if err := h.SetRDMANetnsMode("shared"); err != nil {
		t.Errorf("already shared: %v", err)
	}
}
