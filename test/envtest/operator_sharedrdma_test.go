package envtest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// sharedRDMAPolicy is what a k8s-rdma-shared-dev-plugin configList entry
// becomes: {"resourceName": "hca_shared", "rdmaHcaMax": 1000, "selectors":
// {"vendors": ["15b3"], "ifNames": ["ib0", "ib1"]}}.
func sharedRDMAPolicy(name, label string) *sluicev1.NetworkNodePolicy {
	return &sluicev1.NetworkNodePolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: sluicev1.NetworkNodePolicySpec{
			NodeSelector: map[string]string{"sluice.dev/test": label},
			ResourceName: "hca_shared",
			SharedRDMA: &sluicev1.SharedRDMASpec{
				MaxPods: 1000, Vendors: []string{"15b3"}, IfNames: []string{"ib0", "ib1"},
			},
		},
	}
}

func TestSharedRDMAPolicyValidation(t *testing.T) {
	ctx := context.Background()
	ok := sharedRDMAPolicy(uniqueName(t, "ok"), "x")
	ok.Spec.SharedRDMA.DeviceIDs = []string{"0x101B"}
	ok.Spec.SharedRDMA.Drivers = []string{"mlx5_core"}
	ok.Spec.SharedRDMA.LinkTypes = []string{"infiniband"}
	if err := env.Client.Create(ctx, ok); err != nil {
		t.Fatalf("shared RDMA policy with every selector rejected: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, ok) })

	for i, tc := range []struct {
		name       string
		mutate     func(*sluicev1.NetworkNodePolicySpec)
		field, msg string
	}{
		{"creates VFs", func(s *sluicev1.NetworkNodePolicySpec) { s.NumVfs = 8 }, "spec.sharedRdma", "set numVfs 0 and leave nicSelector empty"},
		{"selects NICs", func(s *sluicev1.NetworkNodePolicySpec) { s.NicSelector.Vendor = "15b3" }, "spec.sharedRdma", "leave nicSelector empty"},
		{"RDMA on VFs too", func(s *sluicev1.NetworkNodePolicySpec) { s.IsRdma = true }, "spec.sharedRdma", "remove rdma, isRdma"},
		{"vfio-pci", func(s *sluicev1.NetworkNodePolicySpec) { s.DeviceType = sluicev1.DeviceTypeVfioPci }, "spec.sharedRdma", "keep deviceType netdevice"},
		{"MTU", func(s *sluicev1.NetworkNodePolicySpec) { s.MTU = 9000 }, "spec.sharedRdma", "mtu"},
		{"PF linkType", func(s *sluicev1.NetworkNodePolicySpec) { s.LinkType = "ib" }, "spec.sharedRdma", "use sharedRdma.linkTypes"},
		{"no selector", func(s *sluicev1.NetworkNodePolicySpec) {
			s.SharedRDMA = &sluicev1.SharedRDMASpec{MaxPods: 10}
		}, "spec.sharedRdma", "set at least one of vendors, deviceIDs, drivers, ifNames or linkTypes"},
		{"maxPods 0", func(s *sluicev1.NetworkNodePolicySpec) { s.SharedRDMA.MaxPods = 0 }, "spec.sharedRdma.maxPods", "greater than or equal to 1"},
		{"maxPods too many", func(s *sluicev1.NetworkNodePolicySpec) { s.SharedRDMA.MaxPods = 10001 }, "spec.sharedRdma.maxPods", "less than or equal to 10000"},
		{"vendor not hex", func(s *sluicev1.NetworkNodePolicySpec) { s.SharedRDMA.Vendors = []string{"mlnx"} }, "spec.sharedRdma.vendors[0]", "should match"},
		{"link type", func(s *sluicev1.NetworkNodePolicySpec) { s.SharedRDMA.LinkTypes = []string{"fc"} }, "spec.sharedRdma.linkTypes[0]", "supported values"},
		{"ifName with slash", func(s *sluicev1.NetworkNodePolicySpec) { s.SharedRDMA.IfNames = []string{"ib/0"} }, "spec.sharedRdma.ifNames[0]", "should match"},
		{"allocation DRA", func(s *sluicev1.NetworkNodePolicySpec) { s.Allocation = sluicev1.AllocationDRA }, "spec.allocation", "served by the device plugin only"},
		{"no sharedRdma, empty nicSelector", func(s *sluicev1.NetworkNodePolicySpec) { s.SharedRDMA = nil; s.NumVfs = 1 }, "spec.nicSelector", "at least one of vendor, deviceID, pfNames or rootDevices"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := sharedRDMAPolicy(fmt.Sprintf("%s-%d", uniqueName(t, "bad"), i), "x")
			tc.mutate(&p.Spec)
			assertRejected(t, ctx, p, tc.field, tc.msg)
		})
	}
}

// The operator renders a shared RDMA policy into the node's device-plugin
// pools (k8s-rdma-shared-dev-plugin's sharing: WholeSet), next to a VF
// policy's pool, and counts the node ready once the agent applied it.
func TestOperatorRendersSharedRDMAPool(t *testing.T) {
	startOperator(t)
	label := uniqueName(t, "l")
	node := uniqueName(t, "n0")
	createNode(t, node, map[string]string{"sluice.dev/test": label})
	agentReports(t, node, twoPFs())
	vf := testPolicy(uniqueName(t, "a"), label, 10, "ens1f0")
	sh := sharedRDMAPolicy(uniqueName(t, "s"), label)
	createPolicy(t, vf)
	createPolicy(t, sh)

	want := sluicev1.DevicePluginPool{
		ResourceName: "hca_shared", RDMAHcaMax: 1000, RDMASharing: sluicev1.RDMASharingWholeSet,
		Selectors: sluicev1.PoolSelectors{Vendors: []string{"15b3"}, IfNames: []string{"ib0", "ib1"}, IsRdma: true},
	}
	eventually(t, "shared RDMA pool rendered", func() error {
		nns, err := getNNS(node)
		if err != nil {
			return err
		}
		if len(nns.Spec.Pools) != 2 || !reflect.DeepEqual(nns.Spec.Pools[0], want) || nns.Spec.Pools[1].ResourceName != vf.Spec.ResourceName {
			return errorf("pools = %+v, want the shared pool %+v and %s", nns.Spec.Pools, want, vf.Spec.ResourceName)
		}
		// The shared policy claims no PF.
		if got := groupsOf(nns.Spec.Interfaces); !reflect.DeepEqual(got, []string{"ens1f0:" + vf.Name + "@1:0-7"}) {
			return errorf("groups = %v", got)
		}
		return nil
	})
	policyCounts(t, sh.Name, 1, 0, metav1.ConditionFalse, "Progressing")
	agentSynced(t, node, sluicev1.SyncSucceeded, nil)
	policyCounts(t, sh.Name, 1, 1, metav1.ConditionTrue, "Applied")

	// A new maxPods is not ready until rendered and applied.
	p, err := getPolicy(sh.Name)
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.SharedRDMA.MaxPods = 8
	if err := env.Client.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "maxPods 8 rendered", func() error {
		nns, err := getNNS(node)
		if err != nil {
			return err
		}
		if len(nns.Spec.Pools) == 0 || nns.Spec.Pools[0].RDMAHcaMax != 8 {
			return errorf("pools = %+v", nns.Spec.Pools)
		}
		return nil
	})
	policyCounts(t, sh.Name, 1, 0, metav1.ConditionFalse, "Progressing")
	agentSynced(t, node, sluicev1.SyncSucceeded, nil)
	policyCounts(t, sh.Name, 1, 1, metav1.ConditionTrue, "Applied")
}
