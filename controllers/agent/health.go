package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// healthServer answers the kubelet's liveness probe for the process, which
// lives on while the agent's controller restarts (agentLoop): a probe that
// followed the API server would kill the device plugin with it.
type healthServer struct {
	l   net.Listener
	srv *http.Server
}

// startHealth listens on addr; serve answers until its context ends.
func startHealth(addr string) (*healthServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health probes on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ok)
	return &healthServer{l: l, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

func (h *healthServer) serve(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(h.l) }()
	select {
	case err := <-done:
		return fmt.Errorf("health probes: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("health probes: %w", err)
		}
		return nil
	}
}
