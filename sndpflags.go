package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/sluice-net/sluice/deviceplugin"
)

// sndpNote is what one sriov-network-device-plugin flag does here, logged
// at start when the flag is set.
type sndpNote struct {
	flag, value, says string
}

// sndpFlags binds, on 'sluice device-plugin', the flags an
// sriov-network-device-plugin DaemonSet passes, so that its args run
// unchanged: those of its image's entrypoint, which its manifests use
// (--log-level=10, --log-dir=sriovdp, --use-cdi; --config-file and
// --resource-prefix are sluice's own flags too), and the glog flags its
// binary lists for a DaemonSet that runs it directly. None is ignored
// silently: the returned function says, for each one set, what it does
// here.
func sndpFlags(fs *flag.FlagSet, o *deviceplugin.Options) func() []sndpNote {
	fs.BoolVar(&o.CDI, "use-cdi", false, "sriov-network-device-plugin's name of --cdi")
	fs.Func("v", "glog verbosity of sriov-network-device-plugin's binary: the same as --log-level=N", func(s string) error {
		if _, err := strconv.Atoi(s); err != nil {
			return fmt.Errorf("a verbosity is a number: %w", err)
		}
		return fs.Set("log-level", s)
	})
	fs.String("log-dir", "", "sriov-network-device-plugin's log directory under /var/log: accepted, not used (logs go to stderr only)")
	fs.String("log_dir", "", "glog's log directory: accepted, not used (logs go to stderr only)")
	fs.Bool("logtostderr", false, "glog's flag: accepted; logs always go to stderr")
	fs.Bool("alsologtostderr", false, "glog's flag: accepted; logs always go to stderr")
	fs.String("stderrthreshold", "", "glog's flag: accepted, not used (every log line goes to stderr)")
	fs.String("vmodule", "", "glog's per-file verbosity: accepted, not used")
	fs.String("log_backtrace_at", "", "glog's flag: accepted, not used")

	says := map[string]func(v string) string{
		"use-cdi": func(string) string {
			return "sriov-network-device-plugin's --use-cdi is sluice's --cdi: devices are handed out as CDI device names, specs written to --cdi-dir=" + o.CDIDir
		},
		"log-level": func(v string) string {
			if n, err := strconv.Atoi(v); err == nil {
				return fmt.Sprintf("numeric --log-level is glog's verbosity: messages V(0) to V(%d) are logged; sluice's are V(0) (info) and V(1) (debug)", n)
			}
			return ""
		},
		"v": func(v string) string {
			return "glog's -v is --log-level=" + v + ": messages V(0) to V(" + v + ") are logged"
		},
		"log-dir":     notUsedDir,
		"log_dir":     notUsedDir,
		"logtostderr": func(string) string { return "glog's flag has no effect: sluice always logs JSON lines to stderr" },
		"alsologtostderr": func(string) string {
			return "glog's flag has no effect: sluice logs JSON lines to stderr and writes no log file"
		},
		"stderrthreshold": func(string) string {
			return "glog's flag is not used: every log line at or above --log-level goes to stderr"
		},
		"vmodule": func(string) string {
			return "glog's per-file verbosity is not used: --log-level applies to every message"
		},
		"log_backtrace_at": func(string) string { return "glog's flag is not used: sluice logs no stack traces on a given line" },
	}
	return func() []sndpNote {
		var notes []sndpNote
		fs.Visit(func(f *flag.Flag) {
			say := says[f.Name]
			if say == nil {
				return
			}
			if s := say(f.Value.String()); s != "" {
				notes = append(notes, sndpNote{flag: f.Name, value: f.Value.String(), says: s})
			}
		})
		return notes
	}
}

func notUsedDir(v string) string {
	return "sriov-network-device-plugin flag accepted but not used: sluice writes no log file, its logs are JSON lines on stderr (kubectl logs); directory " + strconv.Quote(v) + " stays empty"
}
