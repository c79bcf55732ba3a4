package host_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

// wholeNICs is a node with network functions a pool may serve whole: a
// ConnectX-6 without SR-IOV (its RDMA device included), the node's uplink,
// an SR-IOV PF with no VFs, one with VFs, and a SATA controller.
func wholeNICs(t *testing.T) *hosttest.Node {
	n := hosttest.New(t)
	n.AddDevice("0000:00:1f.2", "8086", "a352", "ahci")
	n.AddNIC("0000:02:00.0", "eno1", "igb")
	n.SetDefaultRoute("eno1", true)
	cx := hosttest.ConnectX6("0000:3b:00.0", "ens1f0", 1)
	n.AddNonSRIOVNIC(cx)
	n.AddPF(hosttest.E810("0000:5e:00.0", "ens2f0", 0))
	n.AddPF(hosttest.IGB("0000:01:00.0", "enp1s0"))
	n.SetNumVFs("0000:01:00.0", 2)
	return n
}

func TestDiscoverNICsWithoutSRIOV(t *testing.T) {
	n := wholeNICs(t)
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var pfs, nics []string
	for _, pf := range snap.PFs {
		pfs = append(pfs, pf.PCIAddress)
	}
	for _, nic := range snap.NICs {
		nics = append(nics, nic.PCIAddress)
	}
	if want := []string{"0000:01:00.0", "0000:5e:00.0"}; !reflect.DeepEqual(pfs, want) {
		t.Errorf("PFs = %v, want %v", pfs, want)
	}
	// Neither the SATA controller nor the igb VFs are NICs.
	if want := []string{"0000:02:00.0", "0000:3b:00.0"}; !reflect.DeepEqual(nics, want) {
		t.Fatalf("NICs = %v, want %v", nics, want)
	}
	uplink, cx := &snap.NICs[0], &snap.NICs[1]
	if !uplink.DefaultRoute || uplink.Name != "eno1" {
		t.Errorf("uplink = %+v, want eno1 marked as carrying the default route", *uplink)
	}
	if cx.DefaultRoute || cx.Name != "ens1f0" || cx.Vendor != "15b3" || cx.Device != "101d" || cx.Driver != "mlx5_core" ||
		cx.NUMANode != 1 || cx.TotalVFs != 0 || len(cx.VFs) != 0 || cx.LinkType != "eth" || !cx.Carrier || cx.IOMMUGroup == "" {
		t.Errorf("ConnectX-6 without SR-IOV = %+v", *cx)
	}
	if cx.RDMA == nil || cx.RDMA.Parent != cx.PCIAddress || len(cx.RDMA.CharDevices) == 0 {
		t.Errorf("ConnectX-6 RDMA = %+v, want its PCI-parented device with char devices", cx.RDMA)
	}
	if e := snap.PFByAddress("0000:5e:00.0"); e == nil || e.DefaultRoute || e.NumVFs != 0 {
		t.Errorf("E810 without VFs = %+v", e)
	}
}

// Route listing is only needed, and only fails discovery, when a function
// could be served whole.
func TestDiscoverRouteFailure(t *testing.T) {
	n := wholeNICs(t)
	n.FailNetlink("RouteList", errors.New("netlink dump interrupted"))
	var se *host.StepError
	if _, err := n.Host().Discover(context.Background()); !asStep(err, &se) {
		t.Fatalf("Discover = %v, want a StepError naming the route listing", err)
	}

	only := hosttest.New(t)
	only.AddPF(hosttest.IGB("0000:01:00.0", "enp1s0"))
	only.SetNumVFs("0000:01:00.0", 2)
	only.FailNetlink("RouteList", errors.New("netlink dump interrupted"))
	if _, err := only.Host().Discover(context.Background()); err != nil {
		t.Errorf("Discover of PFs that all have VFs = %v, want no route listing", err)
	}
}

// Functions bound to userspace drivers: the uio device under a uio driver,
// vfio's no-IOMMU mode when the function had no IOMMU group, an ordinary
// vfio group otherwise.
func TestDiscoverUserspaceDrivers(t *testing.T) {
	n := wholeNICs(t)
	igbVF0, igbVF1 := n.VFAddress("0000:01:00.0", 0), n.VFAddress("0000:01:00.0", 1)
	if node := n.BindUserspace(igbVF0, "vfio-pci"); node != "/dev/vfio/noiommu-2" {
		t.Fatalf("fake no-IOMMU node = %s", node)
	}
	n.BindUserspace(igbVF1, "igb_uio")
	n.BindUserspace("0000:5e:00.0", "uio_pci_generic")
	n.BindUserspace("0000:3b:00.0", "vfio-pci")
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, vf0 := snap.VFByAddress(igbVF0)
	if vf0.Driver != "vfio-pci" || !vf0.NoIOMMU || vf0.IOMMUGroup != "2" || vf0.UIO != "" {
		t.Errorf("igb VF on vfio-pci without an IOMMU = %+v", *vf0)
	}
	_, vf1 := snap.VFByAddress(igbVF1)
	if vf1.Driver != "igb_uio" || vf1.UIO != "uio0" || vf1.NoIOMMU || vf1.Netdev != "" {
		t.Errorf("igb VF on igb_uio = %+v", *vf1)
	}
	if e := snap.PFByAddress("0000:5e:00.0"); e.UIO != "uio1" || e.Name != "" {
		t.Errorf("E810 on uio_pci_generic = %+v", *e)
	}
	if cx := snap.NICs[1]; cx.Driver != "vfio-pci" || cx.NoIOMMU || cx.IOMMUGroup != "1" || cx.RDMA != nil {
		t.Errorf("ConnectX-6 on vfio-pci with an IOMMU = %+v", cx)
	}

	// The CNI's one-VF look-up reads the same.
	vf, err := n.Host().VF(igbVF0)
	if err != nil || !vf.NoIOMMU || vf.IOMMUGroup != "2" {
		t.Errorf("VF(%s) = %+v, %v", igbVF0, vf, err)
	}
}
