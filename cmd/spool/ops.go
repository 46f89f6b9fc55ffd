package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spoolrun/spool"
)

// metricsRegistry is a registry with Spool's metrics and the Go runtime's
// and the process's.
func metricsRegistry(m *spool.Metrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// opsServer is the small HTTP server of spool work --metrics-addr:
// /metrics, /livez and /readyz, without keys (bind it where only the
// scraper and the probes reach it).
type opsServer struct {
	hs     *http.Server
	ln     net.Listener
	served chan error
}

// startOps listens on addr and serves reg and h until stop.
func startOps(ctx context.Context, addr string, reg prometheus.Gatherer, h *spool.Health, log *slog.Logger) (*opsServer, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, usagef("--metrics-addr %q: %v", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /livez", h.ServeLive)
	mux.HandleFunc("GET /readyz", h.ServeReady)
	o := &opsServer{hs: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, served: make(chan error, 1)}
	go func() { o.served <- o.hs.Serve(ln) }()
	log.Info("serving metrics and probes", "url", "http://"+ln.Addr().String(), "paths", "/metrics /livez /readyz")
	return o, nil
}

// addr is where the server listens.
func (o *opsServer) addr() string { return o.ln.Addr().String() }

// stop shuts the server down within a few seconds.
func (o *opsServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := o.hs.Shutdown(ctx)
	if serr := <-o.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
