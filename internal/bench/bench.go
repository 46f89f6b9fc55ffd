// Package bench is the engine behind `spool bench`: a burn-down (enqueue N
// no-op jobs, then work them), a continuous run (enqueue at a fixed rate
// and measure enqueue→start latency), and a cross-process run (the same
// with the worker in another process, then the idle worker's CPU), on any
// store.
//
// Completions are counted where they become durable: a wrapper around the
// store counts the completions each Settle call applied, so "the last
// durable completion" is when the store acknowledged it, not when a handler
// returned.
package bench

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

// Config describes one run. Zero fields take the documented defaults.
type Config struct {
	// Store is the store to measure. Required.
	Store store.Store
	// Jobs is how many jobs a burn-down works. Default 100,000.
	Jobs int
	// Workers is the worker's concurrency (jobs running at once). Default 100.
	Workers int
	// Rate is the continuous run's enqueue rate in jobs/s. Default 1,000.
	Rate int
	// Duration is how long the continuous run enqueues. Default 10s.
	Duration time.Duration
	// Warmup is how long a continuous run enqueues at Rate before Duration
	// starts, with its jobs worked but not measured: the connections open
	// and the statements are prepared, as in a process that has been
	// running. Default 1s; negative: none.
	Warmup time.Duration
	// Queue is the queue used. Default "bench".
	Queue string
	// Progress, if set, is called about ten times a second with the jobs
	// completed so far and the total.
	Progress func(done, total int)
	// Metrics, if set, is given to the worker and the producer's client,
	// to measure what metrics cost.
	Metrics *spool.Metrics
	// TracerProvider traces the run's clients and workers (burn-down and
	// continuous). Default: the global provider, which is a no-op
	// unless the program set one.
	TracerProvider trace.TracerProvider
}

// Result is what a run measured.
type Result struct {
	Mode       string   `json:"mode"`
	Jobs       int      `json:"jobs"`
	Workers    int      `json:"workers"`
	Seconds    float64  `json:"seconds"`
	JobsPerSec float64  `json:"jobs_per_sec"`
	LatencyMS  *Latency `json:"latency_ms,omitempty"`
	// EnqueueSeconds is how long a burn-down took to enqueue its jobs
	// (not part of Seconds).
	EnqueueSeconds float64 `json:"enqueue_seconds,omitempty"`
	// Rate is the continuous run's target enqueue rate.
	Rate int `json:"rate,omitempty"`
	// SettleBatch is the average number of verdicts per store Settle call.
	SettleBatch float64 `json:"settle_batch"`
	// Batch is an enqueue run's jobs per call.
	Batch int `json:"batch,omitempty"`
	// Idle is the cross-process run's idle worker: measured after the
	// load, with nothing to do.
	Idle *Idle `json:"idle,omitempty"`
	// Spans is how many spans a traced run exported.
	Spans int64 `json:"spans,omitempty"`
}

// Idle is what an idle worker process cost.
type Idle struct {
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"` // user plus system
	// CPUPercent is CPUSeconds against Seconds: the share of one core.
	CPUPercent float64 `json:"cpu_percent"`
}

// Latency summarises enqueue→start latencies in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func (c *Config) defaults() error {
	if c.Store == nil {
		return &store.ValidationError{Field: "store", Reason: "is required"}
	}
	c.Jobs = cmp.Or(c.Jobs, 100_000)
	c.Workers = cmp.Or(c.Workers, 100)
	c.Rate = cmp.Or(c.Rate, 1_000)
	c.Duration = cmp.Or(c.Duration, 10*time.Second)
	c.Queue = cmp.Or(c.Queue, "bench")
	c.Warmup = warmup(c.Warmup)
	var errs []error
	if c.Jobs < 1 {
		errs = append(errs, &store.ValidationError{Field: "jobs", Reason: fmt.Sprintf("%d must be positive", c.Jobs)})
	}
	if c.Workers < 1 || c.Workers > store.MaxClaim/2 {
		errs = append(errs, &store.ValidationError{Field: "workers", Reason: fmt.Sprintf("%d is outside 1..%d", c.Workers, store.MaxClaim/2)})
	}
	if c.Rate < 1 {
		errs = append(errs, &store.ValidationError{Field: "rate", Reason: fmt.Sprintf("%d must be positive", c.Rate)})
	}
	if c.Duration <= 0 {
		errs = append(errs, &store.ValidationError{Field: "duration", Reason: fmt.Sprintf("%v must be positive", c.Duration)})
	}
	return errors.Join(errs...)
}

