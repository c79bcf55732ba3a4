package deviceplugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/deviceplugin/kubelettest"
	"github.com/sluice-net/sluice/host/hosttest"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// bigNode is 8 ConnectX-6 PFs with 128 VFs each (1,024 VFs, each with an
// RDMA device), 4 PFs per NUMA node.
func bigNode(b *testing.B) (*hosttest.Node, []string) {
	b.Helper()
	n := hosttest.NewAt(b.TempDir())
	var pfs []string
	for i := range 8 {
		addr := fmt.Sprintf("0000:%02x:00.0", 0x10+i)
		n.AddPF(hosttest.ConnectX6(addr, fmt.Sprintf("ens%df0", i+1), i/4))
		n.SetNumVFs(addr, 128)
		pfs = append(pfs, addr)
	}
	return n, pfs
}

const bigConfig = `{"pools":[{"resourceName":"rdma","deviceType":"netdevice","selectors":{"vendors":["15b3"],"devices":["101e"],"isRdma":true}}]}`

func bigManager(b *testing.B, n *hosttest.Node, pfs []string, kubeletDir string) *Manager {
	b.Helper()
	dir := b.TempDir()
	cfg := filepath.Join(dir, "device-plugin.json")
	if err := os.WriteFile(cfg, []byte(bigConfig), 0o644); err != nil {
		b.Fatal(err)
	}
	readiness := filepath.Join(dir, "readiness.json")
	if err := nodefiles.WriteGate(readiness, nodefiles.GateState{Ready: pfs}); err != nil {
		b.Fatal(err)
	}
	m, err := NewManager(Options{
		ConfigFile: cfg, ReadinessFile: readiness, KubeletDir: kubeletDir,
		AttachmentsDir: filepath.Join(dir, "attachments"), DeviceInfoDir: filepath.Join(dir, "devinfo"),
		Host: n.Host(), LinkEvents: newFakeLinks(), Log: logr.Discard(),
	})
	if err != nil {
		b.Fatal(err)
	}
	m.loadConfig()
	return m
}

// BenchmarkRescan is one rescan of 1,024 VFs: discovery of the fake node,
// gate and attachment reads, tree build and the diff against the last
// tree (nothing changed, so no server is touched).
func BenchmarkRescan(b *testing.B) {
	n, pfs := bigNode(b)
	kdir, err := os.MkdirTemp("", "kubelet")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(kdir)
	m := bigManager(b, n, pfs, kdir)
	defer m.stopAll()
	ctx := context.Background()
	if err := m.scan(ctx); err != nil {
		b.Fatal(err)
	}
	if got := m.Counts()[0]; got.Advertised != 1024 || got.Healthy != 1024 {
		b.Fatalf("counts = %+v", got)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := m.scan(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildTree is the scan without discovery: tree build and diff.
func BenchmarkBuildTree(b *testing.B) {
	n, pfs := bigNode(b)
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(bigConfig), "")
	if err != nil {
		b.Fatal(err)
	}
	g := &nodefiles.GateState{Ready: pfs}
	prev := buildTree(scanInput{snap: snap, cfg: cfg, gate: g})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t := buildTree(scanInput{snap: snap, cfg: cfg, gate: g, prev: prev})
		if !t.Pools["sluice.dev/rdma"].sameAs(prev.Pools["sluice.dev/rdma"]) {
			b.Fatal("tree changed")
		}
	}
}

// BenchmarkAllocate is one Allocate of one VF (with its RDMA char devices)
// from a pool of 1,024, through gRPC on the plugin's unix socket as the
// kubelet calls it.
func BenchmarkAllocate(b *testing.B) {
	n, pfs := bigNode(b)
	k := kubelettest.New(b)
	m := bigManager(b, n, pfs, k.Dir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	s := k.Wait("sluice.dev/rdma", wait*4, "1024 VFs", func(s kubelettest.Snapshot) bool { return len(s.Devices) == 1024 })
	ids := s.IDs()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		r, err := k.Allocate(ctx, "sluice.dev/rdma", ids[i%len(ids)])
		if err != nil || len(r.Devices) != 2 {
			b.Fatalf("Allocate = %v, %v", r, err)
		}
		i++
	}
}

// bigPoolServer is the pool of bigNode's 1,024 VFs and its server, built
// from a discovery of the node without gRPC or a kubelet.
func bigPoolServer(b *testing.B) (*PoolDevices, *poolServer) {
	b.Helper()
	n, pfs := bigNode(b)
	snap, err := n.Host().Discover(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(bigConfig), "")
	if err != nil {
		b.Fatal(err)
	}
	pd := buildTree(scanInput{snap: snap, cfg: cfg, gate: &nodefiles.GateState{Ready: pfs}}).Pools["sluice.dev/rdma"]
	return pd, newPoolServer(pd, b.TempDir(), allocator{devPath: n.Host().DevPath}, logr.Discard())
}

// BenchmarkAllocateHandler is the plugin's own share of an Allocate: the
// response for one VF of 1,024, without gRPC.
func BenchmarkAllocateHandler(b *testing.B) {
	pd, srv := bigPoolServer(b)
	req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{pd.Devices[517].ID}}}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := srv.Allocate(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetPreferredAllocation is the plugin's answer to the kubelet's
// question for a pod of 8 VFs out of the 1,024 of a pool (4 PFs on each of
// 2 NUMA nodes), one of them a must-include: VFs no pod still holds, on
// one NUMA node, spread over its PFs. 64 VFs have attachment records: 62
// in running pods (not available), 2 whose pods are gone but whose DEL has
// not run (available, passed over). It runs for every pod the kubelet
// admits with a VF request.
func BenchmarkGetPreferredAllocation(b *testing.B) {
	pd, srv := bigPoolServer(b)
	att := nodefiles.NewAttachments(b.TempDir())
	srv.attached = att.PCIAddresses
	avail := make([]string, 0, len(pd.Devices))
	for i, d := range pd.Devices {
		if i < 64 {
			if err := att.Put(nodefiles.Record{PCIAddress: d.PCIAddress, ContainerID: "c", IfName: "net1"}); err != nil {
				b.Fatal(err)
			}
			if i >= 2 {
				continue
			}
		}
		avail = append(avail, d.ID)
	}
	req := &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
		AvailableDeviceIDs: avail, MustIncludeDeviceIDs: []string{pd.Devices[700].ID}, AllocationSize: 8,
	}}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := srv.GetPreferredAllocation(context.Background(), req)
		if err != nil || len(r.ContainerResponses[0].DeviceIDs) != 8 {
			b.Fatalf("GetPreferredAllocation = %v, %v", r, err)
		}
	}
}
