package dra

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/deviceplugin"
	"github.com/sluice-net/sluice/host/hosttest"
)

const (
	cx0  = "0000:3b:00.0" // ens1f0, ConnectX-6, NUMA 0, root pci0000:3a
	e810 = "0000:86:00.0" // ens2f0, E810, NUMA 1, root pci0000:85
	cx1  = "0000:d8:00.0" // ens9f0, ConnectX-6, NUMA 1: a device-plugin pool
)

// testNode has two VFs on each of three PFs under different roots.
func testNode(t *testing.T, vfs int) *hosttest.Node {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx0, "ens1f0", 0))
	n.AddPF(hosttest.E810(e810, "ens2f0", 1))
	n.AddPF(hosttest.ConnectX6(cx1, "ens9f0", 1))
	for _, pf := range []string{cx0, e810, cx1} {
		n.SetNumVFs(pf, vfs)
	}
	n.SetPCIeRoot(cx0, "pci0000:3a")
	n.SetPCIeRoot(e810, "pci0000:85")
	return n
}

const config = `{"pools": [{"resourceName": "dp", "selectors": {"pfNames": ["ens9f0"]}}],
  "draPools": [
    {"resourceName": "rail", "deviceType": "netdevice", "selectors": {"pfNames": ["ens1f0"], "isRdma": true}},
    {"resourceName": "intel", "deviceType": "netdevice", "selectors": {"pfNames": ["ens2f0"]}}]}`

func scan(t *testing.T, n *hosttest.Node, cfg string) *deviceplugin.Tree {
	t.Helper()
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := deviceplugin.ParseConfig([]byte(cfg), "")
	if err != nil {
		t.Fatal(err)
	}
	return deviceplugin.NewTree(snap, c)
}

func published(t *testing.T, n *hosttest.Node, cfg string) []resourceapi.Device {
	t.Helper()
	res, err := Resources("node-a", scan(t, n, cfg))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pools) != 1 {
		t.Fatalf("pools = %v, want one named after the node", slices.Collect(maps.Keys(res.Pools)))
	}
	var devs []resourceapi.Device
	for _, s := range res.Pools["node-a"].Slices {
		devs = append(devs, s.Devices...)
	}
	return devs
}

func str(s string) resourceapi.DeviceAttribute {
	return resourceapi.DeviceAttribute{StringValue: ptr.To(s)}
}
func num(i int) resourceapi.DeviceAttribute {
	return resourceapi.DeviceAttribute{IntValue: ptr.To(int64(i))}
}
func boolean(b bool) resourceapi.DeviceAttribute {
	return resourceapi.DeviceAttribute{BoolValue: ptr.To(b)}
}