// warmup resolves a Warmup setting: zero is the default 1s, negative none.
func warmup(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return time.Second
	case d < 0:
		return 0
	}
	return d
}

// BurnDown enqueues cfg.Jobs no-op jobs, then starts a worker and reports
// jobs/s from worker start to the last durable completion.
func BurnDown(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	cs := &countingStore{Store: cfg.Store, target: int64(cfg.Jobs), done: make(chan struct{})}
	client, err := spool.NewClient(spool.Config{Store: cs, Metrics: cfg.Metrics, TracerProvider: cfg.TracerProvider})
	if err != nil {
		return nil, err
	}
	enqStart := time.Now()
	const batch = 1000
	items := make([]spool.Item, 0, batch)
	for n := 0; n < cfg.Jobs; {
		items = items[:0]
		for ; len(items) < batch && n < cfg.Jobs; n++ {
			items = append(items, spool.RawItem("noop", nil, &spool.EnqueueOptions{Queue: cfg.Queue}))
		}
		if _, err := client.EnqueueMany(ctx, items...); err != nil {
			return nil, fmt.Errorf("bench: enqueue: %w", err)
		}
	}
	enqSeconds := time.Since(enqStart).Seconds()

	w, err := newWorker(cs, cfg, func(context.Context, *spool.Job) ([]byte, error) { return nil, nil })
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	err = cs.wait(ctx, cfg.Progress)
	elapsed := cs.finishedAt().Sub(start)
	stopErr := stop(ctx, w)
	if err != nil {
		return nil, err
	}
	return &Result{
		Mode:           "burn-down",
		Jobs:           cfg.Jobs,
		Workers:        cfg.Workers,
		Seconds:        elapsed.Seconds(),
		JobsPerSec:     float64(cfg.Jobs) / elapsed.Seconds(),
		EnqueueSeconds: enqSeconds,
		SettleBatch:    w.Stats().Settle.AverageBatch(),
	}, stopErr
}

// Continuous enqueues at cfg.Rate jobs/s for cfg.Warmup, then for
// cfg.Duration, while a worker runs them, and reports for the jobs of
// Duration the throughput and the enqueue→start latency: from just before
// Enqueue is called to the moment the handler starts.
func Continuous(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	if total < 1 {
		return nil, &store.ValidationError{Field: "rate", Reason: "rate × duration is less than one job"}
	}
	warm := int(float64(cfg.Rate) * cfg.Warmup.Seconds())
	cs := &countingStore{Store: cfg.Store, target: int64(warm + total), done: make(chan struct{})}
	client, err := spool.NewClient(spool.Config{Store: cs, Metrics: cfg.Metrics, TracerProvider: cfg.TracerProvider})
	if err != nil {
		return nil, err
	}
	lat := newLatencies(warm, total)
	w, err := newWorker(cs, cfg, func(_ context.Context, job *spool.Job) ([]byte, error) {
		lat.record(job.Payload)
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	err = pace(ctx, cfg.Rate, warm+total, func(ctx context.Context, n int) error {
		_, err := client.EnqueueMany(ctx, spool.RawItem("noop", lat.stamp(n), &spool.EnqueueOptions{Queue: cfg.Queue}))
		return err
	})
	if err != nil {
		err = fmt.Errorf("bench: enqueue: %w", err)
	} else {
		err = cs.wait(ctx, cfg.Progress)
	}
	elapsed := cs.finishedAt().Sub(lat.start)
	stopErr := stop(ctx, w)
	if err != nil {
		return nil, err
	}
	return &Result{
		Mode:        "continuous",
		Jobs:        total,
		Workers:     cfg.Workers,
		Rate:        cfg.Rate,
		Seconds:     elapsed.Seconds(),
		JobsPerSec:  float64(total) / elapsed.Seconds(),
		LatencyMS:   lat.summary(),
		SettleBatch: w.Stats().Settle.AverageBatch(),
	}, stopErr
}

// latencies records the latencies of the measured jobs of a run: those
// numbered from warm on, total of them (or, for events, deliveries). Each
// job's (or event's) payload is its number and the time its send began
// (16 bytes, see stamp).
type latencies struct {
	warm  int
	base  time.Time // stamps count from here
	start time.Time // when the first measured item was sent; set by stamp, read once sending is over

	mu  sync.Mutex // guards all
	all []time.Duration
}

func newLatencies(warm, total int) *latencies {
	return &latencies{warm: warm, base: time.Now(), all: make([]time.Duration, 0, total)}
}

// stamp returns the payload of item n, sent now.
func (l *latencies) stamp(n int) []byte {
	if n == l.warm {
		l.start = time.Now()
	}
	p := make([]byte, 16)
	binary.LittleEndian.PutUint64(p, uint64(n))
	binary.LittleEndian.PutUint64(p[8:], uint64(time.Since(l.base)))
	return p
}

// record records the latency, until now, of the item whose payload is p,
// unless it is a warm-up item (or p is not a stamp).
func (l *latencies) record(p []byte) {
	at := time.Since(l.base)
	if len(p) != 16 || int(binary.LittleEndian.Uint64(p)) < l.warm {
		return
	}
	d := at - time.Duration(binary.LittleEndian.Uint64(p[8:]))
	l.mu.Lock()
	l.all = append(l.all, d)
	l.mu.Unlock()
}

func (l *latencies) summary() *Latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.all)
	return &Latency{P50: pct(l.all, 0.50), P95: pct(l.all, 0.95), P99: pct(l.all, 0.99), Max: pct(l.all, 1)}
}

