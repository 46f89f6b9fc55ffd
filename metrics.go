package spool

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolrun/spool/loader"
	"github.com/spoolrun/spool/store"
)

// MetricsConfig configures Metrics. Zero fields take the defaults given.
type MetricsConfig struct {
	// Tenant adds a tenant label to the per-job metrics (enqueued,
	// settled, handler duration, pickup latency). Off by default: a
	// platform with many tenants would multiply every series by them.
	Tenant bool

	// GaugeInterval is how often the cluster-wide gauges (queue depth by
	// state, the age of the oldest available job, subscription lag) are
	// computed, by the one node that holds their lease in the store.
	// Default 15s; at least 1s.
	GaugeInterval time.Duration

	// Holder names this Metrics in the gauges' lease, as the holder other
	// nodes see; it must differ between the Metrics sharing a store.
	// Default host-pid-random.
	Holder string

	// DurationBuckets are the upper bounds, in seconds, of the handler
	// duration histogram. Default DefaultDurationBuckets (5ms to 1h).
	DurationBuckets []float64
	// LatencyBuckets are those of the pickup latency and schedule
	// lateness histograms. Default DefaultLatencyBuckets (1ms to 1h).
	LatencyBuckets []float64
}

// Default histogram buckets, in seconds.
var (
	// DefaultDurationBuckets reach an hour: jobs run long, and a job past
	// the last bucket is only counted in +Inf.
	DefaultDurationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	// DefaultLatencyBuckets go from a millisecond (a worker waiting for
	// work) to an hour (a backlog).
	DefaultLatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	// batchBuckets are the store batch sizes: 1 to store.MaxBatch.
	batchBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}
	// commitBuckets are store call durations: 100µs to 10s.
	commitBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}
)

// Metrics are Spool's Prometheus metrics (docs/operations.md lists them).
// It is a prometheus.Collector: register it in a registry, and give it to
// the Workers (WorkerConfig.Metrics), Clients (Config.Metrics) and loaders
// (WatchLoader) of the process. One Metrics serves any number of them;
// their series add up. Without a Metrics, a Worker or Client counts
// nothing and pays nothing.
//
// Per-process counters and histograms come from the events the runtime
// already has (a claim, a verdict, a refused renewal, a reaper pass, a
// schedule firing), through label series resolved once per (queue, kind)
// and kept. The cluster-wide gauges (queue depth, oldest available job,
// subscription lag) are computed by one node at a time: the Worker that
// holds the store's lease "spool.metrics.gauges" (Capabilities.Leases),
// every GaugeInterval; the other nodes export none of them, so a query
// needs no deduplication (use max or sum by queue all the same).
type Metrics struct {
	cfg    MetricsConfig
	tenant bool

	enqueued     *prometheus.CounterVec   // queue, kind[, tenant]
	settled      *prometheus.CounterVec   // queue, kind, outcome[, tenant]
	duration     *prometheus.HistogramVec // queue, kind[, tenant]
	pickup       *prometheus.HistogramVec // queue, kind[, tenant]
	redelivered  *prometheus.CounterVec   // queue
	locksLost    *prometheus.CounterVec   // queue
	staleSettles *prometheus.CounterVec   // queue
	reaped       *prometheus.CounterVec   // outcome
	batchSize    *prometheus.HistogramVec // op
	commitTime   *prometheus.HistogramVec // op
	fireLateness prometheus.Histogram
	fired        *prometheus.CounterVec // result
	depth        *prometheus.GaugeVec   // queue, state
	oldest       *prometheus.GaugeVec   // queue
	subBehind    *prometheus.GaugeVec   // topic, subscription
	subAge       *prometheus.GaugeVec   // topic, subscription
	gaugeHolder  prometheus.Gauge

	slotsDesc, loaderDesc, loadsDesc *prometheus.Desc

	collectors []prometheus.Collector

	series sync.Map // seriesKey -> *jobSeries

	mu      sync.Mutex // guards slots and loaders
	slots   map[*workerRun]struct{}
	loaders map[string]func() loader.Stats
}

// Settled outcomes: the value of the outcome label of
// spool_jobs_settled_total.
const (
	outcomeCompleted = iota
	outcomeRetried
	outcomeDeadLettered
	outcomeCancelled
	outcomeSnoozed
	outcomeReleased
	numOutcomes
)

var outcomeLabels = [numOutcomes]string{"completed", "retried", "dead_lettered", "cancelled", "snoozed", "released"}

// Ops of the store batch metrics.
const (
	opEnqueue = "enqueue"
	opClaim   = "claim"
	opSettle  = "settle"
)

