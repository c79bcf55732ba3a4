package envtest

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// A numVfs 0 policy selecting PFs by vendor and device (an
// SriovNetworkNodePolicy as sriov-network-operator renders it for its
// device plugin) lists its PFs with 0 VFs and gets a pool of the PFs
// themselves in the node's spec; the node counts as ready once applied.
func TestOperatorRendersWholePFPool(t *testing.T) {
	startOperator(t)
	label := uniqueName(t, "l")
	node := uniqueName(t, "n0")
	createNode(t, node, map[string]string{"sluice.dev/test": label})
	agentReports(t, node, twoPFs())
	p := testPolicy(uniqueName(t, "z"), label, 10)
	p.Spec.NumVfs = 0
	p.Spec.NicSelector.DeviceID = "101b"
	p.Spec.IsRdma = true
	createPolicy(t, p)

	want := []sluicev1.DevicePluginPool{{
		ResourceName: p.Spec.ResourceName,
		Selectors:    sluicev1.PoolSelectors{Vendors: []string{"15b3"}, Devices: []string{"101b"}, IsRdma: true},
	}}
	eventually(t, "whole-PF pool rendered", func() error {
		nns, err := getNNS(node)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(nns.Spec.Pools, want) {
			return errorf("pools = %+v, want %+v", nns.Spec.Pools, want)
		}
		if len(nns.Spec.Interfaces) != 2 || nns.Spec.Interfaces[0].NumVfs != 0 || nns.Spec.Interfaces[1].NumVfs != 0 {
			return errorf("interfaces = %+v, want both PFs with 0 VFs", nns.Spec.Interfaces)
		}
		return nil
	})
	agentSynced(t, node, sluicev1.SyncSucceeded, nil)
	policyCounts(t, p.Name, 1, 1, metav1.ConditionTrue, "Applied")
}
