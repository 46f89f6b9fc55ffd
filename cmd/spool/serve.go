package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/server/sqs"
	"github.com/spoolrun/spool/store"
)

const serveLong = `Serve runs Spool's HTTP API (/v1, JSON) over the store, for producers and
workers in any language and for Go workers attached with
--store http://HOST:PORT (see docs/http.md for every route).

Requests carry an API key (Authorization: Bearer spool_...), made with
spool keys create. A key belongs to one tenant and sees only that tenant's
jobs, queues, schedules and topics; its role says what it may do (reader,
producer, worker, admin). Serve refuses to start while the store has no
keys, unless --insecure-no-auth, which accepts every request as an
operator's and then listens on loopback only.

The server also does the store's upkeep (returning jobs whose locks
expired, firing schedules, routing events), so remote workers need not.

The dashboard (docs/dashboard.md) is at /: log in with an API key; the key's
tenant and role apply to every page (--dashboard=false turns it off).

Operations (docs/operations.md): GET /livez and /readyz answer without a
key; GET /metrics serves Prometheus metrics to an operator's key (tenant *),
or to anyone with --metrics public (--metrics off: 404). The server's own
worker computes the cluster-wide gauges (queue depth, oldest job,
subscription lag) while it holds their lease.

The same listener speaks SQS (docs/sqs.md): requests of AWS SDKs (an
X-Amz-Target: AmazonSQS.* header, AWS JSON 1.0) go to the SQS facade, so an
application written for SQS uses Spool by changing its endpoint URL. They
are signed (SigV4) with a key made by spool keys create --sqs, its ID the
access key ID; --sqs-auth off accepts any signature, as an admin of the
default tenant, and then listens on loopback only. --sqs=false turns the
facade off.

SIGINT or SIGTERM first makes /readyz fail (503), so a load balancer stops
sending requests; after --drain-delay it stops accepting connections,
answers long polls at once, lets requests in flight finish for up to
--shutdown-timeout and exits 0.
Jobs held by remote workers keep their locks: a worker that is gone lets
them expire.`

const serveExample = `  spool keys create --tenant acme --role producer
  spool serve --addr 127.0.0.1:8080
  spool serve --addr :8443 --tls-cert cert.pem --tls-key key.pem --store postgres://app@db/app
  spool serve --insecure-no-auth   # local development: loopback only, no keys
  spool serve --insecure-no-auth --sqs-auth off   # and AWS SDKs with any credentials
  spool serve --sqs-max-message-bytes 1048576     # SQS messages up to 1 MiB`

type serveFlags struct {
	addr            string
	insecure        bool
	tlsCert, tlsKey string
	rateLimit       float64
	rateBurst       int
	requestTimeout  time.Duration
	maxBody         int64
	shutdownTimeout time.Duration
	metrics         string
	drainDelay      time.Duration
	gaugeInterval   time.Duration
	sqs             bool
	sqsAuth         string
	sqsMaxMessage   int
	sqsRegion       string
	sqsBaseURL      string
	dashboard       bool
	sessionSecret   string
}

