package controllers

import (
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// CheckCNIConfig returns why the operator could not render a VFNetwork of
// this spec (an unusable spec.ipam, spec.capabilities or spec.metaPlugins:
// the message its Ready condition would carry, naming the field and the
// fix), nil when it can. It checks what the CRD's schema leaves to the
// operator; `sluice migrate` runs it on the VFNetworks it writes.
func CheckCNIConfig(spec sluicev1.VFNetworkSpec) error {
	_, err := renderCNIConfig(&sluicev1.VFNetwork{Spec: spec}, "check/check", false)
	return err
}

// TenantRefusals returns, for a VFNetwork outside platformNamespace, one
// phrase per field it may not set there, naming the field and the fix (the
// admission policy's words); nil for an allowed one and for every
// VFNetwork in platformNamespace.
func TenantRefusals(vfn *sluicev1.VFNetwork, platformNamespace string) []string {
	return tenantRefusals(vfn, platformNamespace)
}
