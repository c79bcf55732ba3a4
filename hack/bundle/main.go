// Command bundle writes sluice's OLM bundle (bundle/) from config/; see
// package generate. `make bundle` runs it:
//
//	go run ./hack/bundle -kustomize "$KUSTOMIZE" -version 0.1.0 -out bundle
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/sluice-net/sluice/hack/bundle/generate"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bundle: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	o := generate.Options{}
	out := flag.String("out", "bundle", "bundle directory to write (its manifests/, metadata/ and bundle.Dockerfile are replaced)")
	channels := flag.String("channels", "alpha", "comma-separated channels of the bundle")
	flag.StringVar(&o.Kustomize, "kustomize", os.Getenv("SLUICE_KUSTOMIZE"), "kustomize binary (SLUICE_KUSTOMIZE when set); empty: go run kustomize "+generate.KustomizeVersion)
	flag.StringVar(&o.ConfigDir, "config", "config", "the repository's config/ directory")
	flag.StringVar(&o.Version, "version", "0.1.0", "operator version (semver)")
	flag.StringVar(&o.DefaultChannel, "default-channel", "alpha", "default channel; one of -channels")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	o.Channels = strings.Split(*channels, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	files, err := generate.Render(ctx, o)
	if err != nil {
		return err
	}
	if err := generate.Write(*out, files); err != nil {
		return err
	}
	fmt.Printf("bundle: wrote %d files to %s\n", len(files), *out)
	return nil
}