func (a *app) serveCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:     "serve",
		Short:   "Serve the HTTP API",
		Long:    serveLong,
		Example: serveExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runServe(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "host:port to listen on (port 0 picks a free one, printed at start)")
	fl.BoolVar(&f.insecure, "insecure-no-auth", false, "accept requests without API keys, as an operator's; listens on loopback only")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (needs --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "the PEM private key of --tls-cert")
	fl.Float64Var(&f.rateLimit, "rate-limit", 0, "requests per second each key may make, sustained (0: no limit); past it, 429")
	fl.IntVar(&f.rateBurst, "rate-burst", 0, "requests a key may make at once above --rate-limit (default: twice --rate-limit)")
	fl.DurationVar(&f.requestTimeout, "request-timeout", 30*time.Second, "longest a request may work (long polls get their wait on top)")
	fl.Int64Var(&f.maxBody, "max-body", 32<<20, "largest request body in bytes; past it, 413")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long requests in flight may finish after SIGINT or SIGTERM")
	fl.StringVar(&f.metrics, "metrics", string(server.MetricsOperator), "who may read GET /metrics: operator (a key of tenant *), public (no key) or off")
	fl.DurationVar(&f.gaugeInterval, "gauge-interval", 15*time.Second, "how often the cluster gauges (queue depth, oldest job, subscription lag) are computed, by the one node holding their lease")
	fl.BoolVar(&f.dashboard, "dashboard", true, "serve the dashboard at / (log in with an API key); --dashboard=false answers 404 there")
	fl.StringVar(&f.sessionSecret, "session-secret-file", "", "a file of at least 32 bytes that signs dashboard sessions, so servers behind one load balancer share them (default: random per start)")
	fl.DurationVar(&f.drainDelay, "drain-delay", 0, "after SIGINT or SIGTERM, how long /readyz fails before the server stops taking connections (give load balancers time to notice)")
	fl.BoolVar(&f.sqs, "sqs", true, "answer AWS SDKs' SQS requests (X-Amz-Target: AmazonSQS.*) on the same listener (docs/sqs.md)")
	fl.StringVar(&f.sqsAuth, "sqs-auth", string(sqs.AuthSigV4), "how SQS requests authenticate: sigv4 (signed with a key made by spool keys create --sqs) or off (any signature, as an admin of the default tenant; loopback only)")
	fl.IntVar(&f.sqsMaxMessage, "sqs-max-message-bytes", sqs.DefaultMaxMessageBytes, "the largest SQS message (body and attributes), up to 1048576; SQS's own limit is the default")
	fl.StringVar(&f.sqsRegion, "sqs-region", "us-east-1", "the region in SQS queue ARNs")
	fl.StringVar(&f.sqsBaseURL, "sqs-base-url", "", "the scheme and host SQS queue URLs start with, such as https://sqs.example.com (default: each request's own)")
	return cmd
}

