package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-net/sluice/deviceplugin"
)

// devicePluginCommand binds the flags of 'sluice device-plugin'.
func devicePluginCommand(fs *flag.FlagSet) func(ctx context.Context) error {
	var o deviceplugin.Options
	o.BindFlags(fs)
	metricsAddr := fs.String("metrics-bind-address", "0", `address of the Prometheus /metrics endpoint; "0" turns it off`)
	newLogger := logFlag(fs)
	compat := sndpFlags(fs, &o)

	return func(ctx context.Context) error {
		logger, err := newLogger()
		if err != nil {
			return err
		}
		for _, n := range compat() {
			logger.Info(n.says, "flag", "--"+n.flag, "value", n.value)
		}
		o.Log = logger
		if *metricsAddr == "0" {
			return deviceplugin.Run(ctx, o)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		o.Metrics = reg
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return serveMetrics(gctx, *metricsAddr, reg) })
		g.Go(func() error { return deviceplugin.Run(gctx, o) })
		return g.Wait()
	}
}

// serveMetrics serves reg on addr's /metrics until ctx ends.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-bind-address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}
