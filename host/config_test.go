package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-net/sluice/host"
	"github.com/sluice-net/sluice/host/hosttest"
)

const cx = "0000:3b:00.0"

func numvfsWrites(n *hosttest.Node) []string {
	var out []string
	for _, w := range n.Writes() {
		if strings.Contains(w, "sriov_numvfs") {
			out = append(out, w[strings.LastIndex(w, "/")+1:])
		}
	}
	return out
}

func TestSetNumVFs(t *testing.T) {
	ctx := context.Background()
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
	h := n.Host()

	if err := h.SetNumVFs(ctx, cx, 4); err != nil {
		t.Fatal(err)
	}
	if got := numvfsWrites(n); !reflect.DeepEqual(got, []string{"sriov_numvfs=4"}) {
		t.Errorf("0 -> 4 wrote %v", got)
	}
	// Same count again: nothing written, VFs kept.
	if err := h.SetNumVFs(ctx, cx, 4); err != nil {
		t.Fatal(err)
	}
	if got := numvfsWrites(n); len(got) != 1 {
		t.Errorf("4 -> 4 wrote again: %v", got)
	}
	// The kernel only goes from 4 to 2 through 0.
	if err := h.SetNumVFs(ctx, cx, 2); err != nil {
		t.Fatal(err)
	}
	if got := numvfsWrites(n); !reflect.DeepEqual(got, []string{"sriov_numvfs=4", "sriov_numvfs=0", "sriov_numvfs=2"}) {
		t.Errorf("4 -> 2 wrote %v", got)
	}
	snap, err := h.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pf := snap.PFs[0]; pf.NumVFs != 2 || len(pf.VFs) != 2 || pf.VFs[1].Netdev == "" {
		t.Errorf("after 4 -> 2: %d VFs %+v", pf.NumVFs, pf.VFs)
	}
	if err := h.SetNumVFs(ctx, cx, 0); err != nil {
		t.Fatal(err)
	}
	if n.Netdev(cx) != "ens1f0" || len(numvfsWrites(n)) != 4 {
		t.Errorf("2 -> 0: writes %v", numvfsWrites(n))
	}
}

func TestSetNumVFsRefusesMoreThanTotal(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.IGB("0000:01:00.0", "enp1s0"))
	err := n.Host().SetNumVFs(context.Background(), "0000:01:00.0", 8)
	if err == nil || !strings.Contains(err.Error(), "0000:01:00.0") || !strings.Contains(err.Error(), "0 to 7 VFs (sriov_totalvfs)") {
		t.Fatalf("err = %v, want one naming the PF and its limit", err)
	}
	if len(n.Writes()) != 0 {
		t.Errorf("wrote %v for a refused request", n.Writes())
	}
	if err := n.Host().SetNumVFs(context.Background(), "0000:09:00.0", 1); !errors.Is(err, host.ErrNotFound) {
		t.Errorf("unknown PF: err = %v, want ErrNotFound", err)
	}
}

func TestSetNumVFsWaitsForNetdevs(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.E810("0000:5e:00.0", "ens2f0", 1))
	n.SetNetdevDelay(80 * time.Millisecond)
	start := time.Now()
	if err := n.Host().SetNumVFs(context.Background(), "0000:5e:00.0", 3); err != nil {
		t.Fatal(err)
	}
	// Every netdev exists when it returns: no caller sees a VF half-made.
	for i := 0; i < 3; i++ {
		if n.Netdev(n.VFAddress("0000:5e:00.0", i)) == "" {
			t.Errorf("vf %d has no netdev after SetNumVFs returned (%s)", i, time.Since(start))
		}
	}
}

func TestSetNumVFsTimeoutNamesMissingVFs(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.E810("0000:5e:00.0", "ens2f0", 1))
	n.SetNetdevDelay(2 * time.Second)
	err := n.Host(host.WithSettleTimeout(150*time.Millisecond)).SetNumVFs(context.Background(), "0000:5e:00.0", 2)
	if !errors.Is(err, host.ErrTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if !strings.Contains(err.Error(), "no netdev yet for vf 0") || !strings.Contains(err.Error(), "vf 1") {
		t.Errorf("timeout does not name the VFs without netdevs: %v", err)
	}
}

