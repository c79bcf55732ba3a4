package host_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/jaypipes/ghw/pkg/pci"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

// threeNICs is a node with the three kinds of NIC sluice meets: a
// ConnectX-6 with PCI-parented RDMA, an E810 and the emulated igb with
// soft-RoCE on a VF, plus a device that is not a NIC.
func threeNICs(t *testing.T) *hosttest.Node {
	n := hosttest.New(t)
	n.AddDevice("0000:00:1f.2", "8086", "a352", "ahci")
	n.AddPF(hosttest.ConnectX6("0000:3b:00.0", "ens1f0", 0))
	n.AddPF(hosttest.E810("0000:5e:00.0", "ens2f0", 1))
	n.AddPF(hosttest.IGB("0000:01:00.0", "enp1s0"))
	n.SetNumVFs("0000:3b:00.0", 4)
	n.SetNumVFs("0000:5e:00.0", 8)
	n.SetNumVFs("0000:01:00.0", 2)
	n.AddRxe("rxe0", n.Netdev(n.VFAddress("0000:01:00.0", 1)))
	return n
}

func TestDiscoverThreeNICs(t *testing.T) {
	n := threeNICs(t)
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, pf := range snap.PFs {
		got = append(got, pf.PCIAddress)
	}
	if want := []string{"0000:01:00.0", "0000:3b:00.0", "0000:5e:00.0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("PFs = %v, want %v (the AHCI controller is not a PF)", got, want)
	}
	if snap.RDMANetnsMode != "shared" {
		t.Errorf("RDMA netns mode = %q, want shared", snap.RDMANetnsMode)
	}

	cx := snap.PFByAddress("0000:3b:00.0")
	if cx.Name != "ens1f0" || cx.Vendor != "15b3" || cx.Device != "101d" || cx.Driver != "mlx5_core" ||
		cx.NUMANode != 0 || cx.TotalVFs != 128 || cx.NumVFs != 4 || len(cx.VFs) != 4 || cx.LinkType != "eth" || !cx.Carrier || cx.MTU != 1500 {
		t.Errorf("ConnectX-6 PF = %+v", *cx)
	}
	if cx.RDMA == nil || cx.RDMA.Parent != "0000:3b:00.0" || !cx.RDMA.Active() {
		t.Errorf("ConnectX-6 PF RDMA = %+v", cx.RDMA)
	}
	seen := map[string]bool{}
	for i, vf := range cx.VFs {
		if vf.Index != i || vf.PFAddress != cx.PCIAddress || vf.PFName != "ens1f0" || vf.Device != "101e" || vf.Driver != "mlx5_core" || vf.NUMANode != 0 {
			t.Errorf("VF %d = %+v", i, vf)
		}
		if vf.Netdev != fmt.Sprintf("ens1f0v%d", i) || vf.IOMMUGroup == "" {
			t.Errorf("VF %d netdev %q iommu %q", i, vf.Netdev, vf.IOMMUGroup)
		}
		if vf.RDMA == nil || vf.RDMA.Parent != vf.PCIAddress {
			t.Fatalf("VF %d RDMA = %+v, want a device parented by the VF", i, vf.RDMA)
		}
		if seen[vf.RDMA.Name] {
			t.Errorf("RDMA device %s given to two VFs", vf.RDMA.Name)
		}
		seen[vf.RDMA.Name] = true
		wantChars := 2 // uverbsN and rdma_cm
		if len(vf.RDMA.CharDevices) != wantChars || vf.RDMA.CharDevices[0] != "/dev/infiniband/rdma_cm" {
			t.Errorf("VF %d char devices = %v", i, vf.RDMA.CharDevices)
		}
		if vf.Settings.LinkState != "auto" || !vf.Settings.SpoofChk {
			t.Errorf("VF %d settings = %+v", i, vf.Settings)
		}
	}

	e := snap.PFByAddress("0000:5e:00.0")
	if e.Driver != "ice" || e.NUMANode != 1 || len(e.VFs) != 8 || e.RDMA != nil {
		t.Errorf("E810 PF = %+v", *e)
	}
	for _, vf := range e.VFs {
		if vf.Driver != "iavf" || vf.RDMA != nil || vf.Device != "1889" {
			t.Errorf("E810 VF = %+v", vf)
		}
	}

	igb := snap.PFByAddress("0000:01:00.0")
	if igb.TotalVFs != 7 || len(igb.VFs) != 2 || igb.NUMANode != -1 {
		t.Errorf("igb PF = %+v", *igb)
	}
	if igb.VFs[0].RDMA != nil {
		t.Errorf("igb VF 0 has RDMA %+v, want none", igb.VFs[0].RDMA)
	}
	r := igb.VFs[1].RDMA
	if r == nil || r.Name != "rxe0" || r.Parent != "" || r.Netdev != igb.VFs[1].Netdev {
		t.Fatalf("igb VF 1 RDMA = %+v, want rxe0 on %s", r, igb.VFs[1].Netdev)
	}
	if len(r.Ports) != 1 || r.Ports[0].LinkLayer != "Ethernet" || r.Ports[0].State != "ACTIVE" {
		t.Errorf("rxe0 ports = %+v", r.Ports)
	}
	if _, vf := snap.VFByAddress(igb.VFs[1].PCIAddress); vf == nil || vf.RDMA.Name != "rxe0" {
		t.Errorf("VFByAddress did not find igb VF 1")
	}
}

