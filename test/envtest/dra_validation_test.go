package envtest

import (
	"context"
	"fmt"
	"testing"

	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// TestDRAAllocationField: allocation defaults to DevicePlugin, DRA is
// accepted on a valid pool, and the combinations DRA cannot serve are
// rejected naming the field and the fix.
func TestDRAAllocationField(t *testing.T) {
	ctx := context.Background()
	p := validPolicy("dra-default")
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, p) })
	if p.Spec.Allocation != sluicev1.AllocationDevicePlugin {
		t.Errorf("allocation defaulted to %q, want DevicePlugin", p.Spec.Allocation)
	}

	dra := validPolicy("dra-valid")
	dra.Spec.Allocation = sluicev1.AllocationDRA
	if err := env.Client.Create(ctx, dra); err != nil {
		t.Fatalf("DRA policy rejected: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, dra) })

	cases := []struct {
		name       string
		mutate     func(*sluicev1.NetworkNodePolicySpec)
		field, msg string
	}{
		{"unknown allocation", func(s *sluicev1.NetworkNodePolicySpec) { s.Allocation = "Both" }, "spec.allocation", `supported values: "DevicePlugin", "DRA"`},
		{"DRA resourceName with capitals", func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = "Intel_SRIOV" }, "spec.resourceName", "must be a DNS label"},
		{"DRA resourceName with _", func(s *sluicev1.NetworkNodePolicySpec) { s.ResourceName = "rdma_a" }, "spec.resourceName", "rename the pool or use allocation DevicePlugin"},
		{"DRA with excludeTopology", func(s *sluicev1.NetworkNodePolicySpec) { s.ExcludeTopology = true }, "spec.excludeTopology", "remove excludeTopology or use allocation DevicePlugin"},
		{"DRA with needVhostNet", func(s *sluicev1.NetworkNodePolicySpec) { s.NeedVhostNet = true }, "spec.needVhostNet", "not supported with allocation DRA"},
		{"DRA with soft-RoCE", func(s *sluicev1.NetworkNodePolicySpec) {
			s.RDMA = &sluicev1.RDMASpec{Enabled: true, Mode: sluicev1.RDMAModeShared, Provider: sluicev1.RDMAProviderSoftRoCE}
		}, "spec.rdma.provider", "use provider hardware or allocation DevicePlugin"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPolicy(fmt.Sprintf("dra-invalid-%d", i))
			p.Spec.Allocation = sluicev1.AllocationDRA
			tc.mutate(&p.Spec)
			assertRejected(t, ctx, p, tc.field, tc.msg)
		})
	}

	// The same settings are fine with the device plugin.
	dp := validPolicy("dra-not-asked")
	dp.Spec.ResourceName, dp.Spec.ExcludeTopology, dp.Spec.NeedVhostNet = "rdma_a", true, true
	if err := env.Client.Create(ctx, dp); err != nil {
		t.Fatalf("device-plugin policy rejected: %v", err)
	}
	_ = env.Client.Delete(ctx, dp)
}
