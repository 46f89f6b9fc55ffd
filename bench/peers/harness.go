package peers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes a run. Zero fields take the documented defaults.
type Config struct {
	// Jobs is how many jobs the enqueue workload adds and the burn-down
	// then works. Default 100,000.
	Jobs int `json:"jobs"`
	// Batch is how many jobs one enqueue call adds in the enqueue workload.
	// Default 100.
	Batch int `json:"batch"`
	// Workers is every system's concurrency: jobs running at once.
	// Default 100.
	Workers int `json:"workers"`
	// Rate is the continuous workload's enqueue rate, jobs/s. Default 1,000.
	Rate int `json:"rate"`
	// Duration is how long the continuous workload enqueues. Default 30s.
	Duration time.Duration `json:"duration_ns"`
	// Producers is how many goroutines make the continuous workload's
	// enqueue calls, one job per call, so a slow call does not hold up the
	// jobs due after it. Default 16.
	Producers int `json:"producers"`
	// Timeout bounds the enqueue phase and the work phase of the burn-down,
	// each. A system that has not finished by then gets a row marked
	// incomplete, with the rate it reached. Default 90s.
	Timeout time.Duration `json:"timeout_ns"`
	// Drain bounds how long the continuous workload waits for the last jobs
	// after its last enqueue. Default 30s.
	Drain time.Duration `json:"drain_ns"`
	// Events is how many events the event burn-down publishes (in batches
	// of Batch) and then delivers to every subscription. Default 100,000.
	// The event workloads take Workers (per subscription), Rate, Duration,
	// Producers, Timeout and Drain from the fields above.
	Events int `json:"events"`
	// Subscriptions is how many durable subscriptions the event workloads
	// open on their topic. Default 3.
	Subscriptions int `json:"subscriptions"`
	// Log receives progress lines and the reasons rows failed or were
	// skipped. Default: discard.
	Log io.Writer `json:"-"`
}

func (c *Config) defaults() error {
	c.Jobs = cmp.Or(c.Jobs, 100_000)
	c.Batch = cmp.Or(c.Batch, 100)
	c.Workers = cmp.Or(c.Workers, 100)
	c.Rate = cmp.Or(c.Rate, 1_000)
	c.Duration = cmp.Or(c.Duration, 30*time.Second)
	c.Producers = cmp.Or(c.Producers, 16)
	c.Timeout = cmp.Or(c.Timeout, 90*time.Second)
	c.Drain = cmp.Or(c.Drain, 30*time.Second)
	c.Events = cmp.Or(c.Events, 100_000)
	c.Subscriptions = cmp.Or(c.Subscriptions, 3)
	if c.Log == nil {
		c.Log = io.Discard
	}
	var errs []error
	for _, v := range []struct {
		name string
		n    int
	}{{"jobs", c.Jobs}, {"batch", c.Batch}, {"workers", c.Workers}, {"rate", c.Rate}, {"producers", c.Producers},
		{"events", c.Events}, {"subscriptions", c.Subscriptions}} {
		if v.n < 1 {
			errs = append(errs, fmt.Errorf("%s: %d must be positive", v.name, v.n))
		}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"duration", c.Duration}, {"timeout", c.Timeout}, {"drain", c.Drain}} {
		if v.d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %v must be positive", v.name, v.d))
		}
	}
	if c.Rate > 0 && c.Duration > 0 && float64(c.Rate)*c.Duration.Seconds() < 1 {
		errs = append(errs, errors.New("rate × duration is less than one job"))
	}
	return errors.Join(errs...)
}

// Row is one system's results.
type Row struct {
	System string `json:"system"`
	Info
	// Skipped says why the system was not run; the measures are then nil.
	Skipped string `json:"skipped,omitempty"`
	// Load is the machine's load average (1, 5, 15 min) when the system's
	// first workload started: other work on the machine shows here.
	Load       string   `json:"load,omitempty"`
	Enqueue    *Measure `json:"enqueue,omitempty"`
	BurnDown   *Measure `json:"burn_down,omitempty"`
	Continuous *Measure `json:"continuous,omitempty"`
}

