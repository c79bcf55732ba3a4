package dra

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-net/sluice/api/dradevice"
	"github.com/sluice-net/sluice/api/tenancy"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
)

// A claim config's vfNetwork names a VFNetwork whose settings apply as if
// they were given inline. Prepare reads it from the API server, checks
// that the claim's namespace may attach through it (the operator's tenant
// rule, package api/tenancy) and that it serves the device's pool, and
// records the resolved settings in the checkpoint: the NRI step and a
// restarted driver read them there, never the VFNetwork again.

// VFNetworkGetter reads one VFNetwork; an error wrapping the API's not
// found when there is none (apierrors.IsNotFound).
type VFNetworkGetter interface {
	GetVFNetwork(ctx context.Context, key types.NamespacedName) (*sluicev1.VFNetwork, error)
}

// readerVFNetworks reads VFNetworks through a controller-runtime reader.
type readerVFNetworks struct{ r client.Reader }

// VFNetworksFrom reads VFNetworks through r (a client whose scheme knows
// sluice.dev/v1alpha1).
func VFNetworksFrom(r client.Reader) VFNetworkGetter { return readerVFNetworks{r} }

func (g readerVFNetworks) GetVFNetwork(ctx context.Context, key types.NamespacedName) (*sluicev1.VFNetwork, error) {
	vfn := &sluicev1.VFNetwork{}
	if err := g.r.Get(ctx, key, vfn); err != nil {
		return nil, err
	}
	return vfn, nil
}

// NewVFNetworkClient reads VFNetworks from the API server of cfg, uncached
// (one GET per reference at Prepare: the VFNetwork as it is then).
func NewVFNetworkClient(cfg *rest.Config) (VFNetworkGetter, error) {
	scheme := runtime.NewScheme()
	if err := sluicev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("VFNetwork client: %w", err)
	}
	return VFNetworksFrom(c), nil
}

// vfNetworkReadTimeout bounds the read of one VFNetwork.
const vfNetworkReadTimeout = 10 * time.Second

// resolveVFNetwork reads the VFNetwork cfg names for a claim in namespace
// ns and returns it with the config its settings make: cfg's mac and
// ifName, and the VFNetwork's settings in place of the reference. The
// errors name the field and the fix; the caller adds which config it is.
func (d *Driver) resolveVFNetwork(ctx context.Context, ns string, cfg *dradevice.ClaimConfig) (*sluicev1.VFNetwork, *dradevice.ClaimConfig, error) {
	key := types.NamespacedName{Namespace: cfg.VFNetwork.Namespace, Name: cfg.VFNetwork.Name}
	if key.Namespace == "" {
		key.Namespace = ns
	}
	if d.opts.VFNetworks == nil {
		return nil, nil, fmt.Errorf("vfNetwork %s: this driver reads no VFNetworks (dra.Options.VFNetworks is unset): give the settings inline", key)
	}
	// Prepare holds the lock the runtime's sandbox events wait for: a slow
	// API server must not hold them for long.
	ctx, cancel := context.WithTimeout(ctx, vfNetworkReadTimeout)
	defer cancel()
	vfn, err := d.opts.VFNetworks.GetVFNetwork(ctx, key)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil, fmt.Errorf("vfNetwork %s: there is no VFNetwork %s: create it, or fix vfNetwork.name and vfNetwork.namespace (empty: the claim's namespace, %s)", key, key, ns)
	case apierrors.IsForbidden(err):
		return nil, nil, fmt.Errorf("vfNetwork %s: read the VFNetwork: %w: the agent's ServiceAccount needs get on vfnetworks.sluice.dev (config/rbac/agent_role.yaml)", key, err)
	case err != nil:
		return nil, nil, fmt.Errorf("vfNetwork %s: read the VFNetwork: %w", key, err)
	}
	if why := tenancy.UseRefusal(vfn, d.opts.PlatformNamespace, ns); why != "" {
		return nil, nil, fmt.Errorf("vfNetwork %s: a claim in namespace %s may not use it, by the tenant rule the operator applies to its NetworkAttachmentDefinitions (docs/vfnetwork.md): %s", key, ns, why)
	}
	s := &vfn.Spec
	var unsupported []string
	if p := strings.ToLower(s.VLANProto); p != "" && p != "802.1q" {
		unsupported = append(unsupported, fmt.Sprintf("spec.vlanProto %q", s.VLANProto))
	}
	if s.LinkState != "" {
		unsupported = append(unsupported, fmt.Sprintf("spec.linkState %q", s.LinkState))
	}
	if s.MinTxRate != 0 {
		unsupported = append(unsupported, fmt.Sprintf("spec.minTxRate %d", s.MinTxRate))
	}
	if s.MaxTxRate != 0 {
		unsupported = append(unsupported, fmt.Sprintf("spec.maxTxRate %d", s.MaxTxRate))
	}
	if s.MetaPlugins != "" {
		unsupported = append(unsupported, "spec.metaPlugins")
	}
	if len(unsupported) > 0 {
		return nil, nil, fmt.Errorf("vfNetwork %s: sets %s, which DRA claims do not apply (they apply vlan, vlanQoS, mtu, trust, spoofChk and ipam): use a VFNetwork without them",
			key, strings.Join(unsupported, ", "))
	}
	out := &dradevice.ClaimConfig{APIVersion: cfg.APIVersion, Kind: cfg.Kind, MAC: cfg.MAC, IfName: cfg.IfName}
	// As the operator renders it for sluice-cni: 0 is unset.
	intOf := func(v int32) *int {
		if v == 0 {
			return nil
		}
		i := int(v)
		return &i
	}
	out.VLAN, out.VLANQoS, out.MTU = intOf(s.VLAN), intOf(s.VLANQoS), intOf(s.MTU)
	out.Trust, out.SpoofChk = string(s.Trust), string(s.SpoofChk)
	if s.IPAM != "" {
		out.IPAM = json.RawMessage(s.IPAM)
	}
	if err := out.Validate(); err != nil {
		return nil, nil, fmt.Errorf("vfNetwork %s: its settings are not usable: %w: fix the VFNetwork's spec", key, err)
	}
	return vfn, out, nil
}
