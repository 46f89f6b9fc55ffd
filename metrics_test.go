package spool_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/loader"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// openRealStore opens a SQLite store on the real clock.
func openRealStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newMetrics(t *testing.T, cfg spool.MetricsConfig) (*spool.Metrics, *prometheus.Registry) {
	t.Helper()
	m, err := spool.NewMetrics(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	return m, reg
}

// value is the value of the one series of name whose labels include
// want (name="value" pairs), read from reg; 0 when there is none.
func value(t *testing.T, reg *prometheus.Registry, name string, want ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(want); i += 2 {
				if have[want[i]] != want[i+1] {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// quickRetry retries at once.
type quickRetry struct{}

func (quickRetry) RetryDelay(*spool.Job, int, error) time.Duration { return 0 }

// TestMetricsCountWhatTheWorkerDid: enqueues, verdicts by outcome, handler
// durations, pickups, slots and the store batches, as a worker with
// Metrics reports them.
func TestMetricsCountWhatTheWorkerDid(t *testing.T) {
	t.Parallel()
	st := openRealStore(t, filepath.Join(t.TempDir(), "spool.db"))
	m, reg := newMetrics(t, spool.MetricsConfig{Tenant: true})
	c, err := spool.NewClient(spool.Config{Store: st, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spool.NewWorker(spool.WorkerConfig{Store: st, Metrics: m, Retry: quickRetry{}, PollInterval: 10 * time.Millisecond,
		Queues: map[string]spool.QueueConfig{"mail": {Concurrency: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	spool.HandleAll(w, func(_ context.Context, j *spool.Job) ([]byte, error) {
		switch j.Kind {
		case "dead":
			return nil, spool.DeadLetter(errors.New("no"))
		case "fail":
			return nil, errors.New("fails once")
		case "flaky":
			if j.Attempts == 0 {
				return nil, errors.New("fails the first time")
			}
		case "cancel":
			return nil, spool.Cancel(errors.New("not wanted"))
		}
		return nil, nil
	}, nil)
	var items []spool.Item
	for _, kind := range []string{"ok", "ok", "ok", "dead", "fail", "flaky", "cancel"} {
		items = append(items, spool.NewKind[int](kind).Item(1, &spool.EnqueueOptions{Queue: "mail", Tenant: "acme", MaxAttempts: 1 + 4*boolInt(kind == "flaky")}))
	}
	items = append(items, spool.NewKind[int]("ok").Item(1, &spool.EnqueueOptions{Queue: "mail", Tenant: "acme", UniqueKey: "u"}),
		spool.NewKind[int]("ok").Item(1, &spool.EnqueueOptions{Queue: "mail", Tenant: "acme", UniqueKey: "u"}))
	res, err := c.EnqueueMany(t.Context(), items...)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "spool_worker_slots", "queue", "mail", "state", "total"); got != 3 {
		t.Errorf("slots total = %v, want 3", got)
	}
	for _, r := range res {
		if _, err := c.Wait(t.Context(), r.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The verdicts were all written (Stop flushes the settler) and counted.
	for _, c := range []struct {
		name string
		want float64
		pick []string
	}{
		{"spool_jobs_enqueued_total", 8, []string{"queue", "mail", "tenant", "acme"}}, // the duplicate is not counted
		{"spool_jobs_settled_total", 5, []string{"outcome", "completed"}},             // 4 ok, 1 flaky
		{"spool_jobs_settled_total", 2, []string{"outcome", "dead_lettered"}},         // dead, fail (1 attempt)
		{"spool_jobs_settled_total", 1, []string{"outcome", "retried", "kind", "flaky"}},
		{"spool_jobs_settled_total", 1, []string{"outcome", "cancelled", "kind", "cancel"}},
		{"spool_job_duration_seconds", 9, []string{"queue", "mail"}},
		{"spool_job_pickup_latency_seconds", 9, []string{"queue", "mail"}},
		{"spool_job_redeliveries_total", 0, nil},
		{"spool_stale_settles_total", 0, nil},
		{"spool_store_commit_batch_size", 1, []string{"op", "enqueue"}},
	} {
		if got := value(t, reg, c.name, c.pick...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.pick, got, c.want)
		}
	}
	if value(t, reg, "spool_store_commit_batch_size", "op", "settle") < 1 || value(t, reg, "spool_store_commit_batch_size", "op", "claim") < 1 {
		t.Error("no settle or claim batch observed")
	}
	// A stopped worker's slots are no longer exported.
	if n, _ := testutil.GatherAndCount(reg, "spool_worker_slots"); n != 0 {
		t.Errorf("%d slot series after Stop, want none", n)
	}
	// The metrics lint clean (names, units, help).
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestMetricsGaugesOneHolder: of two workers on one store, each with its
// Metrics, one holds the gauges' lease and exports queue depth; the other
// exports none. When the holder stops it releases the lease, and the
// other takes over.
func TestMetricsGaugesOneHolder(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	var (
		ws   []*spool.Worker
		regs []*prometheus.Registry
	)
	for range 2 {
		st := openRealStore(t, path)
		m, reg := newMetrics(t, spool.MetricsConfig{GaugeInterval: time.Second})
		w, err := spool.NewWorker(spool.WorkerConfig{Store: st, Metrics: m, Queues: map[string]spool.QueueConfig{}})
		if err != nil {
			t.Fatal(err)
		}
		ws, regs = append(ws, w), append(regs, reg)
	}
	c := newClient(t, openRealStore(t, path))
	if _, err := c.EnqueueMany(t.Context(), spool.NewKind[int]("k").Item(1, &spool.EnqueueOptions{Queue: "q"}),
		spool.NewKind[int]("k").Item(2, &spool.EnqueueOptions{Queue: "q"})); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if err := w.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Stop(context.Background()) })
	}
	holder := pollIndex(t, func() int {
		h := -1
		for i, reg := range regs {
			if value(t, reg, "spool_gauges_holder") == 1 && value(t, reg, "spool_queue_jobs", "queue", "q", "state", "available") == 2 {
				if h >= 0 {
					t.Fatal("both workers hold the gauges' lease")
				}
				h = i
			}
		}
		return h
	})
	other := 1 - holder
	if n, _ := testutil.GatherAndCount(regs[other], "spool_queue_jobs", "spool_queue_oldest_available_age_seconds"); n != 0 {
		t.Errorf("the worker without the lease exports %d gauge series", n)
	}
	if err := ws[holder].Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(regs[holder], "spool_queue_jobs"); n != 0 {
		t.Errorf("a stopped holder exports %d depth series", n)
	}
	pollIndex(t, func() int {
		if value(t, regs[other], "spool_queue_jobs", "queue", "q", "state", "available") == 2 {
			return other
		}
		return -1
	})
}

// pollIndex polls f until it returns a non-negative value, for up to a
// minute.
func pollIndex(t *testing.T, f func() int) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if v := f(); v >= 0 {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(20 * time.Millisecond) // polling, not an assertion
	}
}

// TestMetricsLoader: a watched loader's hits, misses and coalesced loads
// are read at each scrape.
func TestMetricsLoader(t *testing.T) {
	t.Parallel()
	m, reg := newMetrics(t, spool.MetricsConfig{})
	l, err := loader.New(func(_ context.Context, k string) (string, error) { return strings.ToUpper(k), nil }, loader.Options[string, string]{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	m.WatchLoader("names", l)
	for range 3 {
		if _, err := l.Get(t.Context(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if hits, misses := value(t, reg, "spool_loader_requests_total", "loader", "names", "result", "hit"),
		value(t, reg, "spool_loader_requests_total", "loader", "names", "result", "miss"); hits != 2 || misses != 1 {
		t.Errorf("hits %v misses %v, want 2 and 1", hits, misses)
	}
	m.UnwatchLoader("names")
	if n, _ := testutil.GatherAndCount(reg, "spool_loader_requests_total"); n != 0 {
		t.Errorf("%d loader series after Unwatch", n)
	}
}

// TestMetricsConfigRefused: every mistake at once.
func TestMetricsConfigRefused(t *testing.T) {
	t.Parallel()
	_, err := spool.NewMetrics(spool.MetricsConfig{GaugeInterval: time.Millisecond, DurationBuckets: []float64{2, 1}, Holder: strings.Repeat("h", 300)})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("NewMetrics = %v, want ErrInvalid", err)
	}
	for _, field := range []string{"GaugeInterval", "DurationBuckets", "Holder"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("the error does not name %s: %v", field, err)
		}
	}
}

// TestHealth: readiness follows the store and Drain; liveness follows the
// worker's loops and never the store.
func TestHealth(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := spool.NewWorker(spool.WorkerConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	h, err := spool.NewHealth(spool.HealthConfig{Store: st, Workers: []*spool.Worker{w}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Live(); err != nil {
		t.Errorf("Live before Start: %v", err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.Live(); err != nil {
		t.Errorf("Live: %v", err)
	}
	if err := h.Ready(t.Context()); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if err := w.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := h.Ready(t.Context()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Ready on a closed store = %v, want ErrClosed", err)
	}
	if err := h.Live(); err != nil {
		t.Errorf("Live with the store closed: %v", err)
	}
	h.Drain()
	if err := h.Ready(t.Context()); !errors.Is(err, spool.ErrDraining) {
		t.Errorf("Ready after Drain = %v, want ErrDraining", err)
	}
}