// TestResourcesOneDevicePerVFOfDRAPools: every VF of the DRA pools is one
// device with the attributes CEL uses; the device-plugin pool is left out.
func TestResourcesOneDevicePerVFOfDRAPools(t *testing.T) {
	n := testNode(t, 2)
	devs := published(t, n, config)
	var names []string
	for _, d := range devs {
		names = append(names, d.Name)
	}
	want := []string{DeviceName(n.VFAddress(cx0, 0)), DeviceName(n.VFAddress(cx0, 1)), DeviceName(n.VFAddress(e810, 0)), DeviceName(n.VFAddress(e810, 1))}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("devices = %v, want the VFs of ens1f0 and ens2f0 only: %v", names, want)
	}

	vf := n.VFAddress(cx0, 1)
	i := slices.IndexFunc(devs, func(d resourceapi.Device) bool { return d.Name == DeviceName(vf) })
	wantAttrs := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		"resource.kubernetes.io/pciBusID": str(vf),
		"resource.kubernetes.io/pcieRoot": str("pci0000:3a"),
		"resource.kubernetes.io/numaNode": num(0),
		"numaNode":                        num(0),
		"pool":                            str("rail"),
		"healthy":                         boolean(true),
		"pfName":                          str("ens1f0"),
		"pfPciAddress":                    str(cx0),
		"vfIndex":                         num(1),
		"vendor":                          str("15b3"),
		"deviceID":                        str("101e"),
		"driver":                          str("mlx5_core"),
		"linkType":                        str("eth"),
		"mtu":                             num(1500),
		"rdma":                            boolean(true),
		"rdmaDevice":                      str(n.RDMADevice(vf)),
	}
	if n.RDMADevice(vf) == "" {
		t.Fatal("the fake ConnectX-6 VF has no RDMA device")
	}
	if !reflect.DeepEqual(devs[i].Attributes, wantAttrs) {
		t.Errorf("attributes of %s =\n%s\nwant\n%s", vf, dump(devs[i].Attributes), dump(wantAttrs))
	}
	if len(devs[i].Attributes) > resourceapi.ResourceSliceMaxAttributesAndCapacitiesPerDevice {
		t.Errorf("%d attributes, the API allows %d", len(devs[i].Attributes), resourceapi.ResourceSliceMaxAttributesAndCapacitiesPerDevice)
	}

	e := devs[slices.IndexFunc(devs, func(d resourceapi.Device) bool { return d.Name == DeviceName(n.VFAddress(e810, 0)) })]
	for name, want := range map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		"pool": str("intel"), "rdma": boolean(false), "driver": str("iavf"), "vendor": str("8086"), "deviceID": str("1889"),
		"resource.kubernetes.io/pcieRoot": str("pci0000:85"), "numaNode": num(1), "vfIndex": num(0),
	} {
		if got := e.Attributes[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("E810 VF %s = %s, want %s", name, dump1(got), dump1(want))
		}
	}
	if _, ok := e.Attributes["rdmaDevice"]; ok {
		t.Error("E810 VF has an rdmaDevice attribute without an RDMA device")
	}
}

// TestResourcesFollowTheNode: health, MTU and VF count changes show in the
// next scan's devices, which are exactly the VFs present.
func TestResourcesFollowTheNode(t *testing.T) {
	n := testNode(t, 2)
	n.SetCarrier("ens2f0", false)
	for _, set := range []struct {
		netdev string
		mtu    int
	}{{"ens1f0", 9000}, {n.Netdev(n.VFAddress(cx0, 0)), 4000}} { // the PF first: a VF's MTU cannot exceed its PF's
		netdev, mtu := set.netdev, set.mtu
		l, err := n.LinkByName(netdev)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.LinkSetMTU(l, mtu); err != nil {
			t.Fatalf("MTU %d on %s: %v", mtu, netdev, err)
		}
	}
	devs := published(t, n, config)
	byName := map[string]resourceapi.Device{}
	for _, d := range devs {
		byName[d.Name] = d
	}
	if h := byName[DeviceName(n.VFAddress(e810, 1))].Attributes["healthy"]; h.BoolValue == nil || *h.BoolValue {
		t.Errorf("VF of a PF without carrier: healthy = %s, want false", dump1(h))
	}
	if m := byName[DeviceName(n.VFAddress(cx0, 0))].Attributes["mtu"]; m.IntValue == nil || *m.IntValue != 4000 {
		t.Errorf("mtu = %s, want the VF netdev's 4000 (its PF has 9000)", dump1(m))
	}

	n.SetNumVFs(e810, 0)
	n.SetNumVFs(e810, 1)
	devs = published(t, n, config)
	if len(devs) != 3 {
		t.Errorf("%d devices after ens2f0 went to 1 VF, want 3", len(devs))
	}
	// No DRA pool at all: one empty slice, so that the node's old ones go.
	res, err := Resources("node-a", scan(t, n, `{"pools": []}`))
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Pools["node-a"].Slices; len(s) != 1 || len(s[0].Devices) != 0 {
		t.Errorf("slices without DRA pools = %+v, want one empty slice", s)
	}
}

