// Package server is spool serve's HTTP API: a versioned JSON API (/v1) for
// everything the Go Client and the spool command do, for producers and
// workers in any language and for Go workers attached through store/remote.
//
// Every route is a row of one table (routes.go) naming its method, path and
// the permission it needs; one function (Server.handle) authenticates the
// bearer API key, checks the permission and the key's rate limit, bounds
// the body and the time, and encodes answers and errors through the wire
// layer's one catalog. A key belongs to one tenant (or, as an operator's
// key, to all of them) and sees only that tenant's jobs, queues, schedules
// and topics: a tenant's queue and topic names are stored under the
// tenant's prefix ("acme/mail"), which the API adds and removes, so two
// tenants may both have a queue "mail" and never meet. docs/http.md has the
// routes, with examples.
//
// The same server serves a dashboard for people at / (ui*.go, pages and
// assets under ui/, docs/dashboard.md): server-rendered pages that call the
// API's route functions with the scope of a session opened with an API
// key, so a page shows and does exactly what its key may through /v1.
package server

import (
	"cmp"
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	spool "github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/server/sqs"
	"github.com/spoolrun/spool/store"
)

// Config configures a Server. Zero fields take the defaults given.
type Config struct {
	// Store is where the jobs live. Required.
	Store store.Store
	// Insecure serves without API keys: every request acts as an admin of
	// all tenants. For local development only; spool serve then listens on
	// loopback alone. Without it, Store must have the Keys capability.
	Insecure bool
	// RateLimit is each key's sustained limit in requests per second; past
	// it, requests get 429 rate_limited. Zero: no limit.
	RateLimit float64
	// RateBurst is how many requests a key may make at once above the
	// sustained rate. Default: twice RateLimit, at least 1.
	RateBurst int
	// RequestTimeout bounds each request's work; long polls (claims and
	// waits) get their wait on top. Default 30s.
	RequestTimeout time.Duration
	// MaxBodyBytes is the largest request body taken; past it, 413
	// too_large. Default 32 MiB: a full batch of jobs with their payloads.
	MaxBodyBytes int64
	// KeyCacheFor is how long a looked-up key is trusted before it is read
	// again, so a revocation takes effect within it. Default 5s.
	KeyCacheFor time.Duration
	// Logger receives one line per failed request (5xx) and per refused
	// key. Default: discard.
	Logger *slog.Logger
	// Clock is the clock of long polls, rate limits and key expiry.
	// Default: the real clock.
	Clock clockwork.Clock

	// Metrics, when set, counts the jobs enqueued through the API
	// (spool.Config.Metrics of the server's Client).
	Metrics *spool.Metrics
	// Gatherer is served at GET /metrics (such as a prometheus.Registry
	// holding Metrics). Default: none, and /metrics answers 404.
	Gatherer prometheus.Gatherer
	// MetricsAccess says who may read /metrics: MetricsOperator (the
	// default), MetricsPublic or MetricsOff.
	MetricsAccess MetricsAccess
	// Health answers GET /livez and /readyz. Default: a spool.Health over
	// Store, with no workers. Drain makes its readiness fail.
	Health *spool.Health
	// Dashboard configures the dashboard served at / (docs/dashboard.md);
	// it is on unless Dashboard.Disable.
	Dashboard DashboardConfig
	// TracerProvider makes the send spans of jobs enqueued and events
	// published through the API (spool.Config.TracerProvider of the
	// server's Client). Default: the global provider.
	TracerProvider trace.TracerProvider
	// SQS, when set, answers the requests of AWS SDKs on the same
	// listener: those whose X-Amz-Target header names AmazonSQS go to it
	// (the SQS facade, package server/sqs), every other to the API. Drain
	// drains it too. Default: none; such requests get 404.
	SQS SQSFacade
}

// SQSFacade is what the server hands SQS requests to: a *sqs.Handler.
type SQSFacade interface {
	http.Handler
	// Drain ends its long polls at once.
	Drain()
}

// MaxWait is the longest a claim or a wait may long-poll.
const MaxWait = wire.MaxWaitSeconds * time.Second

