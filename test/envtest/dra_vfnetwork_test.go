package envtest

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/sluice-net/sluice/api/dradevice"
	"github.com/sluice-net/sluice/api/nodefiles"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/deviceplugin/dra"
	"github.com/sluice-net/sluice/host/hosttest"
)

// TestDRADriverResolvesVFNetwork runs the DRA driver as the node agent's
// ServiceAccount (config/'s RBAC) and prepares claims whose config names a
// VFNetwork stored in the API server: the platform VFNetwork made for the
// claim's namespace applies (its VLAN on the VF, its mtu and ipam in the
// checkpoint); one of another pool, another tenant's and a missing one are
// refused, the VF untouched.
func TestDRADriverResolvesVFNetwork(t *testing.T) {
	ctx := context.Background()
	ns := installAgentObjects(t, func(o *unstructured.Unstructured) bool { return o.GetName() == agentAccount })
	node := createNode(t, uniqueName(t, "node"), nil)
	cfg := agentConfig(t, ns, node)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vfns, err := dra.NewVFNetworkClient(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// The claims' namespace, and a tenant's next to it.
	team, other := uniqueName(t, "team"), uniqueName(t, "other")
	for _, n := range []string{team, other} {
		mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
	vfn := func(ns, name string, spec sluicev1.VFNetworkSpec) {
		t.Helper()
		o := &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("create VFNetwork %s/%s: %v", ns, name, err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
	vfn(ns, "rail-team", sluicev1.VFNetworkSpec{ResourceName: "rail", NetworkNamespace: team,
		VLAN: 300, MTU: 9000, IPAM: `{"type": "host-local", "subnet": "10.56.217.0/24"}`})
	vfn(other, "theirs", sluicev1.VFNetworkSpec{ResourceName: "rail"})

	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(draCX, "ens1f0", 0))
	n.AddPF(hosttest.E810(draE8, "ens2f0", 1))
	n.AddPF(hosttest.ConnectX6("0000:d8:00.0", "ens9f0", 1))
	for _, pf := range n.PFs() {
		n.SetNumVFs(pf, 2)
	}
	dir, err := os.MkdirTemp("", "dra-envtest-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	d, err := dra.Start(ctx, dra.Options{
		DriverName: "sluice.dev", NodeName: node.Name, KubeClient: cs, Node: n.Host(),
		VFNetworks: vfns, PlatformNamespace: ns,
		PluginDir: dir + "/plugin", RegistryDir: dir + "/registry", Log: testr.New(t),
		ClaimsDir: dir + "/claims", CDIDir: dir + "/cdi", AttachmentsDir: dir + "/attachments", LockDir: dir + "/locks",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	if err := d.Publish(ctx, draTree(t, n, draCfg)); err != nil {
		t.Fatal(err)
	}

	railVF, intelVF := n.VFAddress(draCX, 0), n.VFAddress(draE8, 0)
	claim := func(uid, pci, ref string) *resourcev1.ResourceClaim {
		c := &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "claim-" + uid[:4], UID: types.UID(uid)}}
		c.Status.Allocation = &resourcev1.AllocationResult{Devices: resourcev1.DeviceAllocationResult{
			Results: []resourcev1.DeviceRequestAllocationResult{{Request: "vf", Driver: "sluice.dev", Pool: node.Name, Device: dra.DeviceName(pci)}},
			Config: []resourcev1.DeviceAllocationConfiguration{{Source: resourcev1.AllocationConfigSourceClaim,
				DeviceConfiguration: resourcev1.DeviceConfiguration{Opaque: &resourcev1.OpaqueDeviceConfiguration{Driver: "sluice.dev",
					Parameters: runtime.RawExtension{Raw: []byte(`{"apiVersion": "sluice.dev/v1alpha1", "kind": "VFClaimConfig", "vfNetwork": ` + ref + `}`)}}}}},
		}}
		return c
	}
	prepare := func(c *resourcev1.ResourceClaim) error {
		t.Helper()
		res, err := d.PrepareResourceClaims(ctx, []*resourcev1.ResourceClaim{c})
		if err != nil {
			t.Fatal(err)
		}
		return res[c.UID].Err
	}

	const uid = "5a1c0e00-0001-4c5e-9e55-7d2f0c1a2b3c"
	// RBAC takes a moment to reach the API server's authorizer: a refused
	// read fails the Prepare, changing nothing, and the kubelet retries.
	var last error
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
		last = prepare(claim(uid, railVF, `{"name": "rail-team", "namespace": "`+ns+`"}`))
		return last == nil, nil
	}); err != nil {
		t.Fatalf("Prepare of the claim naming VFNetwork %s/rail-team: %v", ns, last)
	}
	s, err := n.Host().VFSettingsOf("ens1f0", 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.VLAN != 300 {
		t.Errorf("VF %s VLAN %d, want the VFNetwork's 300", railVF, s.VLAN)
	}
	cp, ok, err := nodefiles.NewDRAClaims(dir + "/claims").Get(uid)
	if err != nil || !ok || len(cp.Devices) != 1 {
		t.Fatalf("checkpoint = %+v, %v, %v", cp, ok, err)
	}
	rec, err := dradevice.DecodeClaimConfig(cp.Devices[0].Config)
	if err != nil {
		t.Fatalf("recorded config %s: %v", cp.Devices[0].Config, err)
	}
	var ipam struct{ Type, Subnet string }
	if err := json.Unmarshal(rec.IPAM, &ipam); err != nil {
		t.Fatal(err)
	}
	if rec.MTU == nil || *rec.MTU != 9000 || ipam.Subnet != "10.56.217.0/24" || rec.VFNetwork != nil {
		t.Errorf("recorded config %s, want the VFNetwork's mtu and ipam", cp.Devices[0].Config)
	}

	before, err := n.Host().VFSettingsOf("ens2f0", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name, pci, ref, want string
	}{
		{"another pool's VF", intelVF, `{"name": "rail-team", "namespace": "` + ns + `"}`,
			"vfNetwork " + ns + "/rail-team serves pool rail (spec.resourceName), but device " + dra.DeviceName(intelVF) + " (request vf) is a VF of pool intel"},
		{"another tenant's", intelVF, `{"name": "theirs", "namespace": "` + other + `"}`,
			"a claim in namespace " + team + " may not use it"},
		{"missing", intelVF, `{"name": "nope"}`, "there is no VFNetwork " + team + "/nope"},
	} {
		u := "5a1c0e00-000" + string(rune('2'+i)) + "-4c5e-9e55-7d2f0c1a2b3c"
		if err := prepare(claim(u, tc.pci, tc.ref)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Prepare = %v, want it to say %q", tc.name, err, tc.want)
		}
		if s, err := n.Host().VFSettingsOf("ens2f0", 0); err != nil || s != before {
			t.Errorf("%s: VF %s = %+v (%v), want it untouched", tc.name, intelVF, s, err)
		}
	}

	res, err := d.UnprepareResourceClaims(ctx, []kubeletplugin.NamespacedObject{{NamespacedName: types.NamespacedName{Namespace: team, Name: "claim-5a1c"}, UID: uid}})
	if err != nil || res[uid] != nil {
		t.Fatalf("Unprepare: %v, %v", res, err)
	}
	if s, err := n.Host().VFSettingsOf("ens1f0", 0); err != nil || s.VLAN != 0 {
		t.Errorf("VF %s after Unprepare: %+v, %v, want its VLAN gone", railVF, s, err)
	}
}
