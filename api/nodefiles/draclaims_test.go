package nodefiles

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/sluice-net/sluice/host"
)

const uidA, uidB = "6f1c9a52-0d3e-4c1b-8a44-2b7e0c9d1a01", "6f1c9a52-0d3e-4c1b-8a44-2b7e0c9d1a02"

func TestDRAClaims(t *testing.T) {
	d := NewDRAClaims(filepath.Join(t.TempDir(), "claims"))
	if cs, bad, err := d.List(); err != nil || len(cs) != 0 || len(bad) != 0 {
		t.Fatalf("absent directory: %v %v %v", cs, bad, err)
	}
	vlan, on := 100, true
	c := DRAClaim{UID: uidB, Namespace: "ml", Name: "trainer-0-vf", State: DRAClaimPrepared, CDISpec: "/var/run/cdi/x.json",
		Created: time.Unix(100, 0).UTC(),
		Devices: []DRAClaimDevice{{Request: "vf", Pool: "node-a", Device: "vf-0000-3b-00-2", PCIAddress: "0000:3b:00.2",
			PFName: "ens1f0", VFIndex: 0, Original: host.VFSettings{MAC: "02:00:00:00:00:09", LinkState: "auto"},
			Applied: host.VFConfig{VLAN: &vlan, Trust: &on}, Config: json.RawMessage(`{"vlan":100}`),
			CDIDeviceIDs: []string{"sluice.dev/vf=" + uidB + "-vf-0000-3b-00-2"}}}}
	if err := d.Put(c); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(DRAClaim{UID: uidA, State: DRAClaimPreparing}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := d.Get(uidB)
	if err != nil || !ok || !reflect.DeepEqual(got, c) {
		t.Fatalf("Get = %+v %v %v\nwant %+v", got, ok, err, c)
	}
	if _, ok, err := d.Get("0b6e2c1a-0000-0000-0000-000000000000"); ok || err != nil {
		t.Errorf("Get of an unknown claim: %v %v", ok, err)
	}
	// A damaged checkpoint hides no other; a write a crash interrupted
	// left only a hidden temporary file, which is no checkpoint.
	if err := os.WriteFile(filepath.Join(d.Root(), "6f1c9a52-0000-0000-0000-00000000000c.json"), []byte(`{"uid":`), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(d.Root(), "."+uidA+".json.12345")
	if err := os.WriteFile(tmp, []byte(`{"uid":"`+uidA+`","state":"Prep`), 0o644); err != nil {
		t.Fatal(err)
	}
	cs, bad, err := d.List()
	if err != nil || len(cs) != 2 || cs[0].UID != uidA || cs[1].UID != uidB {
		t.Fatalf("List = %+v %v", cs, err)
	}
	if len(bad) != 1 || bad[0].UID != "6f1c9a52-0000-0000-0000-00000000000c" || !strings.HasSuffix(bad[0].Path, "00c.json") {
		t.Errorf("unreadable = %+v", bad)
	}
	if err := d.RemoveTemporaries(); err != nil {
		t.Fatal(err)
	}
	if fileExists(tmp) || !fileExists(filepath.Join(d.Root(), uidA+".json")) {
		t.Error("RemoveTemporaries removed the wrong files")
	}
	if err := d.Delete(uidA); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(uidA); err != nil {
		t.Errorf("second delete: %v", err)
	}
	for _, uid := range []string{"", "../x", "a/b", ".hidden", "-a", "a" + strings.Repeat("-", 128)} {
		if err := d.Put(DRAClaim{UID: uid}); err == nil || !strings.Contains(err.Error(), "is not a UID") {
			t.Errorf("Put(%q) = %v", uid, err)
		}
	}
	if err := d.Put(DRAClaim{UID: "a" + strings.Repeat("-", 127)}); err != nil {
		t.Errorf("Put of a 128-character UID: %v", err)
	}
}

func TestDRAClaimCDISpec(t *testing.T) {
	dir := t.TempDir()
	dev := NewCDIDevice(uidA+"-vf-0000-3b-00-2", []CDINode{{Path: "/dev/infiniband/uverbs3"}, {Path: "/dev/vfio/7", HostPath: "/dev/vfio/noiommu-7"}},
		[]string{"SLUICE_DRA_VF=0000:3b:00.2"})
	path, err := WriteDRAClaimCDISpec(dir, uidA, "sluice.dev/vf", []cdispec.Device{dev})
	if err != nil {
		t.Fatal(err)
	}
	if path != DRAClaimCDISpecPath(dir, uidA) || !IsDRAClaimCDISpecFile(filepath.Base(path)) || IsCDISpecFile(filepath.Base(path)) {
		t.Errorf("path %s", path)
	}
	var spec cdispec.Spec
	if _, err := ReadJSON(path, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Version != CDIVersion || spec.Kind != "sluice.dev/vf" || len(spec.Devices) != 1 || !reflect.DeepEqual(spec.Devices[0], dev) ||
		dev.ContainerEdits.DeviceNodes[1].Permissions != "rw" {
		t.Errorf("spec = %+v", spec)
	}
	if _, err := WriteDRAClaimCDISpec(dir, "../x", "sluice.dev/vf", nil); err == nil {
		t.Error("a UID with a path in it was written")
	}
	if err := RemoveDRAClaimCDISpec(path); err != nil || fileExists(path) {
		t.Errorf("remove: %v", err)
	}
	if err := RemoveDRAClaimCDISpec(path); err != nil {
		t.Errorf("second remove: %v", err)
	}
	// Only claim specs are removed through it.
	other := filepath.Join(dir, "sluice-sluice.dev_pool.json")
	_ = os.WriteFile(other, []byte("{}"), 0o644)
	if err := RemoveDRAClaimCDISpec(other); err != nil || !fileExists(other) {
		t.Errorf("removed a pool spec: %v", err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestDRAClaimCompatible: a checkpoint an agent without the NRI step
// wrote (no podUIDs, rdmaDevice nor attachment) still reads, and such a
// claim is written back without the new fields; an attachment round-trips.
func TestDRAClaimCompatible(t *testing.T) {
	d := NewDRAClaims(filepath.Join(t.TempDir(), "claims"))
	old := `{"uid":"` + uidA + `","namespace":"ml","name":"c","state":"Prepared","cdiSpec":"/var/run/cdi/x.json",` +
		`"devices":[{"request":"vf","pool":"node-a","device":"vf-0000-3b-00-2","pciAddress":"0000:3b:00.2","pfName":"ens1f0","vfIndex":0,` +
		`"original":{"MAC":"02:00:00:00:00:09","VLAN":0,"QoS":0,"VLANProto":33024,"SpoofChk":true,"Trust":false,"LinkState":"auto","MinTxRate":0,"MaxTxRate":0},` +
		`"applied":{}}],"created":"2026-01-01T00:00:00Z"}`
	if err := os.MkdirAll(d.Root(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Root(), uidA+".json"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	c, ok, err := d.Get(uidA)
	if err != nil || !ok || c.PodUIDs != nil || c.Devices[0].Attachment != nil || c.Devices[0].PCIAddress != "0000:3b:00.2" {
		t.Fatalf("old checkpoint = %+v %v %v", c, ok, err)
	}
	if err := d.Put(c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(d.Root(), uidA+".json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"podUIDs", "rdmaDevice", "attachment"} {
		if strings.Contains(string(b), `"`+f+`"`) {
			t.Errorf("rewritten old checkpoint has %q: %s", f, b)
		}
	}

	c.PodUIDs = []string{"9a1d0c3e-0001-4c5e-9e55-7d2f0c1a2b3c"}
	c.Devices[0].RDMADevice = "mlx5_2"
	c.Devices[0].Attachment = &DRAAttachment{State: DRAAttachmentAttached, PodUID: c.PodUIDs[0], PodNamespace: "ml", PodName: "p",
		SandboxID: "abc", Netns: "/var/run/netns/cni-1", IfName: "net1", Original: host.NetdevState{Name: "ens1f0v0", MAC: "02:00:00:00:00:09", MTU: 1500, Up: true},
		MAC: "02:00:00:00:00:09", RDMADevice: "mlx5_2", IPAMType: "host-local", IPAMNetwork: "sluice-dra-0123456789ab", IPs: []string{"10.0.0.2/24"},
		Created: time.Unix(200, 0).UTC()}
	if err := d.Put(c); err != nil {
		t.Fatal(err)
	}
	got, _, err := d.Get(uidA)
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Errorf("Get = %+v %v\nwant %+v", got, err, c)
	}
}
