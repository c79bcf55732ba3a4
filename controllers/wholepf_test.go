package controllers

import (
	"encoding/json"
	"reflect"
	"testing"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin"
)

// zeroVFs is a numVfs 0 policy selecting ConnectX PFs by vendor and device,
// as an SriovNetworkNodePolicy without pfNames or rootDevices does.
func zeroVFs(mutate func(*sluicev1.NetworkNodePolicySpec)) *sluicev1.NetworkNodePolicy {
	return testPolicy("zero", 10, 0, func(s *sluicev1.NetworkNodePolicySpec) {
		s.NumVfs = 0
		s.NicSelector = sluicev1.NicSelector{Vendor: "15b3", DeviceID: "101B"}
		if mutate != nil {
			mutate(s)
		}
	})
}

// TestMergeNumVfsZeroServesPFsWhole: as sriov-network-operator renders a
// numVfs 0 policy for its device plugin (the PF's own device ID, the
// policy's vendor, link type, isRdma, excludeTopology and needVhostNet),
// the operator renders a pool of the PFs themselves, which the device
// plugin (its native format) accepts.
func TestMergeNumVfsZeroServesPFsWhole(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*sluicev1.NetworkNodePolicySpec)
		want   []sluicev1.DevicePluginPool
	}{
		{"vendor and device", nil, []sluicev1.DevicePluginPool{{ResourceName: "res-zero",
			Selectors: sluicev1.PoolSelectors{Vendors: []string{"15b3"}, Devices: []string{"101b"}}}}},
		{"link type, RDMA, topology, vhost-net", func(s *sluicev1.NetworkNodePolicySpec) {
			s.LinkType, s.IsRdma, s.ExcludeTopology, s.NeedVhostNet = "IB", true, true, true
		}, []sluicev1.DevicePluginPool{{ResourceName: "res-zero", ExcludeTopology: true, NeedVhostNet: true,
			Selectors: sluicev1.PoolSelectors{Vendors: []string{"15b3"}, Devices: []string{"101b"}, LinkTypes: []string{"infiniband"}, IsRdma: true}}}},
		{"vfio-pci: no link type, as SNO", func(s *sluicev1.NetworkNodePolicySpec) {
			s.LinkType, s.DeviceType = "eth", sluicev1.DeviceTypeVfioPci
		}, []sluicev1.DevicePluginPool{{ResourceName: "res-zero",
			Selectors: sluicev1.PoolSelectors{Vendors: []string{"15b3"}, Devices: []string{"101b"}}}}},
		{"pfNames: SNO's pool selects no PF whole", func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector = sluicev1.NicSelector{PFNames: []sluicev1.PFName{"ens1f0"}}
		}, nil},
		{"rootDevices: likewise", func(s *sluicev1.NetworkNodePolicySpec) {
			s.NicSelector.RootDevices = []sluicev1.PCIAddress{"0000:3b:00.0"}
		}, nil},
		{"DRA: no whole-PF devices", func(s *sluicev1.NetworkNodePolicySpec) {
			s.Allocation = sluicev1.AllocationDRA
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := merge(testNode(nil), zeroVFs(tc.mutate))
			if len(r.Findings) != 0 {
				t.Errorf("findings = %+v", r.Findings)
			}
			for _, in := range r.Spec.Interfaces {
				if in.NumVfs != 0 || len(in.VFGroups) != 0 {
					t.Errorf("interface %+v, want no VFs", in)
				}
			}
			if !reflect.DeepEqual(r.Spec.Pools, tc.want) {
				t.Fatalf("pools = %+v, want %+v", r.Spec.Pools, tc.want)
			}
			b, err := json.Marshal(map[string]any{"pools": r.Spec.Pools})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := deviceplugin.ParseConfig(b, ""); err != nil {
				t.Errorf("the device plugin refuses the rendered pools: %v", err)
			}
		})
	}
}

// A resourceName that is already a VF pool on the node keeps it; the
// numVfs 0 policy's PFs are not advertised under it, and it says so.
func TestMergeNumVfsZeroResourceTaken(t *testing.T) {
	vfs := testPolicy("vfs", 50, 0, func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = "res-zero" })
	r := merge(testNode(nil), zeroVFs(nil), vfs)
	if len(r.Spec.Pools) != 1 || len(r.Spec.Pools[0].Selectors.PFNames) == 0 {
		t.Errorf("pools = %+v, want the VF pool only", r.Spec.Pools)
	}
	f := findingsOf(r, FindingResourceConflict)
	if len(f) != 1 || f[0].Policy != "zero" {
		t.Fatalf("findings = %+v, want a ResourceConflict on zero", r.Findings)
	}
	assertContainsAll(t, "finding", f[0].Message, "res-zero", "a VF pool", "another resourceName")
}