func TestDiscoverInfiniBandCharDevices(t *testing.T) {
	n := hosttest.New(t)
	s := hosttest.ConnectX6("0000:af:00.0", "ib0", 1)
	s.LinkType = "ib"
	n.AddPF(s)
	n.SetNumVFs("0000:af:00.0", 1)
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pf := snap.PFs[0]
	if pf.LinkType != "ib" {
		t.Errorf("link type = %q, want ib", pf.LinkType)
	}
	chars := pf.VFs[0].RDMA.CharDevices
	var kinds []string
	for _, c := range chars {
		kinds = append(kinds, filepath.Base(c)[:4])
	}
	// IB devices need umad and issm besides uverbs and rdma_cm.
	if want := []string{"issm", "rdma", "umad", "uver"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("IB char devices = %v", chars)
	}
	if pf.VFs[0].RDMA.Ports[0].LinkLayer != "InfiniBand" {
		t.Errorf("link layer = %q", pf.VFs[0].RDMA.Ports[0].LinkLayer)
	}
}

func TestDiscoverVFWithoutNetdev(t *testing.T) {
	n := threeNICs(t)
	vf := n.VFAddress("0000:5e:00.0", 3)
	n.RemoveNetdev(n.Netdev(vf))
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, got := snap.VFByAddress(vf)
	if got == nil || got.Netdev != "" || got.Driver != "iavf" || got.MTU != 0 {
		t.Errorf("VF without netdev = %+v", got)
	}
}

func TestDiscoverNoSysfs(t *testing.T) {
	h := host.New(host.Paths{Sys: filepath.Join(t.TempDir(), "nope"), Dev: t.TempDir()})
	_, err := h.Discover(context.Background())
	if err == nil {
		t.Fatal("discovery of a missing sysfs succeeded")
	}
	var se *host.StepError
	if !asStep(err, &se) || se.Step != "list PCI devices" {
		t.Errorf("error %v does not name the step", err)
	}
}

