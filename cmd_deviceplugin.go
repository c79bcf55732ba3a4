package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/go-logr/logr"

	"github.com/sluice-net/sluice/deviceplugin"
)

// devicePluginCommand binds the flags of 'sluice device-plugin'.
func devicePluginCommand(fs *flag.FlagSet) func(ctx context.Context) error {
	var o deviceplugin.Options
	o.BindFlags(fs)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")

	return func(ctx context.Context) error {
		var level slog.Level
		if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
			return fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)
		}
		o.Log = logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		return deviceplugin.Run(ctx, o)
	}
}
