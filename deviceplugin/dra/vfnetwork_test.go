package dra

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-net/sluice/api/dradevice"
	sluicev1 "github.com/sluice-net/sluice/api/v1alpha1"
	"github.com/sluice-net/sluice/host"
)

// fakeVFNetworks is a VFNetworkGetter over a map; calls counts the reads.
type fakeVFNetworks struct {
	m     map[types.NamespacedName]*sluicev1.VFNetwork
	calls int
	// fail, when set, is every read's answer.
	fail error
}

func (f *fakeVFNetworks) GetVFNetwork(_ context.Context, key types.NamespacedName) (*sluicev1.VFNetwork, error) {
	f.calls++
	if f.fail != nil {
		return nil, f.fail
	}
	v, ok := f.m[key]
	if !ok {
		return nil, apierrors.NewNotFound(sluicev1.GroupVersion.WithResource("vfnetworks").GroupResource(), key.Name)
	}
	return v.DeepCopy(), nil
}

func (f *fakeVFNetworks) add(ns, name string, spec sluicev1.VFNetworkSpec) {
	f.m[types.NamespacedName{Namespace: ns, Name: name}] = &sluicev1.VFNetwork{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func newVFNetworkEnv(t *testing.T) (*env, *fakeVFNetworks) {
	e := newPrepareEnv(t, config)
	f := &fakeVFNetworks{m: map[types.NamespacedName]*sluicev1.VFNetwork{}}
	e.opts.VFNetworks, e.opts.PlatformNamespace = f, "sluice-system"
	e.restart()
	return e, f
}

func vfnRef(name, ns string) string {
	return `{` + hdr + `, "vfNetwork": {"name": "` + name + `", "namespace": "` + ns + `"}}`
}

// TestPrepareVFNetwork: a config naming a VFNetwork applies the
// VFNetwork's settings as if they were inline: its VLAN, QoS, trust and
// spoof checking on the VF at Prepare, and its mtu and ipam (with the
// config's own ifName) recorded in the checkpoint for the NRI step, which
// a restarted driver uses without reading the VFNetwork again.
func TestPrepareVFNetwork(t *testing.T) {
	e, f := newVFNetworkEnv(t)
	vf0, vf1 := e.n.VFAddress(cx0, 0), e.n.VFAddress(cx0, 1)
	before1 := e.settings("ens1f0", 1)
	// A platform VFNetwork for namespace ml, and a tenant's own in ml.
	f.add("sluice-system", "rail-a", sluicev1.VFNetworkSpec{ResourceName: "rail", NetworkNamespace: "ml",
		VLAN: 100, VLANQoS: 2, VLANProto: "802.1q", MTU: 9000, Trust: sluicev1.On, SpoofChk: sluicev1.Off,
		IPAM: "{\n \"type\": \"host-local\", \"subnet\": \"10.56.217.0/24\"\n}", Capabilities: `{"ips": true}`, RDMA: true})
	f.add("ml", "own", sluicev1.VFNetworkSpec{ResourceName: "rail", MTU: 1400, IPAM: `{"type": "static"}`, SpoofChk: sluicev1.On})
	c := claim(uid1, []alloc{{"a", DeviceName(vf0)}, {"b", DeviceName(vf1)}},
		opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vfNetwork": {"name": "rail-a", "namespace": "sluice-system"}, "ifName": "net1"}`, "a"),
		opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vfNetwork": {"name": "own"}}`, "b"))
	if r := e.prepare(c); r.Err != nil {
		t.Fatal(r.Err)
	}
	s0 := e.settings("ens1f0", 0)
	if s0.VLAN != 100 || s0.QoS != 2 || s0.VLANProto != host.VLANProto8021Q || !s0.Trust || s0.SpoofChk {
		t.Errorf("VF 0 = %+v, want VLAN 100, QoS 2, trust on, spoof checking off (VFNetwork rail-a)", s0)
	}
	w1 := before1
	w1.SpoofChk = true
	if s1 := e.settings("ens1f0", 1); s1 != w1 {
		t.Errorf("VF 1 = %+v, want %+v (VFNetwork own: spoof checking on, the rest untouched)", s1, w1)
	}

	check := func(step string) {
		t.Helper()
		cp, ok := e.checkpoint(uid1)
		if !ok || len(cp.Devices) != 2 {
			t.Fatalf("%s: checkpoint = %+v, %v", step, cp, ok)
		}
		// What the NRI step reads (nri.go).
		for i, want := range []struct {
			mtu          int
			ipam, ifName string
		}{{9000, "host-local", "net1"}, {1400, "static", ""}} {
			cfg, err := dradevice.DecodeClaimConfig(cp.Devices[i].Config)
			if err != nil {
				t.Fatalf("%s: device %d: recorded config %s: %v", step, i, cp.Devices[i].Config, err)
			}
			var ipam struct{ Type string }
			if err := json.Unmarshal(cfg.IPAM, &ipam); err != nil {
				t.Fatal(err)
			}
			if cfg.VFNetwork != nil || cfg.MTU == nil || *cfg.MTU != want.mtu || ipam.Type != want.ipam || cfg.IfName != want.ifName {
				t.Errorf("%s: device %d: recorded config %s, want mtu %d, ipam %s, ifName %q and no reference", step, i, cp.Devices[i].Config, want.mtu, want.ipam, want.ifName)
			}
		}
		if a := cp.Devices[0].Applied; a.VLAN == nil || *a.VLAN != 100 || a.Trust == nil || !*a.Trust {
			t.Errorf("%s: applied %+v", step, a)
		}
	}
	check("prepared")

	// A restart with the VFNetworks gone: the claim is prepared, from the
	// checkpoint alone.
	f.m = map[types.NamespacedName]*sluicev1.VFNetwork{}
	reads := f.calls
	e.restart()
	if r := e.prepare(c); r.Err != nil || len(r.Devices) != 2 {
		t.Fatalf("Prepare after a restart = %+v", r)
	}
	if f.calls != reads {
		t.Errorf("a prepared claim read VFNetworks again (%d reads)", f.calls-reads)
	}
	check("after a restart")
	if err := e.unprepare(uid1); err != nil {
		t.Fatal(err)
	}
	if s := e.settings("ens1f0", 1); s != before1 {
		t.Errorf("VF 1 after Unprepare = %+v, want %+v", s, before1)
	}
}

// TestPrepareVFNetworkRefused: a reference Prepare cannot honour fails the
// claim, naming the config, the VFNetwork and the fix, before any VF
// changes.
func TestPrepareVFNetworkRefused(t *testing.T) {
	e, f := newVFNetworkEnv(t)
	vf0, vf1 := e.n.VFAddress(cx0, 0), e.n.VFAddress(cx0, 1)
	before0, before1 := e.settings("ens1f0", 0), e.settings("ens1f0", 1)
	both := []alloc{{"rail", DeviceName(vf0)}, {"rail", DeviceName(vf1)}}
	f.add("sluice-system", "intel-net", sluicev1.VFNetworkSpec{ResourceName: "intel", NetworkNamespace: "ml", VLAN: 5})
	f.add("sluice-system", "for-team-b", sluicev1.VFNetworkSpec{ResourceName: "rail", NetworkNamespace: "team-b", VLAN: 5})
	f.add("team-b", "theirs", sluicev1.VFNetworkSpec{ResourceName: "rail"})
	f.add("ml", "tenant-vlan", sluicev1.VFNetworkSpec{ResourceName: "rail", VLAN: 5})
	f.add("sluice-system", "rated", sluicev1.VFNetworkSpec{ResourceName: "rail", NetworkNamespace: "ml", MaxTxRate: 100, LinkState: "enable"})
	f.add("sluice-system", "bad-ipam", sluicev1.VFNetworkSpec{ResourceName: "rail", NetworkNamespace: "ml", IPAM: `{"subnet": "10.0.0.0/24"}`})
	for _, tc := range []struct {
		name, cfg string
		want      []string
	}{
		{"wrong pool", vfnRef("intel-net", "sluice-system"), []string{
			"claim ml/claim-0b6e: config of the claim (allocation config[0]): vfNetwork sluice-system/intel-net serves pool intel (spec.resourceName), but device " + DeviceName(vf0) + " (request rail) is a VF of pool rail",
			"name a VFNetwork whose resourceName is rail"}},
		{"missing", vfnRef("nope", ""), []string{
			"config of the claim (allocation config[0]): vfNetwork ml/nope: there is no VFNetwork ml/nope: create it, or fix vfNetwork.name"}},
		{"platform, for another namespace", vfnRef("for-team-b", "sluice-system"), []string{
			"vfNetwork sluice-system/for-team-b: a claim in namespace ml may not use it, by the tenant rule",
			"platform VFNetwork for namespace team-b (spec.networkNamespace), not ml"}},
		{"another tenant's", vfnRef("theirs", "team-b"), []string{
			"a claim in namespace ml may not use it", "a tenant VFNetwork serves its own namespace only"}},
		{"tenant asking for a VLAN", vfnRef("tenant-vlan", ""), []string{
			"the operator renders nothing for it", "spec.vlan 5: the VLAN is an L2 boundary the platform draws"}},
		{"what DRA does not apply", vfnRef("rated", "sluice-system"), []string{
			`sets spec.linkState "enable", spec.maxTxRate 100, which DRA claims do not apply`}},
		{"unusable settings", vfnRef("bad-ipam", "sluice-system"), []string{
			`its settings are not usable: ipam: has no "type"`}},
	} {
		r := e.prepare(claim(uid1, both, opaque(resourceapi.AllocationConfigSourceClaim, tc.cfg)))
		for _, w := range tc.want {
			if r.Err == nil || !strings.Contains(r.Err.Error(), w) {
				t.Errorf("%s: Prepare = %v, want it to say %q", tc.name, r.Err, w)
			}
		}
		if e.settings("ens1f0", 0) != before0 || e.settings("ens1f0", 1) != before1 {
			t.Fatalf("%s: a refused claim changed a VF", tc.name)
		}
		if _, ok := e.checkpoint(uid1); ok {
			t.Fatalf("%s: a refused claim left a checkpoint", tc.name)
		}
	}
	// The API refuses the read.
	f.fail = apierrors.NewForbidden(sluicev1.GroupVersion.WithResource("vfnetworks").GroupResource(), "rated", nil)
	if r := e.prepare(claim(uid1, both, opaque(resourceapi.AllocationConfigSourceClaim, vfnRef("rated", "sluice-system")))); r.Err == nil ||
		!strings.Contains(r.Err.Error(), "the agent's ServiceAccount needs get on vfnetworks.sluice.dev") {
		t.Errorf("read refused: Prepare = %v", r.Err)
	}
	f.fail = nil
	// A platform VFNetwork in the claim's namespace is the platform's own:
	// pods of other namespaces get none.
	f.add("sluice-system", "home", sluicev1.VFNetworkSpec{ResourceName: "rail"})
	c := claim(uid2, both, opaque(resourceapi.AllocationConfigSourceClaim, vfnRef("home", "")))
	c.Namespace = "sluice-system"
	if r := e.prepare(c); r.Err != nil {
		t.Errorf("platform VFNetwork in its own namespace: %v", r.Err)
	}
}