func TestDiscoverPCINames(t *testing.T) {
	ids := filepath.Join(t.TempDir(), "pci.ids")
	if err := os.WriteFile(ids, []byte("15b3  Mellanox Technologies\n\t101d  MT2892 Family [ConnectX-6 Dx]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6("0000:3b:00.0", "ens1f0", 0))
	snap, err := n.Host(host.WithPCIIDs(ids)).Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if pf := snap.PFs[0]; pf.VendorName != "Mellanox Technologies" || pf.DeviceName != "MT2892 Family [ConnectX-6 Dx]" {
		t.Errorf("names = %q / %q", pf.VendorName, pf.DeviceName)
	}
}

// BenchmarkDiscover8x128 discovers 8 PFs with 128 VFs each, every VF with a
// netdev and an RDMA device. The tree is built once per run (b.Loop): on
// this ext4 building it takes far longer than discovering it.
func BenchmarkDiscover8x128(b *testing.B) {
	n := hosttest.NewAt(b.TempDir())
	for i := 0; i < 8; i++ {
		addr := fmt.Sprintf("0000:%02x:00.0", 0x10+i)
		n.AddPF(hosttest.ConnectX6(addr, fmt.Sprintf("ens%df0", i), i%2))
		n.SetNumVFs(addr, 128)
	}
	h := n.Host()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		snap, err := h.Discover(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(snap.PFs) != 8 || len(snap.PFs[7].VFs) != 128 {
			b.Fatalf("discovered %d PFs", len(snap.PFs))
		}
	}
}

func TestLookupVF(t *testing.T) {
	n := threeNICs(t)
	h := n.Host()
	ctx := context.Background()
	snap, err := h.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The single-VF lookup agrees with a full discovery, VF for VF, but
	// for a soft-RoCE device of a name other than sluice's (rxe0 on the
	// igb VF 1): the lookup finds soft-RoCE devices by name only.
	foreign := n.VFAddress("0000:01:00.0", 1)
	for _, pf := range snap.PFs {
		for _, want := range pf.VFs {
			got, err := h.VF(want.PCIAddress)
			if err != nil {
				t.Fatal(err)
			}
			if want.PCIAddress == foreign {
				if want.RDMA == nil || want.RDMA.Name != "rxe0" || got.RDMA != nil {
					t.Errorf("VF(%s): discovery's RDMA %+v, lookup's %+v; want rxe0 and none", foreign, want.RDMA, got.RDMA)
				}
				want.RDMA = nil
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("VF(%s) =\n%+v\nwant\n%+v", want.PCIAddress, *got, want)
			}
		}
	}
	// A soft-RoCE device named after the VF, as sluice-cni names the pod's.
	vf0 := n.VFAddress("0000:01:00.0", 0)
	n.AddRxe(host.SoftRoCEName(vf0), n.Netdev(vf0))
	got, err := h.VF(vf0)
	if err != nil || got.RDMA == nil || got.RDMA.Name != host.SoftRoCEName(vf0) || len(got.RDMA.CharDevices) == 0 {
		t.Errorf("VF(%s) with its sluice-named soft-RoCE device: %+v, %v", vf0, got, err)
	}
	if _, err := h.VF("0000:3b:00.0"); err == nil || !strings.Contains(err.Error(), "is not a VF") {
		t.Errorf("a PF looked up as VF: %v", err)
	}
	if _, err := h.VF("0000:99:00.1"); !errors.Is(err, host.ErrNotFound) {
		t.Errorf("missing VF: %v", err)
	}
}

// TestLookupVFLoadsNoPCIDatabase: sluice-cni looks up one VF per run, and
// loading pci.ids took most of its ADD on the emulated node (773 ms of
// 1.2 s in the process). A VF has no names to decode.
func TestLookupVFLoadsNoPCIDatabase(t *testing.T) {
	n := threeNICs(t)
	loads := 0
	h := n.Host(host.WithPCIInfoLoader(func() *pci.Info { loads++; return nil }))
	vf, err := h.VF(n.VFAddress("0000:3b:00.0", 1))
	if err != nil {
		t.Fatal(err)
	}
	if vf.Vendor == "" || vf.Device == "" {
		t.Errorf("VF identity without the database: vendor %q device %q", vf.Vendor, vf.Device)
	}
	if loads != 0 {
		t.Errorf("looking up one VF loaded the PCI ID database %d times", loads)
	}
}

func TestParsePFName(t *testing.T) {
	for in, want := range map[string][3]any{
		"ens1f0":     {"ens1f0", -1, -1},
		"ens1f0#0-3": {"ens1f0", 0, 3},
		"ens1f0#7-7": {"ens1f0", 7, 7},
		"ens1f0#3-1": {"", 0, 0},
		"ens1f0#a-b": {"", 0, 0},
		"ens1f0#2":   {"", 0, 0},
	} {
		name, f, l, err := host.ParsePFName(in)
		if name != want[0] || f != want[1] || l != want[2] || (err != nil) != (want[0] == "") {
			t.Errorf("ParsePFName(%q) = %q %d %d %v", in, name, f, l, err)
		}
	}
}

// TestLookupVFIndex: the index comes from the PF's sriov_offset and
// sriov_stride and the VF's routing ID, checked against virtfn<i>; where
// those files are missing or disagree with the links, the PF's virtfn
// links are listed instead, with the same answer.
func TestLookupVFIndex(t *testing.T) {
	for _, c := range []struct {
		name  string
		alter func(pfDir string)
	}{
		{"offset and stride", func(string) {}},
		{"no offset (older kernel)", func(pfDir string) { _ = os.Remove(filepath.Join(pfDir, "sriov_offset")) }},
		{"stray virtfn links, only read by listing", func(pfDir string) {
			// Each VF also appears as virtfn9<i>: a listing finds either
			// link (in map order), the routing ID only virtfn<i>.
			for i := range 4 {
				target, _ := os.Readlink(filepath.Join(pfDir, fmt.Sprintf("virtfn%d", i)))
				_ = os.Symlink(target, filepath.Join(pfDir, fmt.Sprintf("virtfn9%d", i)))
			}
		}},
		{"offset disagrees with the links", func(pfDir string) {
			_ = os.WriteFile(filepath.Join(pfDir, "sriov_offset"), []byte("3\n"), 0o444)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := threeNICs(t)
			pf := "0000:3b:00.0"
			c.alter(filepath.Join(n.Root, "sys/bus/pci/devices", pf))
			h := n.Host()
			for try, i := 0, 0; try < 20; try, i = try+1, (i+1)%4 {
				vf, err := h.VF(n.VFAddress(pf, i))
				if err != nil || vf.Index != i {
					t.Fatalf("VF(%s) index = %v %v, want %d", n.VFAddress(pf, i), vf, err, i)
				}
			}
		})
	}
}

// TestDiscoverPCIeRoot: a PF and its VFs report the root complex the PF's
// sysfs path runs through.
func TestDiscoverPCIeRoot(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6("0000:3b:00.0", "ens1f0", 0))
	n.AddPF(hosttest.ConnectX6("0000:d8:00.0", "ens9f0", 1))
	n.SetNumVFs("0000:3b:00.0", 2)
	n.SetNumVFs("0000:d8:00.0", 1)
	n.SetPCIeRoot("0000:d8:00.0", "pci0000:d7")
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"0000:3b:00.0": "pci0000:00", "0000:d8:00.0": "pci0000:d7"}
	for _, pf := range snap.PFs {
		if pf.PCIeRoot != want[pf.PCIAddress] {
			t.Errorf("PF %s pcieRoot = %q, want %q", pf.PCIAddress, pf.PCIeRoot, want[pf.PCIAddress])
		}
		if len(pf.VFs) == 0 || pf.VFs[0].Driver == "" {
			t.Errorf("PF %s: VFs not read through the moved link: %+v", pf.PCIAddress, pf.VFs)
		}
		for _, vf := range pf.VFs {
			if vf.PCIeRoot != pf.PCIeRoot {
				t.Errorf("VF %s pcieRoot = %q, want its PF's %q", vf.PCIAddress, vf.PCIeRoot, pf.PCIeRoot)
			}
		}
	}
}