// Measure is one workload's result on one system.
type Measure struct {
	// Jobs is how many jobs the workload asked for (continuous: rate ×
	// duration).
	Jobs int `json:"jobs"`
	// Done is how many were enqueued (enqueue) or completed (the others).
	Done       int     `json:"done"`
	Seconds    float64 `json:"seconds"`
	JobsPerSec float64 `json:"jobs_per_sec"`
	// LatencyMS is the continuous workload's enqueue→start latency.
	LatencyMS *Latency `json:"latency_ms,omitempty"`
	// Enqueued and EnqueueRate are the jobs the continuous workload managed
	// to enqueue and the rate it reached.
	Enqueued    int     `json:"enqueued,omitempty"`
	EnqueueRate float64 `json:"enqueue_rate,omitempty"`
	// Note is a caveat that does not void the number (such as a continuous
	// run that could not enqueue at the asked rate).
	Note string `json:"note,omitempty"`
	// Failure says why the workload did not complete: the number then
	// covers only the jobs that did.
	Failure string `json:"failure,omitempty"`
}

// OK reports whether the workload completed as asked.
func (m *Measure) OK() bool { return m != nil && m.Failure == "" }

// Latency summarises enqueue→start latencies in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Run runs every workload on each system in turn. A system whose server
// does not answer gets a row that says so; a workload that fails gets a
// measure with Failure set. Run returns an error only for a bad cfg.
func Run(ctx context.Context, cfg Config, systems []System) ([]Row, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	rows := make([]Row, 0, len(systems))
	for _, sys := range systems {
		rows = append(rows, runSystem(ctx, cfg, sys))
	}
	return rows, nil
}

func runSystem(ctx context.Context, cfg Config, sys System) Row {
	row := Row{System: sys.Name()}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := sys.Probe(pctx)
	cancel()
	row.Info = sys.Info()
	if err != nil {
		row.Skipped = err.Error()
		fmt.Fprintf(cfg.Log, "SKIPPED %s: %v\n", row.System, err)
		return row
	}
	row.Load = LoadAverage()
	fmt.Fprintf(cfg.Log, "== %s %s (%s); load average %s\n", row.System, row.Version, row.Durability, row.Load)
	row.Enqueue, row.BurnDown = burnDown(ctx, cfg, sys)
	row.Continuous = continuous(ctx, cfg, sys)
	row.Info = sys.Info() // the server version is known once connected
	for _, m := range []struct {
		name string
		m    *Measure
	}{{"enqueue", row.Enqueue}, {"burn-down", row.BurnDown}, {"continuous", row.Continuous}} {
		if m.m.Failure != "" {
			fmt.Fprintf(cfg.Log, "FAILED %s %s: %s\n", row.System, m.name, m.m.Failure)
		}
	}
	return row
}

// burnDown enqueues cfg.Jobs jobs in batches of cfg.Batch (the enqueue
// workload), then works them (the burn-down).
func burnDown(ctx context.Context, cfg Config, sys System) (enq, bd *Measure) {
	enq = &Measure{Jobs: cfg.Jobs}
	bd = &Measure{Jobs: cfg.Jobs}
	fail := func(m *Measure, format string, args ...any) {
		m.Failure = fmt.Sprintf(format, args...)
	}
	if err := sys.Open(ctx, cfg.Workers); err != nil {
		fail(enq, "open: %v", err)
		fail(bd, "open: %v", err)
		return enq, bd
	}
	defer closeSystem(ctx, cfg, sys)

	base := time.Now()
	ectx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	start := time.Now()
	n := 0
	var enqErr error
	for n < cfg.Jobs && enqErr == nil {
		batch := make([][]byte, min(cfg.Batch, cfg.Jobs-n))
		for i := range batch {
			batch[i] = encodePayload(int64(n+i), int64(time.Since(base)))
		}
		if enqErr = sys.Enqueue(ectx, batch); enqErr == nil {
			n += len(batch)
		}
	}
	cancel()
	enq.Done = n
	enq.Seconds = time.Since(start).Seconds()
	enq.JobsPerSec = float64(n) / enq.Seconds
	if enqErr != nil {
		fail(enq, "enqueued %d of %d: %v", n, cfg.Jobs, enqErr)
		fail(bd, "enqueue failed")
		return enq, bd
	}
	fmt.Fprintf(cfg.Log, "   enqueue: %d jobs in %.2fs, %.0f jobs/s\n", n, enq.Seconds, enq.JobsPerSec)

	tr := newTracker(base, 0)
	tr.setTarget(int64(cfg.Jobs))
	start = time.Now()
	if err := sys.Start(ctx, tr.work()); err != nil {
		fail(bd, "start: %v", err)
		return enq, bd
	}
	waitErr := tr.wait(ctx, cfg.Timeout, func(done int64) {
		fmt.Fprintf(cfg.Log, "   burn-down: %d/%d\n", done, cfg.Jobs)
	})
	finish(ctx, cfg, sys, tr, bd, start, waitErr)
	fmt.Fprintf(cfg.Log, "   burn-down: %d jobs in %.2fs, %.0f jobs/s\n", bd.Done, bd.Seconds, bd.JobsPerSec)
	return enq, bd
}

