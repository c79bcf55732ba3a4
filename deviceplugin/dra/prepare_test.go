package dra

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sluice-net/sluice/api/nodefiles"
	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

// The VF setters of the fake netlink: failing them all proves that a call
// touches no VF.
var vfSetters = []string{"LinkSetVfHardwareAddr", "LinkSetVfVlanQosProto", "LinkSetVfTrust", "LinkSetVfSpoofchk", "LinkSetVfState", "LinkSetVfRate"}

func failVFSetters(n *hosttest.Node, err error) {
	for _, m := range vfSetters {
		n.FailNetlink(m, err)
	}
}

// env is a driver over a fake node, with its directories in a temp dir and
// the latest scan set as Publish would.
type env struct {
	t    *testing.T
	n    *hosttest.Node
	h    *host.Host
	opts Options
	d    *Driver
	cfg  string
}

func newPrepareEnv(t *testing.T, cfg string) *env {
	n := testNode(t, 2)
	dir := t.TempDir()
	e := &env{t: t, n: n, h: n.Host(), cfg: cfg}
	e.opts = Options{DriverName: "sluice.dev", NodeName: "node-a", KubeClient: fake.NewClientset(), Node: e.h,
		ClaimsDir: filepath.Join(dir, "claims"), CDIDir: filepath.Join(dir, "cdi"), AttachmentsDir: filepath.Join(dir, "attachments"),
		LockDir: filepath.Join(dir, "locks"), LockTimeout: time.Second}
	e.restart()
	return e
}

// restart starts a new driver on the same node and directories, as an
// agent restart does.
func (e *env) restart() {
	e.t.Helper()
	d, err := newDriver(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	d.tree = scan(e.t, e.n, e.cfg)
	e.d = d
}

func (e *env) settings(pf string, vf int) host.VFSettings {
	e.t.Helper()
	s, err := e.h.VFSettingsOf(pf, vf)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

type alloc struct {
	request, device string
}

// claim is a claim allocated the given devices of node-a, with opaque
// configs (JSON parameters, each for the requests listed after it, none:
// all).
func claim(uid string, devs []alloc, cfgs ...resourceapi.DeviceAllocationConfiguration) *resourceapi.ResourceClaim {
	c := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "claim-" + uid[:4], UID: types.UID(uid)}}
	a := &resourceapi.AllocationResult{}
	for _, d := range devs {
		a.Devices.Results = append(a.Devices.Results, resourceapi.DeviceRequestAllocationResult{Request: d.request, Driver: "sluice.dev", Pool: "node-a", Device: d.device})
	}
	a.Devices.Config = cfgs
	c.Status.Allocation = a
	return c
}

func opaque(src resourceapi.AllocationConfigSource, params string, requests ...string) resourceapi.DeviceAllocationConfiguration {
	return resourceapi.DeviceAllocationConfiguration{Source: src, Requests: requests, DeviceConfiguration: resourceapi.DeviceConfiguration{
		Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: "sluice.dev", Parameters: runtime.RawExtension{Raw: []byte(params)}}}}
}

const hdr = `"apiVersion": "sluice.dev/v1alpha1", "kind": "VFClaimConfig"`

func (e *env) prepare(c *resourceapi.ResourceClaim) kubeletplugin.PrepareResult {
	e.t.Helper()
	res, err := e.d.PrepareResourceClaims(context.Background(), []*resourceapi.ResourceClaim{c})
	if err != nil {
		e.t.Fatal(err)
	}
	return res[c.UID]
}

func (e *env) unprepare(uid string) error {
	e.t.Helper()
	res, err := e.d.UnprepareResourceClaims(context.Background(), []kubeletplugin.NamespacedObject{{UID: types.UID(uid)}})
	if err != nil {
		e.t.Fatal(err)
	}
	return res[types.UID(uid)]
}

func (e *env) checkpoint(uid string) (nodefiles.DRAClaim, bool) {
	e.t.Helper()
	c, ok, err := nodefiles.NewDRAClaims(e.opts.ClaimsDir).Get(uid)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, ok
}