// Server is the HTTP API over one store. It is an http.Handler.
type Server struct {
	cfg    Config
	st     store.Store
	client *spool.Client
	keys   store.KeyStore
	// health answers the probes; metrics serves /metrics, nil when off.
	health  *spool.Health
	metrics http.Handler
	mux     *http.ServeMux
	routes  []route

	// draining is closed by Drain: long polls answer at once.
	draining  chan struct{}
	drainOnce sync.Once

	mu       sync.Mutex // guards limiters and keyCache
	limiters map[string]*rate.Limiter
	keyCache map[string]cachedKey

	// templates are the dashboard's pages by file name, and uiRoutes its
	// routes; both empty when it is off.
	templates map[string]*template.Template
	uiRoutes  []uiRoute

	// stats is the dashboard's short cache of the queue statistics
	// (storeStats); its mu guards it and is held while they are read.
	stats struct {
		mu  sync.Mutex
		val []store.QueueStats
		at  time.Time
	}

	// subRefs remembers the subscriptions of delivery queues, which
	// claims route (events.go).
	subRefs subscriptionRefs

	// act counts the claims and verdicts of remote workers for the
	// store's activity (activity.go); nil when the store keeps none.
	act *activityRecorder
}

type cachedKey struct {
	key *store.APIKey // nil: no such key
	at  time.Time
}

// New returns a Server over cfg.Store.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, &store.ValidationError{Field: "Store", Reason: "is required"}
	}
	keys := cfg.Store.Capabilities().Keys
	if keys == nil && !cfg.Insecure {
		return nil, errors.Join(store.ErrUnsupported,
			errors.New("spool serve: the store keeps no API keys; serve it with Insecure (--insecure-no-auth) or use a store that has them"))
	}
	if cfg.RateLimit < 0 || cfg.RateBurst < 0 || cfg.RequestTimeout < 0 || cfg.MaxBodyBytes < 0 || cfg.KeyCacheFor < 0 {
		return nil, &store.ValidationError{Field: "server config", Reason: "limits and timeouts may not be negative"}
	}
	cfg.MetricsAccess = cmp.Or(cfg.MetricsAccess, MetricsOperator)
	switch cfg.MetricsAccess {
	case MetricsOperator, MetricsPublic, MetricsOff:
	default:
		return nil, &store.ValidationError{Field: "MetricsAccess", Reason: "is " + strconv.Quote(string(cfg.MetricsAccess)) + ", want operator, public or off"}
	}
	if cfg.Health == nil {
		h, err := spool.NewHealth(spool.HealthConfig{Store: cfg.Store})
		if err != nil {
			return nil, err
		}
		cfg.Health = h
	}
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, 30*time.Second)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, 32<<20)
	cfg.KeyCacheFor = cmp.Or(cfg.KeyCacheFor, 5*time.Second)
	if cfg.RateLimit > 0 {
		cfg.RateBurst = cmp.Or(cfg.RateBurst, max(1, int(2*cfg.RateLimit)))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	client, err := spool.NewClient(spool.Config{Store: cfg.Store, Clock: cfg.Clock, Metrics: cfg.Metrics, TracerProvider: cfg.TracerProvider})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, st: cfg.Store, client: client, keys: keys, health: cfg.Health, metrics: metricsHandler(cfg), mux: http.NewServeMux(),
		draining: make(chan struct{}), limiters: map[string]*rate.Limiter{}, keyCache: map[string]cachedKey{},
		act: newActivityRecorder(cfg.Store)}
	s.routes = s.table()
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.path, s.handle(rt))
	}
	if err := s.setupDashboard(); err != nil {
		return nil, err
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, &store.NotFoundError{Resource: "route", Name: r.Method + " " + r.URL.Path})
	})
	return s, nil
}

// ServeHTTP serves the API, and SQS requests through Config.SQS.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.SQS != nil && sqs.IsRequest(r) {
		s.cfg.SQS.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Drain makes /readyz fail and ends long polls at once, answering them as
// if their wait ran out: call it before http.Server.Shutdown so that
// shutdown does not wait for them. Jobs held by remote workers keep their
// locks. Idempotent.
func (s *Server) Drain() {
	s.health.Drain()
	s.drainOnce.Do(func() { close(s.draining) })
	if s.cfg.SQS != nil {
		s.cfg.SQS.Drain()
	}
}

// Route describes one route of the API, for documentation and tests.
type Route struct {
	Method string // GET, POST, PUT or DELETE
	Path   string // a net/http pattern, such as /v1/jobs/{id}
	// Permission is what the route needs: "public", "read", "produce",
	// "work", "admin", or "metrics" (an operator's key of any role, or
	// none with MetricsPublic).
	Permission string
}

// Routes lists the routes the server serves.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	for i, rt := range s.routes {
		out[i] = Route{Method: rt.method, Path: rt.path, Permission: rt.perm.String()}
	}
	return out
}

// waitFor returns a context for a long poll of up to d, which Drain ends
// early. The caller cancels it when done, which also ends its watcher.
func (s *Server) waitFor(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, d)
	go func() {
		select {
		case <-s.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