// continuous enqueues cfg.Rate jobs/s for cfg.Duration, one job per enqueue
// call, while cfg.Workers workers run them.
func continuous(ctx context.Context, cfg Config, sys System) *Measure {
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	m := &Measure{Jobs: total}
	if err := sys.Open(ctx, cfg.Workers); err != nil {
		m.Failure = fmt.Sprintf("open: %v", err)
		return m
	}
	defer closeSystem(ctx, cfg, sys)

	base := time.Now()
	tr := newTracker(base, total)
	if err := sys.Start(ctx, tr.work()); err != nil {
		m.Failure = fmt.Sprintf("start: %v", err)
		return m
	}
	start := time.Now()
	sent, produceFor, enqErr := produce(ctx, cfg, sys.Enqueue, base, total)
	tr.setTarget(int64(sent))
	m.Enqueued = sent
	m.EnqueueRate = float64(sent) / produceFor.Seconds()
	var waitErr error
	if enqErr == nil {
		waitErr = tr.wait(ctx, cfg.Drain, func(done int64) {
			fmt.Fprintf(cfg.Log, "   continuous: draining, %d/%d\n", done, sent)
		})
	}
	finish(ctx, cfg, sys, tr, m, start, waitErr)
	if enqErr != nil {
		m.Failure = fmt.Sprintf("enqueue: %v", enqErr)
	}
	if sent < total {
		m.Note = fmt.Sprintf("enqueued %s of %s jobs in %v: %s jobs/s of the %s asked", number(float64(sent), 0), number(float64(total), 0),
			cfg.Duration, number(m.EnqueueRate, 0), number(float64(cfg.Rate), 0))
	}
	m.LatencyMS = tr.latency()
	fmt.Fprintf(cfg.Log, "   continuous: %d jobs, %.0f jobs/s, enqueue→start p50 %.2f p95 %.2f p99 %.2f ms\n",
		m.Done, m.JobsPerSec, m.LatencyMS.P50, m.LatencyMS.P95, m.LatencyMS.P99)
	return m
}

