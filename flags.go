package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/go-logr/logr"
)

// logFlag binds --log-level and returns a function building the command's
// logger from it: JSON lines on stderr, through logr as controller-runtime
// and the device plugin expect.
func logFlag(fs *flag.FlagSet) func() (logr.Logger, error) {
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	return func() (logr.Logger, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*level)); err != nil {
			return logr.Logger{}, fmt.Errorf("--log-level %q: use debug, info, warn or error", *level)
		}
		return logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
	}
}

// envOr is the environment variable's value, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