// NewMetrics returns Metrics with cfg's defaults filled in, or every
// mistake in cfg at once.
func NewMetrics(cfg MetricsConfig) (*Metrics, error) {
	cfg.GaugeInterval = cmp.Or(cfg.GaugeInterval, 15*time.Second)
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = cmp.Or(host, "spool") + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(uint64(rand.Uint32()), 36)
	}
	if cfg.DurationBuckets == nil {
		cfg.DurationBuckets = DefaultDurationBuckets
	}
	if cfg.LatencyBuckets == nil {
		cfg.LatencyBuckets = DefaultLatencyBuckets
	}
	var errs []error
	if cfg.GaugeInterval < time.Second || 3*cfg.GaugeInterval > store.MaxLeaseTTL {
		errs = append(errs, &store.ValidationError{Field: "MetricsConfig.GaugeInterval",
			Reason: fmt.Sprintf("%v is outside 1s..%v", cfg.GaugeInterval, store.MaxLeaseTTL/3)})
	}
	if err := store.CheckLease(gaugeLease, cfg.Holder, 0); err != nil {
		errs = append(errs, &store.ValidationError{Field: "MetricsConfig.Holder", Reason: err.Error()})
	}
	for _, b := range []struct {
		field string
		v     []float64
	}{{"MetricsConfig.DurationBuckets", cfg.DurationBuckets}, {"MetricsConfig.LatencyBuckets", cfg.LatencyBuckets}} {
		if !increasing(b.v) {
			errs = append(errs, &store.ValidationError{Field: b.field, Reason: "must be increasing and not empty"})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m := &Metrics{cfg: cfg, tenant: cfg.Tenant, slots: map[*workerRun]struct{}{}, loaders: map[string]func() loader.Stats{}}
	jobLabels := []string{"queue", "kind"}
	if cfg.Tenant {
		jobLabels = append(jobLabels, "tenant")
	}
	m.enqueued = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_jobs_enqueued_total",
		Help: "Jobs enqueued by this process (duplicates of a held unique key not counted)."}, jobLabels)
	m.settled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_jobs_settled_total",
		Help: "Verdicts this process's workers wrote, by outcome: completed, retried, dead_lettered, cancelled, snoozed, released."},
		append(slices.Clone(jobLabels[:2]), append([]string{"outcome"}, jobLabels[2:]...)...))
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spool_job_duration_seconds",
		Help: "Time handlers ran, from start to return.", Buckets: cfg.DurationBuckets}, jobLabels)
	m.pickup = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spool_job_pickup_latency_seconds",
		Help: "Time from a job being due (run_at) to its claim, by the store's clock.", Buckets: cfg.LatencyBuckets}, jobLabels)
	m.redelivered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_job_redeliveries_total",
		Help: "Claims of jobs with more deliveries than failed attempts explain: an earlier delivery crashed or lost its lock (or was snoozed)."}, []string{"queue"})
	m.locksLost = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_locks_lost_total",
		Help: "Held jobs whose lock renewal the store refused: they may run elsewhere, and their handlers were cancelled."}, []string{"queue"})
	m.staleSettles = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_stale_settles_total",
		Help: "Verdicts the store refused because their lock token was stale (the job was reaped, cancelled or claimed again)."}, []string{"queue"})
	m.reaped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_locks_expired_total",
		Help: "Running jobs whose lock expired, found by this process's reaper: returned to available, or dead-lettered at max deliveries."}, []string{"outcome"})
	m.batchSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spool_store_commit_batch_size",
		Help: "Jobs carried by one store write of this process (an enqueue, a claim, a batch of verdicts).", Buckets: batchBuckets}, []string{"op"})
	m.commitTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spool_store_commit_duration_seconds",
		Help: "Time one store write took until committed (durable for enqueues and settles).", Buckets: commitBuckets}, []string{"op"})
	m.fireLateness = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "spool_schedule_fire_lateness_seconds",
		Help: "Time from a schedule's slot to its run being enqueued, by the store's clock.", Buckets: cfg.LatencyBuckets})
	m.fired = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_schedule_slots_total",
		Help: "Schedule slots this process fired, by result: enqueued, skipped (a run was live), dropped (misfire policy)."}, []string{"result"})
	m.depth = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spool_queue_jobs",
		Help: "Jobs in a queue by state, cluster-wide; exported by the gauges' lease holder only."}, []string{"queue", "state"})
	m.oldest = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spool_queue_oldest_available_age_seconds",
		Help: "How long the oldest available job of a queue has waited (0: none), cluster-wide; lease holder only."}, []string{"queue"})
	m.subBehind = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spool_subscription_lag_events",
		Help: "Events of a subscription not yet handled (unrouted plus pending); lease holder only."}, []string{"topic", "subscription"})
	m.subAge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spool_subscription_lag_seconds",
		Help: "How long a subscription's oldest unhandled event has waited; lease holder only."}, []string{"topic", "subscription"})
	m.gaugeHolder = prometheus.NewGauge(prometheus.GaugeOpts{Name: "spool_gauges_holder",
		Help: "1 while this process holds the lease to compute the cluster-wide gauges, else 0."})
	m.slotsDesc = prometheus.NewDesc("spool_worker_slots", "Executor slots of this process's workers: busy (running a handler) and total.", []string{"queue", "state"}, nil)
	m.loaderDesc = prometheus.NewDesc("spool_loader_requests_total", "Loader lookups by result: hit (from the cache), miss (waited for a load), coalesced (a miss that joined a load in flight).", []string{"loader", "result"}, nil)
	m.loadsDesc = prometheus.NewDesc("spool_loader_loads_total", "Calls of a loader's load function, refreshes included.", []string{"loader"}, nil)
	m.collectors = []prometheus.Collector{m.enqueued, m.settled, m.duration, m.pickup, m.redelivered, m.locksLost, m.staleSettles,
		m.reaped, m.batchSize, m.commitTime, m.fireLateness, m.fired, m.depth, m.oldest, m.subBehind, m.subAge, m.gaugeHolder}
	return m, nil
}