func (e *env) spec(uid string) (cdispec.Spec, bool) {
	e.t.Helper()
	var s cdispec.Spec
	ok, err := nodefiles.ReadJSON(nodefiles.DRAClaimCDISpecPath(e.opts.CDIDir, uid), &s)
	if err != nil {
		e.t.Fatal(err)
	}
	return s, ok
}

const (
	uid1 = "0b6e2c1a-0001-4c5e-9e55-7d2f0c1a2b3c"
	uid2 = "0b6e2c1a-0002-4c5e-9e55-7d2f0c1a2b3c"
	uid3 = "0b6e2c1a-0003-4c5e-9e55-7d2f0c1a2b3c"
)

// TestPrepareAndUnprepare: Prepare applies the claim's PF-side settings to
// every VF of the claim (the claim's config over the class's), records
// the VFs' settings before, writes one CDI spec with each VF's RDMA char
// devices and the variables naming the VFs, and returns its CDI devices;
// a second Prepare answers the same without touching a VF; Unprepare puts
// every setting back and removes the spec and the checkpoint.
func TestPrepareAndUnprepare(t *testing.T) {
	e := newPrepareEnv(t, config)
	vf0, vf1 := e.n.VFAddress(cx0, 0), e.n.VFAddress(cx0, 1)
	// VF 1 starts with settings of its own, which must come back.
	mac, on := "02:00:00:00:00:42", true
	if err := e.h.ConfigureVF("ens1f0", 1, host.VFConfig{MAC: &mac, SpoofChk: &on}); err != nil {
		t.Fatal(err)
	}
	before0, before1 := e.settings("ens1f0", 0), e.settings("ens1f0", 1)
	c := claim(uid1, []alloc{{"rail", DeviceName(vf0)}, {"rail", DeviceName(vf1)}, {"other", "vf-0000-99-00-1"}},
		opaque(resourceapi.AllocationConfigSourceClass, `{`+hdr+`, "vlan": 7, "trust": "on"}`),
		opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlan": 100, "vlanQoS": 3, "spoofChk": "off"}`, "rail"))
	// A device of another driver and one of another node are not ours.
	c.Status.Allocation.Devices.Results[2].Driver = "gpu.example.com"
	c.Status.Allocation.Devices.Results = append(c.Status.Allocation.Devices.Results,
		resourceapi.DeviceRequestAllocationResult{Request: "rail", Driver: "sluice.dev", Pool: "node-b", Device: DeviceName(vf0)})

	res := e.prepare(c)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want := []kubeletplugin.Device{
		{Requests: []string{"rail"}, PoolName: "node-a", DeviceName: DeviceName(vf0), CDIDeviceIDs: []string{"sluice.dev/vf=" + uid1 + "-" + DeviceName(vf0)}},
		{Requests: []string{"rail"}, PoolName: "node-a", DeviceName: DeviceName(vf1), CDIDeviceIDs: []string{"sluice.dev/vf=" + uid1 + "-" + DeviceName(vf1)}},
	}
	if !reflect.DeepEqual(res.Devices, want) {
		t.Errorf("devices = %+v\nwant %+v", res.Devices, want)
	}
	for i, before := range []host.VFSettings{before0, before1} {
		got := e.settings("ens1f0", i)
		w := before
		w.VLAN, w.QoS, w.VLANProto, w.SpoofChk = 100, 3, host.VLANProto8021Q, false
		if got != w {
			t.Errorf("VF %d = %+v, want %+v (the claim's config, not the class's)", i, got, w)
		}
	}

	cp, ok := e.checkpoint(uid1)
	if !ok || cp.State != nodefiles.DRAClaimPrepared || len(cp.Devices) != 2 || cp.Namespace != "ml" {
		t.Fatalf("checkpoint = %+v, %v", cp, ok)
	}
	if d := cp.Devices[1]; d.PCIAddress != vf1 || d.PFName != "ens1f0" || d.VFIndex != 1 || d.Original != before1 ||
		*d.Applied.VLAN != 100 || d.Applied.Trust != nil || *d.Applied.SpoofChk || !strings.Contains(string(d.Config), `"vlan":100`) {
		t.Errorf("checkpoint device = %+v", d)
	}

	spec, ok := e.spec(uid1)
	if !ok || spec.Kind != "sluice.dev/vf" || len(spec.Devices) != 2 {
		t.Fatalf("CDI spec = %+v", spec)
	}
	d1 := spec.Devices[1]
	if d1.Name != uid1+"-"+DeviceName(vf1) {
		t.Errorf("CDI device name %q", d1.Name)
	}
	wantEnv := []string{"SLUICE_DRA_RAIL=" + vf0 + "," + vf1, "SLUICE_DRA_RAIL_RDMA=" + e.n.RDMADevice(vf0) + "," + e.n.RDMADevice(vf1)}
	if !slices.Equal(d1.ContainerEdits.Env, wantEnv) {
		t.Errorf("env = %v, want %v", d1.ContainerEdits.Env, wantEnv)
	}
	var nodes []string
	for _, dn := range d1.ContainerEdits.DeviceNodes {
		if dn.HostPath != e.h.DevPath(dn.Path) || dn.Permissions != "rw" {
			t.Errorf("device node %+v", dn)
		}
		nodes = append(nodes, dn.Path)
	}
	if !slices.Contains(nodes, "/dev/infiniband/rdma_cm") || !slices.ContainsFunc(nodes, func(p string) bool { return strings.Contains(p, "uverbs") }) {
		t.Errorf("device nodes %v, want the VF's RDMA char devices", nodes)
	}

	// Again: the same answer, and no VF is touched: a change made since
	// stays, and no setter is called (each fails).
	vlan := 55
	if err := e.h.ConfigureVF("ens1f0", 0, host.VFConfig{VLAN: &vlan}); err != nil {
		t.Fatal(err)
	}
	failVFSetters(e.n, syscall.EIO)
	if again := e.prepare(c); again.Err != nil || !reflect.DeepEqual(again.Devices, res.Devices) {
		t.Errorf("second Prepare = %+v, want the first's answer", again)
	}
	failVFSetters(e.n, nil)
	if s := e.settings("ens1f0", 0); s.VLAN != 55 {
		t.Errorf("second Prepare configured VF 0 again: VLAN %d", s.VLAN)
	}

	if err := e.unprepare(uid1); err != nil {
		t.Fatal(err)
	}
	if got := e.settings("ens1f0", 0); got != before0 {
		t.Errorf("VF 0 after Unprepare = %+v, want %+v", got, before0)
	}
	if got := e.settings("ens1f0", 1); got != before1 {
		t.Errorf("VF 1 after Unprepare = %+v, want %+v", got, before1)
	}
	if _, ok := e.checkpoint(uid1); ok {
		t.Error("checkpoint left after Unprepare")
	}
	if _, ok := e.spec(uid1); ok {
		t.Error("CDI spec left after Unprepare")
	}
	// Unprepared, or never prepared here: nothing to do.
	for _, uid := range []string{uid1, uid2} {
		if err := e.unprepare(uid); err != nil {
			t.Errorf("Unprepare of unknown claim %s: %v", uid, err)
		}
	}
	// The VFs are free again.
	if r := e.prepare(claim(uid2, []alloc{{"vf", DeviceName(vf0)}})); r.Err != nil {
		t.Errorf("VF 0 after Unprepare: %v", r.Err)
	}
}

// TestPrepareVfio: a vfio-pci VF's claim hands out its vfio group nodes.
func TestPrepareVfio(t *testing.T) {
	e := newPrepareEnv(t, `{"pools": [], "draPools": [{"resourceName": "dpdk", "deviceType": "vfio-pci", "selectors": {"pfNames": ["ens2f0"], "drivers": ["vfio-pci"]}}]}`)
	vf := e.n.VFAddress(e810, 0)
	e.n.AddDriver("vfio-pci")
	if err := e.h.BindDriver(context.Background(), vf, "vfio-pci"); err != nil {
		t.Fatal(err)
	}
	e.restart()
	res := e.prepare(claim(uid1, []alloc{{"dpdk", DeviceName(vf)}}, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlan": 20}`)))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	spec, _ := e.spec(uid1)
	var nodes []string
	for _, dn := range spec.Devices[0].ContainerEdits.DeviceNodes {
		nodes = append(nodes, dn.Path)
	}
	if len(nodes) != 2 || nodes[0] != "/dev/vfio/vfio" || !strings.HasPrefix(nodes[1], "/dev/vfio/") {
		t.Errorf("device nodes %v, want /dev/vfio/vfio and the VF's group", nodes)
	}
	if !slices.Equal(spec.Devices[0].ContainerEdits.Env, []string{"SLUICE_DRA_DPDK=" + vf}) {
		t.Errorf("env %v", spec.Devices[0].ContainerEdits.Env)
	}
	if s := e.settings("ens2f0", 0); s.VLAN != 20 {
		t.Errorf("VLAN %d, want 20", s.VLAN)
	}
}

// TestPrepareUndoesOnFailure: when a later step fails (the second VF's
// settings, the CDI spec), every VF is back as before, and neither a spec
// nor a checkpoint holds the VFs.
func TestPrepareUndoesOnFailure(t *testing.T) {
	e := newPrepareEnv(t, config)
	vf0, vf1 := e.n.VFAddress(cx0, 0), e.n.VFAddress(cx0, 1)
	before0, before1 := e.settings("ens1f0", 0), e.settings("ens1f0", 1)
	c := claim(uid1, []alloc{{"a", DeviceName(vf0)}, {"b", DeviceName(vf1)}},
		opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlan": 10, "mac": "02:00:00:00:00:10"}`, "a"),
		opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "trust": "on"}`, "b"))
	check := func(step string) {
		t.Helper()
		if got := e.settings("ens1f0", 0); got != before0 {
			t.Errorf("%s: VF 0 = %+v, want it back to %+v", step, got, before0)
		}
		if got := e.settings("ens1f0", 1); got != before1 {
			t.Errorf("%s: VF 1 = %+v, want %+v", step, got, before1)
		}
		if _, ok := e.checkpoint(uid1); ok {
			t.Errorf("%s: checkpoint left", step)
		}
		if _, ok := e.spec(uid1); ok {
			t.Errorf("%s: CDI spec left", step)
		}
	}

	e.n.FailNetlink("LinkSetVfTrust", syscall.EOPNOTSUPP)
	res := e.prepare(c)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "device "+DeviceName(vf1)+": configure VF "+vf1) || !strings.Contains(res.Err.Error(), "claim ml/claim-0b6e") {
		t.Fatalf("Prepare = %v, want the second VF's failure", res.Err)
	}
	check("second VF refused")
	e.n.FailNetlink("LinkSetVfTrust", nil)

	// The CDI directory cannot be written.
	cdi := e.opts.CDIDir
	if err := os.WriteFile(cdi, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res = e.prepare(c)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "write the CDI spec of claim "+uid1) {
		t.Fatalf("Prepare = %v, want the CDI spec's failure", res.Err)
	}
	if err := os.Remove(cdi); err != nil {
		t.Fatal(err)
	}
	check("CDI spec not written")

	// Nothing holds the VFs: the claim prepares now.
	if res := e.prepare(c); res.Err != nil {
		t.Fatal(res.Err)
	}
	if s := e.settings("ens1f0", 0); s.VLAN != 10 || s.MAC != "02:00:00:00:00:10" {
		t.Errorf("VF 0 = %+v", s)
	}
}

// TestPrepareRefusesHeldVFs: a VF another claim holds, or that sluice-cni
// attached to a pod, is never handed out, and is left untouched.
func TestPrepareRefusesHeldVFs(t *testing.T) {
	e := newPrepareEnv(t, config)
	vf0, vf1 := e.n.VFAddress(cx0, 0), e.n.VFAddress(cx0, 1)
	if r := e.prepare(claim(uid1, []alloc{{"vf", DeviceName(vf0)}}, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlan": 10}`))); r.Err != nil {
		t.Fatal(r.Err)
	}
	held := e.settings("ens1f0", 0)
	before1 := e.settings("ens1f0", 1)

	// Another claim on VF 0 (and VF 1, which must not be touched either).
	r := e.prepare(claim(uid2, []alloc{{"vf", DeviceName(vf1)}, {"vf2", DeviceName(vf0)}}, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlan": 20}`)))
	if r.Err == nil || !strings.Contains(r.Err.Error(), "VF "+vf0+" is held by claim ml/claim-0b6e (uid "+uid1+")") {
		t.Errorf("Prepare of a held VF = %v", r.Err)
	}
	if s := e.settings("ens1f0", 0); s != held {
		t.Errorf("held VF changed: %+v", s)
	}
	if s := e.settings("ens1f0", 1); s != before1 {
		t.Errorf("VF 1 changed by a refused claim: %+v", s)
	}
	if _, ok := e.checkpoint(uid2); ok {
		t.Error("refused claim checkpointed")
	}

	// A VF that sluice-cni attached to a pod.
	att := nodefiles.NewAttachments(e.opts.AttachmentsDir)
	if err := att.Put(nodefiles.Record{PCIAddress: vf1, ContainerID: "abc", IfName: "net1", PodNamespace: "ml", PodName: "web-0"}); err != nil {
		t.Fatal(err)
	}
	r = e.prepare(claim(uid3, []alloc{{"vf", DeviceName(vf1)}}, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlan": 20}`)))
	if r.Err == nil || !strings.Contains(r.Err.Error(), "VF "+vf1+" is attached to pod ml/web-0") {
		t.Errorf("Prepare of an attached VF = %v", r.Err)
	}
	// An attachment record that cannot be read holds its VF all the same.
	if err := os.WriteFile(filepath.Join(e.opts.AttachmentsDir, vf1+".json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.prepare(claim(uid3, []alloc{{"vf", DeviceName(vf1)}}))
	if r.Err == nil || !strings.Contains(r.Err.Error(), "unreadable CNI attachment record") {
		t.Errorf("Prepare of a VF with an unreadable record = %v", r.Err)
	}
	if s := e.settings("ens1f0", 1); s != before1 {
		t.Errorf("attached VF changed: %+v", s)
	}
}

// TestRestartKeepsPreparedClaims: a driver started again finds the
// prepared claims: their VFs stay held, a repeated Prepare touches
// nothing, and Unprepare still restores the VFs.
func TestRestartKeepsPreparedClaims(t *testing.T) {
	e := newPrepareEnv(t, config)
	vf0 := e.n.VFAddress(cx0, 0)
	before := e.settings("ens1f0", 0)
	c := claim(uid1, []alloc{{"vf", DeviceName(vf0)}}, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlan": 10, "trust": "on"}`))
	first := e.prepare(c)
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	e.restart()

	if r := e.prepare(claim(uid2, []alloc{{"vf", DeviceName(vf0)}})); r.Err == nil || !strings.Contains(r.Err.Error(), "is held by claim") {
		t.Errorf("after a restart, Prepare of the held VF = %v", r.Err)
	}
	failVFSetters(e.n, syscall.EIO)
	if r := e.prepare(c); r.Err != nil || !reflect.DeepEqual(r.Devices, first.Devices) {
		t.Errorf("Prepare again after a restart = %+v, want %+v", r, first)
	}
	failVFSetters(e.n, nil)
	if err := e.unprepare(uid1); err != nil {
		t.Fatal(err)
	}
	if got := e.settings("ens1f0", 0); got != before {
		t.Errorf("VF after Unprepare = %+v, want %+v", got, before)
	}
}

// TestRestartRollsBackUnfinishedPrepare: a Prepare cut short (the agent
// killed after the checkpoint and a VF's change) is undone when the driver
// starts: the VF back, spec and checkpoint gone, the half-written
// temporary file of a checkpoint write removed, the VF free.
func TestRestartRollsBackUnfinishedPrepare(t *testing.T) {
	e := newPrepareEnv(t, config)
	vf0 := e.n.VFAddress(cx0, 0)
	before := e.settings("ens1f0", 0)
	vlan := 30
	applied := host.VFConfig{VLAN: &vlan, VLANProto: host.VLANProto8021Q}
	store := nodefiles.NewDRAClaims(e.opts.ClaimsDir)
	cp := nodefiles.DRAClaim{UID: uid1, Namespace: "ml", Name: "c", State: nodefiles.DRAClaimPreparing,
		CDISpec: nodefiles.DRAClaimCDISpecPath(e.opts.CDIDir, uid1),
		Devices: []nodefiles.DRAClaimDevice{{Request: "vf", Pool: "node-a", Device: DeviceName(vf0), PCIAddress: vf0, PFName: "ens1f0", VFIndex: 0, Original: before, Applied: applied}}}
	if err := store.Put(cp); err != nil {
		t.Fatal(err)
	}
	if err := e.h.ConfigureVF("ens1f0", 0, applied); err != nil {
		t.Fatal(err)
	}
	if _, err := nodefiles.WriteDRAClaimCDISpec(e.opts.CDIDir, uid1, "sluice.dev/vf", nil); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(e.opts.ClaimsDir, "."+uid2+".json.4711")
	if err := os.WriteFile(tmp, []byte(`{"uid": "`+uid2+`", "sta`), 0o644); err != nil {
		t.Fatal(err)
	}

	e.restart()
	if got := e.settings("ens1f0", 0); got != before {
		t.Errorf("VF after the restart = %+v, want %+v", got, before)
	}
	if _, ok := e.checkpoint(uid1); ok {
		t.Error("the unfinished checkpoint is still there")
	}
	if _, ok := e.spec(uid1); ok {
		t.Error("the unfinished claim's CDI spec is still there")
	}
	if _, err := os.Stat(tmp); err == nil {
		t.Error("the temporary file of an interrupted write is still there")
	}
	if r := e.prepare(claim(uid2, []alloc{{"vf", DeviceName(vf0)}})); r.Err != nil {
		t.Errorf("the VF of the rolled-back claim: %v", r.Err)
	}
}

// TestPrepareErrors: claims Prepare cannot serve are refused with the
// reason, before any VF changes.
func TestPrepareErrors(t *testing.T) {
	e := newPrepareEnv(t, config)
	vf0, vf1 := e.n.VFAddress(cx0, 0), e.n.VFAddress(cx0, 1)
	before0, before1 := e.settings("ens1f0", 0), e.settings("ens1f0", 1)
	both := []alloc{{"rail", DeviceName(vf0)}, {"rail", DeviceName(vf1)}}
	unallocated := claim(uid1, nil)
	unallocated.Status.Allocation = nil
	for _, tc := range []struct {
		name string
		c    *resourceapi.ResourceClaim
		want string
	}{
		{"not allocated", unallocated, "not allocated"},
		{"bad config", claim(uid1, both, opaque(resourceapi.AllocationConfigSourceClass, `{`+hdr+`, "vlan": 4095}`)),
			"config of the DeviceClass (allocation config[0], opaque parameters for sluice.dev): vlan: 4095 is out of range"},
		{"unknown field", claim(uid1, both, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlanid": 1}`)),
			"config of the claim (allocation config[0], opaque parameters for sluice.dev): vlanid: unknown field"},
		{"vfNetwork", claim(uid1, both, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vfNetwork": {"name": "rail-a"}}`)),
			"config of the claim (allocation config[0]): vfNetwork ml/rail-a: this driver reads no VFNetworks"},
		{"mac for two", claim(uid1, both, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "mac": "02:00:00:00:00:01"}`)),
			"sets mac or ifName, which name one VF, and applies to 2 devices"},
		{"ifName for two", claim(uid1, both, opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "ifName": "net1"}`, "rail")),
			"applies to 2 devices"},
		{"unknown device", claim(uid1, []alloc{{"rail", DeviceName(vf0)}, {"rail", "vf-0000-99-00-1"}}),
			"device vf-0000-99-00-1 (request rail) is not a VF of this node's DRA pools"},
		{"device-plugin pool", claim(uid1, []alloc{{"rail", DeviceName(e.n.VFAddress(cx1, 0))}}), "is not a VF of this node's DRA pools"},
		{"none of ours", claim(uid1, nil), "no device of driver sluice.dev on node node-a"},
		{"twice", claim(uid1, []alloc{{"a", DeviceName(vf0)}, {"b", DeviceName(vf0)}}), "is allocated to the claim twice"},
	} {
		r := e.prepare(tc.c)
		if r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) {
			t.Errorf("%s: Prepare = %v, want it to say %q", tc.name, r.Err, tc.want)
		}
	}
	// Another driver's config is not ours to read.
	other := opaque(resourceapi.AllocationConfigSourceClaim, `not json`)
	other.Opaque.Driver = "gpu.example.com"
	if r := e.prepare(claim(uid2, both, other)); r.Err != nil {
		t.Errorf("another driver's config: %v", r.Err)
	}
	if err := e.unprepare(uid2); err != nil {
		t.Fatal(err)
	}
	if e.settings("ens1f0", 0) != before0 || e.settings("ens1f0", 1) != before1 {
		t.Error("a refused claim changed a VF")
	}
	// Before the first scan.
	e.d.tree = nil
	if r := e.prepare(claim(uid3, both)); r.Err == nil || !strings.Contains(r.Err.Error(), "has not scanned the node yet") {
		t.Errorf("Prepare before a scan = %v", r.Err)
	}
}

// TestUnfinishedClaimHoldsItsVFs: a Prepare that cannot be undone (the VF
// refuses its old settings back), at start or after a failure, keeps its
// checkpoint and its VFs held, without stopping the driver; the claim's
// next Unprepare (or Prepare) undoes it.
func TestUnfinishedClaimHoldsItsVFs(t *testing.T) {
	e := newPrepareEnv(t, config)
	vf0, vf1 := e.n.VFAddress(cx0, 0), e.n.VFAddress(cx0, 1)
	before0 := e.settings("ens1f0", 0)

	// After a failure: VF 0 gets its VLAN, VF 1 refuses trust, and VF 0
	// then refuses its VLAN back.
	c := claim(uid1, []alloc{{"a", DeviceName(vf0)}, {"b", DeviceName(vf1)}},
		opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "vlan": 10}`, "a"),
		opaque(resourceapi.AllocationConfigSourceClaim, `{`+hdr+`, "trust": "on"}`, "b"))
	e.n.FailNetlink("LinkSetVfTrust", syscall.EOPNOTSUPP)
	const setVLAN = "LinkSetVfVlanQosProto"
	// The VLAN is set before trust fails; fail its restore only.
	e.d.opts.Node = &failAfter{Node: e.h, n: e.n, method: setVLAN, after: 1}
	r := e.prepare(c)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "undoing it failed too") {
		t.Fatalf("Prepare = %v, want the failed undo reported", r.Err)
	}
	e.n.FailNetlink("LinkSetVfTrust", nil)
	e.n.FailNetlink(setVLAN, nil)
	e.d.opts.Node = e.h
	if cp, ok := e.checkpoint(uid1); !ok || cp.State != nodefiles.DRAClaimPreparing {
		t.Fatalf("checkpoint = %+v, %v, want the Preparing one kept", cp, ok)
	}
	if r := e.prepare(claim(uid2, []alloc{{"vf", DeviceName(vf0)}})); r.Err == nil || !strings.Contains(r.Err.Error(), "is held by claim") {
		t.Errorf("Prepare of the unfinished claim's VF = %v, want it held", r.Err)
	}

	// At start: the rollback fails again, and the driver starts anyway.
	e.n.FailNetlink(setVLAN, syscall.EIO)
	e.restart()
	e.n.FailNetlink(setVLAN, nil)
	if r := e.prepare(claim(uid2, []alloc{{"vf", DeviceName(vf0)}})); r.Err == nil || !strings.Contains(r.Err.Error(), "is held by claim") {
		t.Errorf("after a restart, Prepare of the unfinished claim's VF = %v, want it held", r.Err)
	}
	if err := e.unprepare(uid1); err != nil {
		t.Fatal(err)
	}
	if got := e.settings("ens1f0", 0); got != before0 {
		t.Errorf("VF 0 after Unprepare = %+v, want %+v", got, before0)
	}
	if _, ok := e.checkpoint(uid1); ok {
		t.Error("checkpoint left after Unprepare")
	}
	if r := e.prepare(claim(uid2, []alloc{{"vf", DeviceName(vf0)}})); r.Err != nil {
		t.Errorf("VF 0 after the unfinished claim's Unprepare: %v", r.Err)
	}
}

// failAfter makes the fake node's netlink method fail once ConfigureVF has
// been called after times: the first calls succeed, the undo's fail.
type failAfter struct {
	Node
	n      *hosttest.Node
	method string
	after  int
	calls  int
}

func (f *failAfter) ConfigureVF(pf string, vf int, cfg host.VFConfig) error {
	f.calls++
	if f.calls > f.after {
		f.n.FailNetlink(f.method, syscall.EIO)
	}
	return f.Node.ConfigureVF(pf, vf, cfg)
}
