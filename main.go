// Command sluice is the operator, the node agent and the kubelet device
// plugin of sluice, one binary with a subcommand each. The CNI plugin is a
// separate, smaller binary (./cni) because it starts once per pod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// version is set at link time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

// command is one subcommand: its flags are bound on a fresh FlagSet, then
// run is called with a context cancelled on SIGINT/SIGTERM.
type command struct {
	name    string
	summary string
	// setup binds the flags and returns the function that runs the command.
	setup func(fs *flag.FlagSet) func(ctx context.Context) error
}

func commands() []command {
	return []command{
		{"operator", "run the cluster operator (policies, node states, attachments, DaemonSet)", operatorCommand},
		{"agent", "run the node agent: discover NICs, apply the node's state, serve the device plugin", agentCommand},
		{"device-plugin", "serve the kubelet device plugin only (pools from a config file)", devicePluginCommand},
		{"migrate", "convert sriov-network-operator, device plugin and sriov-cni configuration to sluice objects (dry run unless --apply)", migrateCommand},
		{"install-cni", "copy the CNI plugin onto the host (the node DaemonSet's init container)", installCNICommand},
		{"version", "print the version", func(*flag.FlagSet) func(context.Context) error {
			return func(context.Context) error {
				fmt.Printf("sluice %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return nil
			}
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: sluice <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'sluice <command> --help' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		fs := flag.NewFlagSet("sluice "+c.name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() {
			fmt.Fprintf(stderr, "Usage: sluice %s [flags]\n\n%s.\n\nFlags:\n", c.name, c.summary)
			fs.PrintDefaults()
		}
		runFn := c.setup(fs)
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "sluice %s: unexpected arguments %q\n", c.name, fs.Args())
			return 2
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runFn(ctx); err != nil {
			fmt.Fprintf(stderr, "sluice %s: %v\n", c.name, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
