package main

import (
	"context"
	"errors"
	"flag"
)

// devicePluginCommand binds the flags of 'sluice device-plugin'. Filled in with its package.
func devicePluginCommand(fs *flag.FlagSet) func(ctx context.Context) error {
	return func(context.Context) error { return errors.New("not built yet") }
}