// produce enqueues total jobs, one per Enqueue call as an application
// would, paced to cfg.Rate; each job carries the time its enqueue began, as
// stamp tells it.
func produce(ctx context.Context, client *spool.Client, cfg Config, total int, stamp func() uint64) error {
	err := pace(ctx, cfg.Rate, total, func(ctx context.Context, _ int) error {
		payload := make([]byte, 8)
		binary.LittleEndian.PutUint64(payload, stamp())
		_, err := client.EnqueueMany(ctx, spool.RawItem("noop", payload, &spool.EnqueueOptions{Queue: cfg.Queue}))
		return err
	})
	if err != nil {
		return fmt.Errorf("bench: enqueue: %w", err)
	}
	return nil
}

// pace calls send total times, paced to rate calls/s, with the call's
// number (0, 1, ...; calls run in that order, and several at once). Several
// producers run at once so a slow call does not delay the ones due after
// it. It stops at the first error and returns it.
func pace(ctx context.Context, rate, total int, send func(ctx context.Context, n int) error) error {
	const producers = 16
	due := make(chan int, producers)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range producers {
		wg.Go(func() {
			for n := range due {
				if err := send(ctx, n); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
loop:
	for sent < total {
		// Send every call whose slot has come; the ticker only paces checks.
		for want := min(int(time.Since(start)/interval)+1, total); sent < want; sent++ {
			select {
			case due <- sent:
			case <-ctx.Done():
				break loop
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			break loop
		}
	}
	close(due)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func newWorker(st store.Store, cfg Config, fn func(context.Context, *spool.Job) ([]byte, error)) (*spool.Worker, error) {
	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:          st,
		Queues:         map[string]spool.QueueConfig{cfg.Queue: {Concurrency: cfg.Workers, Prefetch: cfg.Workers}},
		Metrics:        cfg.Metrics,
		TracerProvider: cfg.TracerProvider,
	})
	if err != nil {
		return nil, err
	}
	spool.HandleRaw(w, "noop", fn, nil)
	return w, nil
}

// stop stops w within 30s. ctx's values are kept but not its cancellation:
// the worker must be stopped even when the run ended because ctx did.
func stop(ctx context.Context, w *spool.Worker) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return w.Stop(ctx)
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(p*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}

// countingStore passes everything through and counts the completions the
// store applied; done closes when target completions have been counted.
type countingStore struct {
	store.Store
	target    int64
	completed atomic.Int64
	done      chan struct{}
	once      sync.Once
	mu        sync.Mutex // guards last
	last      time.Time
}

func (c *countingStore) Settle(ctx context.Context, vs []store.Verdict) ([]error, error) {
	errs, err := c.Store.Settle(ctx, vs)
	if err != nil {
		return errs, err
	}
	n := int64(0)
	for i, e := range errs {
		if e == nil && vs[i].Outcome == store.Complete {
			n++
		}
	}
	if n > 0 {
		now := time.Now()
		c.mu.Lock()
		c.last = now
		c.mu.Unlock()
		if c.completed.Add(n) >= c.target {
			c.once.Do(func() { close(c.done) })
		}
	}
	return errs, nil
}

func (c *countingStore) finishedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func (c *countingStore) wait(ctx context.Context, progress func(done, total int)) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			if progress != nil {
				progress(int(c.target), int(c.target))
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if progress != nil {
				progress(int(c.completed.Load()), int(c.target))
			}
		}
	}
}
