package main

import (
	"context"
	"errors"
	"flag"
)

// agentCommand binds the flags of 'sluice agent'. Filled in with its package.
func agentCommand(fs *flag.FlagSet) func(ctx context.Context) error {
	return func(context.Context) error { return errors.New("not built yet") }
}
