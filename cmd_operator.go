package main

import (
	"context"
	"errors"
	"flag"
)

// operatorCommand binds the flags of 'sluice operator'. Filled in with its package.
func operatorCommand(fs *flag.FlagSet) func(ctx context.Context) error {
	return func(context.Context) error { return errors.New("not built yet") }
}
