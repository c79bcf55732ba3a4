package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/go-logr/logr"

	"github.com/sluice-net/sluice/controllers"
)

// logFlag binds --log-level and returns a function building the command's
// logger from it: JSON lines on stderr, through logr as controller-runtime
// and the device plugin expect.
func logFlag(fs *flag.FlagSet) func() (logr.Logger, error) {
	level := fs.String("log-level", "info", "log level: debug, info, warn or error, or a verbosity N >= 0 (glog's -v, as sriov-network-device-plugin's --log-level=10): V(0) to V(N) messages")
	return func() (logr.Logger, error) {
		l, err := parseLogLevel(*level)
		if err != nil {
			return logr.Logger{}, err
		}
		return logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
	}
}

// parseLogLevel reads a level name or a verbosity N, which enables logr's
// V(0) to V(N) (slog level -N: logr's V(n) logs at slog level -n).
func parseLogLevel(s string) (slog.Level, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("--log-level %d: a verbosity is 0 or more", n)
		}
		return slog.Level(-n), nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error, or a verbosity 0, 1, 2...", s)
	}
	return l, nil
}

// envOr is the environment variable's value, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// draModeFlag is --node-dra: auto, true or false, and true when given
// without a value (a boolean flag before "auto").
type draModeFlag controllers.DRAMode

func (f *draModeFlag) String() string   { return string(*f) }
func (f *draModeFlag) IsBoolFlag() bool { return true }
func (f *draModeFlag) Set(s string) error {
	m, err := controllers.ParseDRAMode(s)
	if err != nil {
		return err
	}
	*f = draModeFlag(m)
	return nil
}
