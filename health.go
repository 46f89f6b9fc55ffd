package spool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/store"
)

// ErrDraining is the readiness error of a process that is shutting down:
// Health.Drain was called.
var ErrDraining = errors.New("spool: draining: shutting down")

// HealthConfig configures a Health. Zero fields take the defaults given.
type HealthConfig struct {
	// Store is checked by readiness. Required.
	Store store.Store
	// Workers are checked by liveness: their loops must be running.
	Workers []*Worker
	// Timeout bounds readiness's store check. Default 2s.
	Timeout time.Duration
	// StuckSettle is how long a verdict may wait in a worker's settler
	// before liveness fails: a settler that cannot write leaves jobs whose
	// locks will expire. Default 1m.
	StuckSettle time.Duration
}

// Health answers liveness and readiness probes for a process running
// Spool (Kubernetes' /livez and /readyz; docs/operations.md):
//
//   - Live: the process's loops are alive: each started Worker's services
//     are running and no verdict has waited in its settler past
//     StuckSettle. It never touches the database, so a database outage
//     does not restart every pod.
//   - Ready: the store answers one round trip within Timeout and its
//     schema is the one this build expects (Capabilities.Health; a store
//     without it is asked for a job that does not exist), and the process
//     is not draining. Drain makes it fail from then on: call it first on
//     SIGTERM, so a load balancer stops sending work before the drain.
type Health struct {
	cfg      HealthConfig
	draining atomic.Bool
}

// NewHealth returns a Health over cfg.
func NewHealth(cfg HealthConfig) (*Health, error) {
	if cfg.Store == nil {
		return nil, &store.ValidationError{Field: "HealthConfig.Store", Reason: "is required"}
	}
	if cfg.Timeout < 0 || cfg.StuckSettle < 0 {
		return nil, &store.ValidationError{Field: "HealthConfig", Reason: "Timeout and StuckSettle may not be negative"}
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 2*time.Second)
	cfg.StuckSettle = cmp.Or(cfg.StuckSettle, time.Minute)
	return &Health{cfg: cfg}, nil
}

// Drain makes Ready fail with ErrDraining from now on. Idempotent.
func (h *Health) Drain() { h.draining.Store(true) }

// Draining reports whether Drain was called.
func (h *Health) Draining() bool { return h.draining.Load() }

// Live returns nil while every started Worker's loops run, or why not.
func (h *Health) Live() error {
	var errs []error
	for _, w := range h.cfg.Workers {
		errs = append(errs, w.live(h.cfg.StuckSettle))
	}
	return errors.Join(errs...)
}

// Ready returns nil when the process can take work: not draining, and the
// store answers with a current schema within Timeout.
func (h *Health) Ready(ctx context.Context) error {
	if h.draining.Load() {
		return ErrDraining
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	if hc := h.cfg.Store.Capabilities().Health; hc != nil {
		return hc.CheckHealth(ctx)
	}
	// A store without the capability (the HTTP remote store) is asked for
	// a job that cannot exist: any answer but "not found" is a failure.
	if _, err := h.cfg.Store.Get(ctx, store.ID{}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// ServeLive answers a liveness probe: 200 "ok", or 503 with the reason.
func (h *Health) ServeLive(w http.ResponseWriter, _ *http.Request) {
	writeProbe(w, h.Live())
}

// ServeReady answers a readiness probe: 200 "ok", or 503 with the reason.
func (h *Health) ServeReady(w http.ResponseWriter, r *http.Request) {
	writeProbe(w, h.Ready(r.Context()))
}

func writeProbe(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ok: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// live returns nil unless the worker is started and one of its loops
// ended, or a verdict has waited in its settler longer than stuck. A
// worker that is not started (or is starting or stopping) is not
// failing.
func (w *Worker) live(stuck time.Duration) error {
	if !w.mu.TryLock() {
		return nil // Start or Stop in progress
	}
	run := w.run
	w.mu.Unlock()
	if run == nil {
		return nil
	}
	// Executors and fetchers of a worker without queues (an upkeep
	// worker) and routers without subscriptions have nothing to run.
	queues := len(run.queues) > 0
	for _, c := range []struct {
		name          string
		running, runs bool
	}{
		{"settler", w.settler.Running(), true},
		{"renewer", run.renewer.base.Running(), true},
		{"executors", run.executors.base.Running(), queues},
		{"fetchers", run.fetchers.base.Running(), queues},
	} {
		if c.runs && !c.running {
			return fmt.Errorf("spool: worker %s: its %s stopped", w.cfg.ID, c.name)
		}
	}
	if since := w.settler.PendingSince(); !since.IsZero() {
		if waited := w.clock.Since(since); waited > stuck {
			return fmt.Errorf("spool: worker %s: a verdict has waited %v to be written", w.cfg.ID, waited.Round(time.Second))
		}
	}
	return nil
}