func TestSetNumVFsWriteFailureNamesStep(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
	n.SetNumVFs(cx, 4)
	n.FailWrite("sriov_numvfs", syscall.EIO)
	err := n.Host().SetNumVFs(context.Background(), cx, 8)
	var se *host.StepError
	if !errors.As(err, &se) || se.Device != cx || !strings.Contains(se.Step, "sriov_numvfs=0") || !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v, want a step error on %s writing sriov_numvfs=0", err, cx)
	}
	// The VFs are as they were: nothing was changed.
	if n.Netdev(n.VFAddress(cx, 3)) == "" {
		t.Error("VFs lost after a failed change")
	}
}

func TestConfigureVF(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
	n.SetNumVFs(cx, 2)
	h := n.Host()
	mac, vlan, on, off, state, minR, maxR := "02:11:22:33:44:55", 100, true, false, "enable", 100, 1000
	cfg := host.VFConfig{MAC: &mac, VLAN: &vlan, QoS: 3, Trust: &on, SpoofChk: &off, LinkState: &state, MinTxRate: &minR, MaxTxRate: &maxR}
	if err := h.ConfigureVF("ens1f0", 1, cfg); err != nil {
		t.Fatal(err)
	}
	got, err := h.VFSettingsOf("ens1f0", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := host.VFSettings{MAC: mac, VLAN: 100, QoS: 3, VLANProto: host.VLANProto8021Q, Trust: true, SpoofChk: false, LinkState: "enable", MinTxRate: 100, MaxTxRate: 1000}
	if got != want {
		t.Errorf("settings = %+v, want %+v", got, want)
	}
	// Applying the same again touches nothing: every setter failing proves it.
	for _, m := range []string{"LinkSetVfHardwareAddr", "LinkSetVfVlanQosProto", "LinkSetVfTrust", "LinkSetVfSpoofchk", "LinkSetVfState", "LinkSetVfRate"} {
		n.FailNetlink(m, syscall.EIO)
	}
	if err := h.ConfigureVF("ens1f0", 1, cfg); err != nil {
		t.Errorf("re-applying the same settings called netlink: %v", err)
	}
	// VF 0 is untouched.
	if s, _ := h.VFSettingsOf("ens1f0", 0); s.Trust || s.VLAN != 0 {
		t.Errorf("vf 0 changed: %+v", s)
	}
}

func TestConfigureVFUndoesOnFailure(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
	n.SetNumVFs(cx, 1)
	h := n.Host()
	before, _ := h.VFSettingsOf("ens1f0", 0)
	n.FailNetlink("LinkSetVfSpoofchk", syscall.EOPNOTSUPP)
	mac, vlan, on, off := "02:aa:bb:cc:dd:ee", 42, true, false
	err := h.ConfigureVF("ens1f0", 0, host.VFConfig{MAC: &mac, VLAN: &vlan, Trust: &on, SpoofChk: &off})
	if err == nil || !strings.Contains(err.Error(), "ens1f0 vf 0: set spoofchk off") {
		t.Fatalf("err = %v, want the spoofchk step named", err)
	}
	after, _ := h.VFSettingsOf("ens1f0", 0)
	if after != before {
		t.Errorf("settings after a failed configure = %+v, want them back to %+v", after, before)
	}
}

// TestRestoreVF: every setting goes back to what was read before the
// change, and a setting the driver refuses does not stop the others.
func TestRestoreVF(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
	n.SetNumVFs(cx, 1)
	h := n.Host()
	before, _ := h.VFSettingsOf("ens1f0", 0)
	mac, vlan, on, off, state, maxR := "02:aa:bb:cc:dd:ee", 42, true, false, "disable", 500
	if err := h.ConfigureVF("ens1f0", 0, host.VFConfig{MAC: &mac, VLAN: &vlan, QoS: 5, Trust: &on, SpoofChk: &off, LinkState: &state, MaxTxRate: &maxR}); err != nil {
		t.Fatal(err)
	}
	n.FailNetlink("LinkSetVfTrust", syscall.EOPNOTSUPP)
	err := host.RestoreVF(h, "ens1f0", 0, before)
	if err == nil || !strings.Contains(err.Error(), "set trust off") {
		t.Errorf("err = %v, want the refused trust step", err)
	}
	after, _ := h.VFSettingsOf("ens1f0", 0)
	want := before
	want.Trust = true // refused
	if after != want {
		t.Errorf("after RestoreVF = %+v, want %+v", after, want)
	}
	n.FailNetlink("LinkSetVfTrust", nil)
	if err := host.RestoreVF(h, "ens1f0", 0, before); err != nil {
		t.Fatal(err)
	}
	if after, _ := h.VFSettingsOf("ens1f0", 0); after != before {
		t.Errorf("after RestoreVF = %+v, want %+v", after, before)
	}
}

func TestConfigureVFBadInput(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
	n.SetNumVFs(cx, 1)
	h := n.Host()
	bad, vlan, st := "zz:zz", 5000, "up"
	for name, cfg := range map[string]host.VFConfig{
		"invalid MAC":   {MAC: &bad},
		"vlan must be":  {VLAN: &vlan},
		"auto, enable":  {LinkState: &st},
		"reports 1 VFs": {},
	} {
		vf := 0
		if name == "reports 1 VFs" {
			vf = 3
		}
		if err := h.ConfigureVF("ens1f0", vf, cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if err := h.ConfigureVF("nope0", 0, host.VFConfig{}); err == nil || !strings.Contains(err.Error(), "nope0: find PF link") {
		t.Errorf("unknown PF: err = %v", err)
	}
}

func TestBindDriverVfioAndBack(t *testing.T) {
	ctx := context.Background()
	n := hosttest.New(t)
	n.AddPF(hosttest.E810("0000:5e:00.0", "ens2f0", 1))
	n.SetNumVFs("0000:5e:00.0", 2)
	vf := n.VFAddress("0000:5e:00.0", 1)
	h := n.Host()

	err := h.BindDriver(ctx, vf, host.VfioPci)
	if err == nil || !strings.Contains(err.Error(), "modprobe vfio-pci") {
		t.Fatalf("vfio-pci not loaded: err = %v", err)
	}
	if n.Driver(vf) != "iavf" {
		t.Fatalf("driver changed to %q by a refused bind", n.Driver(vf))
	}

	n.AddDriver(host.VfioPci)
	if err := h.BindDriver(ctx, vf, host.VfioPci); err != nil {
		t.Fatal(err)
	}
	if n.Driver(vf) != host.VfioPci || n.Netdev(vf) != "" {
		t.Errorf("after bind: driver %q netdev %q", n.Driver(vf), n.Netdev(vf))
	}
	group := h.VfioGroup(vf)
	if _, err := os.Stat(h.DevPath(group)); group == "" || err != nil {
		t.Errorf("vfio group %q not present: %v", group, err)
	}
	// Idempotent.
	writes := len(n.Writes())
	if err := h.BindDriver(ctx, vf, host.VfioPci); err != nil || len(n.Writes()) != writes {
		t.Errorf("second bind: %v, %d new writes", err, len(n.Writes())-writes)
	}

	if err := h.BindDriver(ctx, vf, host.DefaultDriver); err != nil {
		t.Fatal(err)
	}
	if n.Driver(vf) != "iavf" || n.Netdev(vf) == "" {
		t.Errorf("back to default: driver %q netdev %q", n.Driver(vf), n.Netdev(vf))
	}
	if o := readFile(t, filepath.Join(n.Paths().Sys, "bus/pci/devices", vf, "driver_override")); o != "(null)" {
		t.Errorf("driver_override left as %q", o)
	}
}

func TestBindDriverRestoresOnFailure(t *testing.T) {
	ctx := context.Background()
	n := hosttest.New(t)
	n.AddPF(hosttest.E810("0000:5e:00.0", "ens2f0", 1))
	n.SetNumVFs("0000:5e:00.0", 1)
	n.AddDriver(host.VfioPci)
	vf := n.VFAddress("0000:5e:00.0", 0)
	n.FailWrite("drivers_probe", syscall.ENODEV)
	err := n.Host().BindDriver(ctx, vf, host.VfioPci)
	if err == nil || !strings.Contains(err.Error(), vf+": probe for vfio-pci") {
		t.Fatalf("err = %v", err)
	}
	n.FailWrite("drivers_probe", nil)
	// The override is cleared again, so the next probe (or reboot) does not
	// land the VF on vfio-pci behind our back.
	if o := readFile(t, filepath.Join(n.Paths().Sys, "bus/pci/devices", vf, "driver_override")); o != "(null)" {
		t.Errorf("driver_override left as %q", o)
	}
}

func TestBindVfioWithoutIOMMU(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.IGB("0000:01:00.0", "enp1s0"))
	n.SetNumVFs("0000:01:00.0", 1)
	n.AddDriver(host.VfioPci)
	err := n.Host().BindDriver(context.Background(), n.VFAddress("0000:01:00.0", 0), host.VfioPci)
	if err == nil || !strings.Contains(err.Error(), "no IOMMU group") {
		t.Fatalf("err = %v", err)
	}
}

func TestMTU(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
	n.SetNumVFs(cx, 2)
	h := n.Host()
	vf0 := n.VFAddress(cx, 0)
	if err := h.SetVFMTU(vf0, 9000); err == nil || !strings.Contains(err.Error(), "raise the PF's MTU first") {
		t.Fatalf("VF above PF: err = %v", err)
	}
	if err := h.SetPFMTU(cx, 9000); err != nil {
		t.Fatal(err)
	}
	if err := h.SetVFMTU(vf0, 9000); err != nil {
		t.Fatal(err)
	}
	var inUse *host.MTUInUseError
	err := h.SetPFMTU(cx, 1500)
	if !errors.As(err, &inUse) || !reflect.DeepEqual(inUse.VFs, []string{n.Netdev(vf0) + " (mtu 9000)"}) {
		t.Fatalf("lowering below a VF: err = %v", err)
	}
	if err := h.SetVFMTU(vf0, 1500); err != nil {
		t.Fatal(err)
	}
	if err := h.SetPFMTU(cx, 1500); err != nil {
		t.Errorf("lowering once no VF needs more: %v", err)
	}
}

func TestRDMANetnsMode(t *testing.T) {
	n := hosttest.New(t)
	h := n.Host()
	if err := h.SetRDMANetnsMode("exclusive"); err != nil {
		t.Fatal(err)
	}
	n.SetOtherNetns(3)
	err := h.SetRDMANetnsMode("shared")
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "options ib_core netns_mode=1") {
		t.Fatalf("err = %v, want EBUSY with the boot-time fix", err)
	}
	if err := h.SetRDMANetnsMode("exclusive"); err != nil {
		t.Errorf("already exclusive: %v", err)
	}
	if err := h.SetRDMANetnsMode("private"); err == nil {
		t.Error("accepted an unknown mode")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestConfigureVFFrom(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
	n.SetNumVFs(cx, 2)
	h := n.Host()
	vf, err := h.VF(n.VFAddress(cx, 1))
	if err != nil {
		t.Fatal(err)
	}
	if vf.PFIndex == 0 {
		t.Fatal("the look-up did not record the PF's ifindex")
	}
	// The PF is not read again: reading it fails from here on.
	n.FailNetlink("LinkByName", syscall.EIO)
	mac, vlan, on, off := "02:11:22:33:44:66", 7, true, false
	cfg := host.VFConfig{MAC: &mac, VLAN: &vlan, Trust: &on, SpoofChk: &off}
	if err := h.ConfigureVFFrom(vf, cfg); err != nil {
		t.Fatal(err)
	}
	n.FailNetlink("LinkByName", nil)
	got, err := h.VFSettingsOf("ens1f0", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := vf.Settings
	want.MAC, want.VLAN, want.VLANProto, want.Trust, want.SpoofChk = mac, 7, host.VLANProto8021Q, true, false
	if got != want {
		t.Errorf("settings = %+v, want %+v", got, want)
	}

	// A failing step puts back the settings as the look-up read them.
	vf, err = h.VF(n.VFAddress(cx, 0))
	if err != nil {
		t.Fatal(err)
	}
	before := vf.Settings
	n.FailNetlink("LinkSetVfSpoofchk", syscall.EOPNOTSUPP)
	if err := h.ConfigureVFFrom(vf, cfg); err == nil || !strings.Contains(err.Error(), "ens1f0 vf 0: set spoofchk off") {
		t.Fatalf("err = %v, want the spoofchk step named", err)
	}
	if after, _ := h.VFSettingsOf("ens1f0", 0); after != before {
		t.Errorf("settings after a failed configure = %+v, want %+v", after, before)
	}
}

// TestConfigureVFOneRequest: the settings that differ go to the kernel in
// one request (as sluice-cni's ADD sends them), two when trust goes on and
// the MAC changes, none when nothing does.
func TestConfigureVFOneRequest(t *testing.T) {
	n := hosttest.New(t)
	n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
	n.SetNumVFs(cx, 1)
	h := n.Host()
	vlan, on, off := 100, true, false
	cfg := host.VFConfig{VLAN: &vlan, Trust: &on, SpoofChk: &off}
	for _, c := range []struct {
		name string
		cfg  host.VFConfig
		want int
	}{
		{"vlan, trust and spoofchk", cfg, 1},
		{"the same again", cfg, 0},
		{"trust off and a MAC", host.VFConfig{Trust: &off, MAC: ptr("02:aa:bb:cc:dd:01")}, 1},
		{"trust on and a MAC", host.VFConfig{Trust: &on, MAC: ptr("02:aa:bb:cc:dd:02"), SpoofChk: &on}, 2},
	} {
		before := n.VFInfoCalls()
		if err := h.ConfigureVF("ens1f0", 0, c.cfg); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := n.VFInfoCalls() - before; got != c.want {
			t.Errorf("%s: %d requests, want %d", c.name, got, c.want)
		}
	}
	got, _ := h.VFSettingsOf("ens1f0", 0)
	if want := (host.VFSettings{MAC: "02:aa:bb:cc:dd:02", VLAN: 100, VLANProto: host.VLANProto8021Q, Trust: true, SpoofChk: true, LinkState: got.LinkState}); got != want {
		t.Errorf("settings = %+v, want %+v", got, want)
	}
}

// TestConfigureVFRefused: the kernel applies a request's settings in its
// order and stops at the refused one; the ones it applied are put back
// (also those it applies before the one refused, which a one-at-a-time
// retry, in its own order, would not reach) and the error names the
// refused one.
func TestConfigureVFRefused(t *testing.T) {
	mac, vlan, maxR, on, off := "02:aa:bb:cc:dd:ee", 42, 100, true, false
	for _, c := range []struct {
		refused, want string
		cfg           host.VFConfig
	}{
		{"LinkSetVfRate", "set tx rate min 0 max 100", host.VFConfig{MAC: &mac, VLAN: &vlan, MaxTxRate: &maxR, SpoofChk: &off}},
		{"LinkSetVfTrust", "set trust on", host.VFConfig{VLAN: &vlan, Trust: &on, SpoofChk: &off}},
	} {
		n := hosttest.New(t)
		n.AddPF(hosttest.ConnectX6(cx, "ens1f0", 0))
		n.SetNumVFs(cx, 1)
		h := n.Host()
		before, _ := h.VFSettingsOf("ens1f0", 0)
		n.FailNetlink(c.refused, syscall.EOPNOTSUPP)
		err := h.ConfigureVF("ens1f0", 0, c.cfg)
		if err == nil || !strings.Contains(err.Error(), "ens1f0 vf 0: "+c.want) || !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Errorf("%s refused: err = %v, want %q named", c.refused, err, c.want)
		}
		if after, _ := h.VFSettingsOf("ens1f0", 0); after != before {
			t.Errorf("%s refused: settings = %+v, want them back to %+v", c.refused, after, before)
		}
	}
}

func ptr[T any](v T) *T { return &v }