// increasing reports whether v is not empty and strictly increasing.
func increasing(v []float64) bool {
	for i := 1; i < len(v); i++ {
		if v[i] <= v[i-1] {
			return false
		}
	}
	return len(v) > 0
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors {
		c.Describe(ch)
	}
	ch <- m.slotsDesc
	ch <- m.loaderDesc
	ch <- m.loadsDesc
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors {
		c.Collect(ch)
	}
	m.mu.Lock()
	runs := make([]*workerRun, 0, len(m.slots))
	for r := range m.slots {
		runs = append(runs, r)
	}
	loaders := make(map[string]func() loader.Stats, len(m.loaders))
	for name, f := range m.loaders {
		loaders[name] = f
	}
	m.mu.Unlock()
	busy, total := map[string]int64{}, map[string]int64{}
	for _, r := range runs {
		for _, q := range r.queues {
			busy[q.name] += q.busy.Load()
			total[q.name] += int64(q.conc)
		}
	}
	for q, n := range total {
		ch <- prometheus.MustNewConstMetric(m.slotsDesc, prometheus.GaugeValue, float64(busy[q]), q, "busy")
		ch <- prometheus.MustNewConstMetric(m.slotsDesc, prometheus.GaugeValue, float64(n), q, "total")
	}
	for name, f := range loaders {
		s := f()
		ch <- prometheus.MustNewConstMetric(m.loaderDesc, prometheus.CounterValue, float64(s.Hits), name, "hit")
		ch <- prometheus.MustNewConstMetric(m.loaderDesc, prometheus.CounterValue, float64(s.Misses), name, "miss")
		ch <- prometheus.MustNewConstMetric(m.loaderDesc, prometheus.CounterValue, float64(s.Coalesced), name, "coalesced")
		ch <- prometheus.MustNewConstMetric(m.loadsDesc, prometheus.CounterValue, float64(s.Loads), name)
	}
}

var _ prometheus.Collector = (*Metrics)(nil)

// LoaderStats is what WatchLoader reads: *loader.Loader and *spool.Loader
// have it.
type LoaderStats interface{ Stats() loader.Stats }

// WatchLoader exports l's counters under the label loader=name: hits,
// misses and coalesced loads (spool_loader_requests_total) and load calls
// (spool_loader_loads_total), read at each scrape. A second loader under
// the same name replaces the first; Unwatch stops exporting it.
func (m *Metrics) WatchLoader(name string, l LoaderStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loaders[name] = l.Stats
}

// UnwatchLoader stops exporting the loader named name.
func (m *Metrics) UnwatchLoader(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.loaders, name)
}

// seriesKey names the per-job series of one (queue, kind, tenant).
type seriesKey struct{ queue, kind, tenant string }

// jobSeries are the label children of one (queue, kind, tenant), resolved
// once, so counting a job costs no label lookup or allocation.
type jobSeries struct {
	queue, kind, tenant          string
	enqueued                     prometheus.Counter
	duration, pickup             prometheus.Observer
	redelivered, lost, staleSets prometheus.Counter
	outcomes                     [numOutcomes]outcomeSeries
}

// outcomeSeries is the settled counter of one outcome of a jobSeries.
type outcomeSeries struct {
	settled prometheus.Counter
}