func (a *app) runServe(cmd *cobra.Command, f serveFlags) error {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usagef("give --tls-cert and --tls-key together")
	}
	if f.shutdownTimeout < 0 || f.drainDelay < 0 {
		return usagef("--shutdown-timeout and --drain-delay must not be negative")
	}
	access := server.MetricsAccess(f.metrics)
	switch access {
	case server.MetricsOperator, server.MetricsPublic, server.MetricsOff:
	default:
		return usagef("--metrics %q: use operator, public or off", f.metrics)
	}
	host, _, err := net.SplitHostPort(f.addr)
	if err != nil {
		return usagef("--addr %q: %v", f.addr, err)
	}
	if f.insecure && !isLoopback(host) {
		return usagef("--insecure-no-auth listens on loopback only: use --addr 127.0.0.1:PORT, not %q", f.addr)
	}
	switch sqs.Auth(f.sqsAuth) {
	case sqs.AuthSigV4:
	case sqs.AuthOff:
		if f.sqs && !isLoopback(host) {
			return usagef("--sqs-auth off listens on loopback only: use --addr 127.0.0.1:PORT, not %q", f.addr)
		}
	default:
		return usagef("--sqs-auth %q: use sigv4 or off", f.sqsAuth)
	}
	if f.sqsMaxMessage < 1024 || f.sqsMaxMessage > store.MaxPayloadBytes {
		return usagef("--sqs-max-message-bytes %d: use 1024 to %d", f.sqsMaxMessage, store.MaxPayloadBytes)
	}
	dash := server.DashboardConfig{Disable: !f.dashboard}
	if f.sessionSecret != "" {
		secret, err := os.ReadFile(f.sessionSecret)
		if err != nil {
			return usagef("--session-secret-file: %v", err)
		}
		if dash.SessionSecret = bytes.TrimSpace(secret); len(dash.SessionSecret) < 32 {
			return usagef("--session-secret-file %s: at least 32 bytes, not %d", f.sessionSecret, len(dash.SessionSecret))
		}
	}
	log, err := a.logger()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	st, err := a.openOrCreate(cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	if !f.insecure {
		if err := requireKeys(ctx, st); err != nil {
			return err
		}
	}
	metrics, err := spool.NewMetrics(spool.MetricsConfig{GaugeInterval: f.gaugeInterval})
	if err != nil {
		return usagef("--gauge-interval: %v", err)
	}
	// Upkeep: a worker with no queues reaps expired locks, fires
	// schedules, prunes by retention, and computes the cluster gauges
	// while it holds their lease.
	tp, stopTracing, err := otlpTracing(ctx, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	upkeep, err := spool.NewWorker(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{}, Logger: log, Metrics: metrics, TracerProvider: tp,
		Heartbeat: spool.HeartbeatConfig{Disable: true}}) // maintenance only: no worker to list
	if err != nil {
		return err
	}
	health, err := spool.NewHealth(spool.HealthConfig{Store: st, Workers: []*spool.Worker{upkeep}})
	if err != nil {
		return err
	}
	facade, err := sqsFacade(st, f, displayURL(a.storeURL(cmd)), log)
	if err != nil {
		return err
	}
	scfg := server.Config{Store: st, Insecure: f.insecure, RateLimit: f.rateLimit, RateBurst: f.rateBurst,
		RequestTimeout: f.requestTimeout, MaxBodyBytes: f.maxBody, Logger: log,
		Metrics: metrics, Gatherer: metricsRegistry(metrics), MetricsAccess: access, Health: health, TracerProvider: tp, Dashboard: dash}
	if facade != nil {
		scfg.SQS = facade
	}
	srv, err := server.New(scfg)
	if err != nil {
		return err
	}
	if err := upkeep.Start(ctx); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
		defer cancel()
		_ = upkeep.Stop(stopCtx)
	}()
	if facade != nil {
		if err := facade.Start(ctx); err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
			defer cancel()
			_ = facade.Stop(stopCtx)
		}()
	}

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", f.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	scheme := "http"
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			ln.Close()
			return usagef("--tls-cert/--tls-key: %v", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	log.Info("serving", "url", scheme+"://"+ln.Addr().String(), "store", displayURL(a.storeURL(cmd)), "auth", !f.insecure,
		"sqs", sqsMode(facade, f))
	if a.jsonOut {
		a.printJSON(map[string]string{"url": scheme + "://" + ln.Addr().String()})
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Readiness fails first, before anything stops, so that a load
	// balancer stops routing here while requests are still served.
	health.Drain()
	if f.drainDelay > 0 {
		log.Info("shutting down: /readyz fails; still serving", "for", f.drainDelay)
		t := time.NewTimer(f.drainDelay)
		select {
		case <-t.C:
		case err := <-served:
			t.Stop()
			return err
		}
	}
	log.Info("shutting down: no new connections; finishing requests in flight", "timeout", f.shutdownTimeout)
	srv.Drain()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(stopCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := srv.FlushActivity(stopCtx); err != nil {
		log.Warn("could not record the remote workers' last activity", "err", err)
	}
	log.Info("stopped")
	return nil
}

// sqsFacade returns the SQS facade spool serve answers AWS SDKs with, or
// nil with --sqs=false or over a store that keeps no SQS queues (said in
// the log).
func sqsFacade(st store.Store, f serveFlags, storeName string, log *slog.Logger) (*sqs.Handler, error) {
	if !f.sqs {
		return nil, nil
	}
	if st.Capabilities().SQS == nil {
		log.Warn("the store keeps no SQS queues: the SQS facade is off", "store", storeName)
		return nil, nil
	}
	return sqs.New(sqs.Config{Store: st, Auth: sqs.Auth(f.sqsAuth), Region: f.sqsRegion, BaseURL: f.sqsBaseURL,
		MaxMessageBytes: f.sqsMaxMessage, RequestTimeout: f.requestTimeout, Logger: log})
}

// sqsMode says how the SQS facade serves, for the log.
func sqsMode(facade *sqs.Handler, f serveFlags) string {
	if facade == nil {
		return "off"
	}
	return f.sqsAuth
}

// requireKeys refuses to serve a store without usable keys: a server
// nobody can call is a mistake, and one anybody can call must be asked
// for (--insecure-no-auth).
func requireKeys(ctx context.Context, st store.Store) error {
	ks := st.Capabilities().Keys
	if ks == nil {
		return fmt.Errorf("%w: this store keeps no API keys; use --insecure-no-auth for local development", store.ErrUnsupported)
	}
	keys, err := ks.ListKeys(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, k := range keys {
		if k.Usable(now) {
			return nil
		}
	}
	return usagef("the store has no usable API keys: make one with spool keys create --tenant T --role admin, or serve with --insecure-no-auth (loopback only)")
}

// isLoopback reports whether host names only the loopback interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
