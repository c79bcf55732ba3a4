package main

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/sluice-net/sluice/deviceplugin"
)

// sriov-network-device-plugin's DaemonSet args, as its manifests pass them
// (deployments/sriovdp-daemonset.yaml and deployments/cdi/sriovdp-daemonset.yaml
// at commit 40b6f507e74ccc7b04c64cfe8823522e9d2f8b2e), with the
// --resource-prefix and --config-file its image's entrypoint also takes.
var sndpDaemonSetArgs = []string{"--log-dir=sriovdp", "--log-level=10", "--use-cdi", "--resource-prefix=intel.com", "--config-file=/etc/pcidp/config.json"}

// The glog flags its binary lists (README.md, "Command line arguments").
var sndpGlogArgs = []string{"-v", "4", "-logtostderr", "-alsologtostderr", "-log_dir", "/var/log/sriovdp", "-stderrthreshold", "INFO",
	"-vmodule", "server=5", "-log_backtrace_at", "server.go:10"}

// The real command parses them: --help after them ends the parse cleanly
// only when every flag before it is known.
func TestDevicePluginParsesSRIOVDPFlags(t *testing.T) {
	for _, args := range [][]string{sndpDaemonSetArgs, sndpGlogArgs} {
		var out, errb bytes.Buffer
		if code := run(append(append([]string{"device-plugin"}, args...), "--help"), &out, &errb); code != 0 {
			t.Errorf("device-plugin %v: code %d, %s", args, code, errb.String())
		}
	}
}

func parseDevicePlugin(t *testing.T, args []string) (deviceplugin.Options, func() []sndpNote, *flag.FlagSet) {
	t.Helper()
	fs := flag.NewFlagSet("device-plugin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o deviceplugin.Options
	o.BindFlags(fs)
	newLogger := logFlag(fs)
	notes := sndpFlags(fs, &o)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	l, err := newLogger()
	if err != nil {
		t.Fatalf("logger: %v", err)
	}
	o.Log = l
	return o, notes, fs
}

func TestSRIOVDPFlagsMapped(t *testing.T) {
	o, notes, _ := parseDevicePlugin(t, sndpDaemonSetArgs)
	if !o.CDI || o.ResourcePrefix != "intel.com" || o.ConfigFile != "/etc/pcidp/config.json" {
		t.Errorf("options = cdi %t prefix %q config %q", o.CDI, o.ResourcePrefix, o.ConfigFile)
	}
	if !o.Log.V(10).Enabled() || o.Log.V(11).Enabled() {
		t.Errorf("--log-level=10: V(10) enabled %t, V(11) enabled %t; want glog's verbosity", o.Log.V(10).Enabled(), o.Log.V(11).Enabled())
	}
	want := map[string]string{"use-cdi": "--cdi", "log-level": "V(0) to V(10)", "log-dir": "not used"}
	got := map[string]string{}
	for _, n := range notes() {
		got[n.flag] = n.says
	}
	for f, w := range want {
		if !strings.Contains(got[f], w) {
			t.Errorf("note for --%s = %q, want it to say %q", f, got[f], w)
		}
	}

	o, notes, _ = parseDevicePlugin(t, sndpGlogArgs)
	if !o.Log.V(4).Enabled() || o.Log.V(5).Enabled() {
		t.Errorf("-v 4: V(4) enabled %t, V(5) enabled %t", o.Log.V(4).Enabled(), o.Log.V(5).Enabled())
	}
	got = map[string]string{}
	for _, n := range notes() {
		got[n.flag] = n.says
	}
	for _, f := range []string{"v", "logtostderr", "alsologtostderr", "log_dir", "stderrthreshold", "vmodule", "log_backtrace_at"} {
		if got[f] == "" {
			t.Errorf("-%s set but nothing says what it does (notes %v)", f, got)
		}
	}

	// Unset, they say nothing; named levels still work.
	o, notes, _ = parseDevicePlugin(t, []string{"--log-level=debug"})
	if n := notes(); len(n) != 0 || !o.Log.V(1).Enabled() || o.CDI {
		t.Errorf("notes %v, V(1) %t, cdi %t", n, o.Log.V(1).Enabled(), o.CDI)
	}
	if _, err := parseLogLevel("-1"); err == nil {
		t.Error("--log-level=-1 accepted")
	}
}
