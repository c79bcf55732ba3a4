package controllers

import (
	"github.com/sluice-net/sluice/api/tenancy"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// ReasonPlatformOnly is the Ready reason of a tenant's VFNetwork that asks
// for what only a platform VFNetwork may: the operator renders nothing for
// it and removes what it rendered for it before.
const ReasonPlatformOnly = "PlatformOnly"

// tenantRefusals is the tenant rule of package api/tenancy, which the DRA
// driver applies too.
func tenantRefusals(vfn *sluicev1.VFNetwork, platformNS string) []string {
	return tenancy.Refusals(vfn, platformNS)
}

// TenantRefusal is why the operator renders nothing for a VFNetwork, the
// Ready message of reason PlatformOnly (tenancy.Refusal): the admission
// policy's message for the same object (config/admission), and empty for
// an allowed VFNetwork.
func TenantRefusal(vfn *sluicev1.VFNetwork, platformNamespace string) string {
	return tenancy.Refusal(vfn, platformNamespace)
}