// TestResourcesSplitIntoSlices: a pool larger than a ResourceSlice holds
// is split, in device-name order, each slice at the API's limit.
func TestResourcesSplitIntoSlices(t *testing.T) {
	n := testNode(t, 100)
	res, err := Resources("node-a", scan(t, n, config))
	if err != nil {
		t.Fatal(err)
	}
	ss := res.Pools["node-a"].Slices
	if len(ss) != 2 || len(ss[0].Devices) != resourceapi.ResourceSliceMaxDevices || len(ss[1].Devices) != 200-resourceapi.ResourceSliceMaxDevices {
		t.Fatalf("slices of %v devices, want 128 and 72", lens(ss))
	}
	var names []string
	for _, s := range ss {
		for _, d := range s.Devices {
			names = append(names, d.Name)
		}
	}
	if !slices.IsSorted(names) {
		t.Error("devices are not in name order across slices")
	}
}

func TestDeviceName(t *testing.T) {
	if got := DeviceName("0000:3B:00.2"); got != "vf-0000-3b-00-2" {
		t.Errorf("DeviceName = %q", got)
	}
}

func lens(ss []resourceslice.Slice) []int {
	out := []int{}
	for _, s := range ss {
		out = append(out, len(s.Devices))
	}
	return out
}

func dump(m map[resourceapi.QualifiedName]resourceapi.DeviceAttribute) string {
	s := ""
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s += fmt.Sprintf("  %s: %s\n", k, dump1(m[k]))
	}
	return s
}

func dump1(a resourceapi.DeviceAttribute) string {
	switch {
	case a.StringValue != nil:
		return fmt.Sprintf("%q", *a.StringValue)
	case a.IntValue != nil:
		return fmt.Sprint(*a.IntValue)
	case a.BoolValue != nil:
		return fmt.Sprint(*a.BoolValue)
	}
	return "<none>"
}

func TestStartRejectsBadOptions(t *testing.T) {
	long := strings.Repeat("a", 60) + ".example.com"
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{NodeName: "n", KubeClient: fake.NewClientset()}, "driver name is empty"},
		{Options{DriverName: "sluice.dev", NodeName: "n", KubeClient: fake.NewClientset()}, "no host to configure VFs on"},
		{Options{DriverName: long, NodeName: "n", KubeClient: fake.NewClientset()}, "use a shorter --resource-prefix"},
		{Options{DriverName: "Sluice_Dev", NodeName: "n", KubeClient: fake.NewClientset()}, "must be a DNS subdomain"},
		{Options{DriverName: "sluice.dev", KubeClient: fake.NewClientset()}, "node name is empty"},
		{Options{DriverName: "sluice.dev", NodeName: "n"}, "no Kubernetes client"},
	} {
		_, err := Start(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to say %q", tc.o, err, tc.want)
		}
	}
}

// TestResourcesLeaveOutVFsHeldThroughTheCNI: a VF a pod holds through
// sluice-cni (its pool moved to DRA under the pod) is not published until
// the pod gives it back.
func TestResourcesLeaveOutVFsHeldThroughTheCNI(t *testing.T) {
	n := testNode(t, 2)
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := deviceplugin.ParseConfig([]byte(config), "")
	if err != nil {
		t.Fatal(err)
	}
	held := n.VFAddress(cx0, 1)
	tree := deviceplugin.NewTreeAttached(snap, c, map[string]nodefiles.Record{held: {PCIAddress: held, PodNamespace: "ns", PodName: "old"}})
	res, err := Resources("node-a", tree)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.Pools["node-a"].Slices {
		for _, d := range s.Devices {
			names = append(names, d.Name)
		}
	}
	if slices.Contains(names, DeviceName(held)) || len(names) != 3 {
		t.Errorf("devices %v: want the 3 VFs of the DRA pools but %s, which a pod holds", names, held)
	}
}