// produce hands job numbers to cfg.Producers goroutines at cfg.Rate jobs/s
// until total are handed out or cfg.Duration has passed, whichever comes
// first; each goroutine enqueues its jobs one per call of enqueue (a
// System's Enqueue or an EventSystem's Publish). It returns how many were
// enqueued and how long that took.
func produce(parent context.Context, cfg Config, enqueue func(context.Context, [][]byte) error, base time.Time, total int) (sent int, took time.Duration, err error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	due := make(chan int64, cfg.Producers)
	var (
		wg       sync.WaitGroup
		ok       atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	start := time.Now()
	for range cfg.Producers {
		wg.Go(func() {
			for seq := range due {
				p := encodePayload(seq, int64(time.Since(base)))
				if err := enqueue(ctx, [][]byte{p}); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				ok.Add(1)
			}
		})
	}
	interval := time.Second / time.Duration(cfg.Rate)
	deadline := time.NewTimer(cfg.Duration)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	next := 0
loop:
	for next < total {
		// Hand out every job whose slot has come; the ticker only paces checks.
		for want := min(int(time.Since(start)/interval)+1, total); next < want; next++ {
			select {
			case due <- int64(next):
			case <-deadline.C:
				break loop
			case <-ctx.Done():
				break loop
			}
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	close(due)
	wg.Wait()
	took = time.Since(start)
	if firstErr == nil {
		firstErr = parent.Err()
	}
	return int(ok.Load()), took, firstErr
}

// finish stops the workers and fills m from the tracker, checking that every
// job was started and completed and that the system holds none.
func finish(ctx context.Context, cfg Config, sys System, tr *tracker, m *Measure, start time.Time, waitErr error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	stopErr := sys.Stop(sctx)
	done := tr.completed.Load()
	target := tr.target.Load()
	m.Done = int(done)
	last := tr.lastAt()
	if last.IsZero() {
		last = time.Now()
	}
	m.Seconds = last.Sub(start).Seconds()
	if m.Seconds > 0 {
		m.JobsPerSec = float64(done) / m.Seconds
	}
	var problems []string
	switch {
	case waitErr != nil && done < target:
		problems = append(problems, fmt.Sprintf("incomplete: %s of %s completed (%v)", number(float64(done), 0), number(float64(target), 0), waitErr))
	case waitErr != nil:
		problems = append(problems, waitErr.Error())
	}
	if started := tr.started.Load(); started < target && waitErr == nil {
		problems = append(problems, fmt.Sprintf("only %d of %d jobs started", started, target))
	}
	if done > target {
		// Completions are counted once each; more than asked means duplicates.
		m.Note = fmt.Sprintf("%d completions for %d jobs", done, target)
	}
	if stopErr != nil {
		problems = append(problems, fmt.Sprintf("stop: %v", stopErr))
	}
	if rem, err := sys.Remaining(sctx); err != nil {
		problems = append(problems, fmt.Sprintf("count remaining: %v", err))
	} else if rem != 0 && waitErr == nil {
		problems = append(problems, fmt.Sprintf("%d jobs left unfinished in the system", rem))
	}
	if len(problems) > 0 {
		m.Failure = joinProblems(problems)
	}
}

func joinProblems(p []string) string {
	s := p[0]
	for _, q := range p[1:] {
		s += "; " + q
	}
	return s
}

func closeSystem(ctx context.Context, cfg Config, sys System) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := sys.Close(cctx); err != nil {
		fmt.Fprintf(cfg.Log, "   %s: close: %v\n", sys.Name(), err)
	}
}

// tracker counts starts and durable completions and records latencies.
type tracker struct {
	base      time.Time
	target    atomic.Int64 // completions that end the wait
	started   atomic.Int64
	completed atomic.Int64
	done      chan struct{}
	once      sync.Once
	lat       []time.Duration // enqueue→start, by start order; nil: not measured

	mu   sync.Mutex // guards last
	last time.Time  // when the latest completion was reported
}

// newTracker returns a tracker whose target is not set yet; latencies are
// kept for the first capLat starts.
func newTracker(base time.Time, capLat int) *tracker {
	t := &tracker{base: base, done: make(chan struct{})}
	t.target.Store(1<<63 - 1)
	if capLat > 0 {
		t.lat = make([]time.Duration, capLat)
	}
	return t
}

func (t *tracker) work() Work {
	return Work{Started: t.onStart, Completed: t.onComplete}
}

func (t *tracker) onStart(payload []byte) {
	i := t.started.Add(1) - 1
	if t.lat == nil || i >= int64(len(t.lat)) {
		return
	}
	if enq, ok := payloadEnq(payload); ok {
		t.lat[i] = time.Since(t.base) - time.Duration(enq)
	} else {
		t.lat[i] = -1
	}
}

func (t *tracker) onComplete(n int) {
	if n <= 0 {
		return
	}
	now := time.Now()
	t.mu.Lock()
	if now.After(t.last) {
		t.last = now
	}
	t.mu.Unlock()
	if t.completed.Add(int64(n)) >= t.target.Load() {
		t.once.Do(func() { close(t.done) })
	}
}

func (t *tracker) setTarget(n int64) {
	t.target.Store(n)
	if t.completed.Load() >= n {
		t.once.Do(func() { close(t.done) })
	}
}

func (t *tracker) lastAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// wait waits until the target is reached, limit passes or ctx ends, calling
// progress every 5s.
func (t *tracker) wait(ctx context.Context, limit time.Duration, progress func(done int64)) error {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return nil
		case <-timer.C:
			return fmt.Errorf("timed out after %v", limit)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			progress(t.completed.Load())
		}
	}
}

// latency summarises the recorded latencies.
func (t *tracker) latency() *Latency { return summarize(t.latencies()) }

// latencies returns a copy of the recorded latencies, unsorted, without the
// starts whose payload had no enqueue time.
func (t *tracker) latencies() []time.Duration {
	n := min(int(t.started.Load()), len(t.lat))
	lat := slices.Clone(t.lat[:n])
	return slices.DeleteFunc(lat, func(d time.Duration) bool { return d < 0 })
}

// summarize sorts lat and returns its percentiles.
func summarize(lat []time.Duration) *Latency {
	slices.Sort(lat)
	return &Latency{P50: pct(lat, 0.50), P95: pct(lat, 0.95), P99: pct(lat, 0.99), Max: pct(lat, 1)}
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(p*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}