// seriesFor returns the series of a job of queue, kind and tenant.
func (m *Metrics) seriesFor(queue, kind, tenant string) *jobSeries {
	if !m.tenant {
		tenant = ""
	}
	k := seriesKey{queue, kind, tenant}
	if s, ok := m.series.Load(k); ok {
		return s.(*jobSeries) //nolint:errcheck // only *jobSeries are stored
	}
	labels := []string{queue, kind}
	if m.tenant {
		labels = append(labels, tenant)
	}
	s := &jobSeries{
		queue:       queue,
		kind:        kind,
		tenant:      tenant,
		enqueued:    m.enqueued.WithLabelValues(labels...),
		duration:    m.duration.WithLabelValues(labels...),
		pickup:      m.pickup.WithLabelValues(labels...),
		redelivered: m.redelivered.WithLabelValues(queue),
		lost:        m.locksLost.WithLabelValues(queue),
		staleSets:   m.staleSettles.WithLabelValues(queue),
	}
	for i := range s.outcomes {
		ol := []string{queue, kind, outcomeLabels[i]}
		if m.tenant {
			ol = append(ol, tenant)
		}
		s.outcomes[i] = outcomeSeries{settled: m.settled.WithLabelValues(ol...)}
	}
	actual, _ := m.series.LoadOrStore(k, s)
	return actual.(*jobSeries) //nolint:errcheck // only *jobSeries are stored
}

// claimed records a claimed job, locked for lock, and returns its series;
// last is the series of the previous job the caller claimed (or nil),
// which is reused when it matches, as it mostly does, without a lookup.
// Pickup latency is by the store's clock: the claim's time (its lock's end
// less lock) less the job's run_at.
func (m *Metrics) claimed(j *Job, lock time.Duration, last *jobSeries) *jobSeries {
	s := last
	if s == nil || s.kind != j.Kind || s.queue != j.Queue || (m.tenant && s.tenant != j.Tenant) {
		s = m.seriesFor(j.Queue, j.Kind, j.Tenant)
	}
	s.pickup.Observe(max(j.LockedUntil.Add(-lock).Sub(j.RunAt), 0).Seconds())
	// Deliveries count claims; failed attempts explain all but this one,
	// unless an earlier delivery ended without a verdict that spent an
	// attempt (a crash, a lost lock) or was snoozed.
	if j.Deliveries > j.Attempts+1 {
		s.redelivered.Inc()
	}
	return s
}

// outcomeOf is the outcome label index of verdict v for job j.
func outcomeOf(v store.Verdict, j *Job) int {
	switch v.Outcome {
	case store.Complete:
		return outcomeCompleted
	case store.Fail:
		if j.Attempts+1 >= j.MaxAttempts {
			return outcomeDeadLettered
		}
		return outcomeRetried
	case store.DeadLetter:
		return outcomeDeadLettered
	case store.Cancel:
		return outcomeCancelled
	case store.Snooze:
		return outcomeSnoozed
	default:
		return outcomeReleased
	}
}

// ObserveEnqueue counts the jobs of one store.Store.Enqueue call that were
// inserted (not duplicates), and times the call (took; zero: not timed).
// A Client with Config.Metrics calls it; so does spool serve, which
// enqueues straight into its store.
func (m *Metrics) ObserveEnqueue(params []store.EnqueueParams, results []store.EnqueueResult, took time.Duration) {
	if took > 0 {
		m.observeBatch(opEnqueue, len(params), took)
	}
	for i := range min(len(params), len(results)) {
		if !results[i].Duplicate {
			p := &params[i]
			m.seriesFor(cmp.Or(p.Queue, store.DefaultQueue), p.Kind, p.Tenant).enqueued.Inc()
		}
	}
}

// observeBatch records one store write of n jobs that took d.
func (m *Metrics) observeBatch(op string, n int, d time.Duration) {
	m.batchSize.WithLabelValues(op).Observe(float64(n))
	m.commitTime.WithLabelValues(op).Observe(d.Seconds())
}

// observeFire records one FireDue answer.
func (m *Metrics) observeFire(r *store.FireResult) {
	enq := 0
	for _, run := range r.Runs {
		if run.Duplicate {
			continue
		}
		enq++
		m.fireLateness.Observe(max(r.Now.Sub(run.Slot), 0).Seconds())
	}
	m.fired.WithLabelValues("enqueued").Add(float64(enq))
	m.fired.WithLabelValues("skipped").Add(float64(r.Skipped))
	m.fired.WithLabelValues("dropped").Add(float64(r.Dropped))
}

// observeReap records one reaper pass.
func (m *Metrics) observeReap(r store.ReapResult) {
	if r.Returned > 0 {
		m.reaped.WithLabelValues("returned").Add(float64(r.Returned))
	}
	if r.DeadLettered > 0 {
		m.reaped.WithLabelValues("dead_lettered").Add(float64(r.DeadLettered))
	}
}

// addRun exports a worker run's slots until the returned func is called.
func (m *Metrics) addRun(r *workerRun) func() {
	m.mu.Lock()
	m.slots[r] = struct{}{}
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		delete(m.slots, r)
		m.mu.Unlock()
	}
}
