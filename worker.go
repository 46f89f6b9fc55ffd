package spool

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolrun/spool/internal/activity"
	"github.com/spoolrun/spool/internal/maint"
	"github.com/spoolrun/spool/internal/scheduler"
	"github.com/spoolrun/spool/internal/settle"
	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/internal/tracing"
	"github.com/spoolrun/spool/store"
)

// WorkerConfig configures a Worker. Zero fields take the documented
// defaults; NewWorker checks every field once the defaults are filled in
// and reports every mistake at once.
type WorkerConfig struct {
	// Store is where jobs come from. Required.
	Store store.Store

	// Queues maps each queue to work to its settings.
	// Default (nil): {"default": {}}. A non-nil empty map works no queue:
	// a worker of subscriptions only (Subscribe), or of schedules and
	// maintenance.
	Queues map[string]QueueConfig

	// LockDuration is how long a claim holds a job before another worker may
	// take it. Jobs that run longer are renewed automatically, so this only
	// bounds how soon a crashed worker's jobs run elsewhere. Default 30s;
	// store.MinLockDuration..store.MaxLockDuration (100ms..24h).
	LockDuration time.Duration

	// JobTimeout bounds each execution through its context. Default 1m;
	// negative: no timeout. HandlerOptions.Timeout overrides it per kind.
	JobTimeout time.Duration

	// TimeoutGrace is how long a handler may keep running after its timeout
	// cancelled its context before the worker gives up on it (like Azure
	// Service Bus's MaxAutoLockRenewalDuration): the worker stops renewing
	// the job's lock, records the attempt as failed ("handler did not return
	// within ..."), and the job is retried per the retry policy, elsewhere
	// or here. The worker notices within a quarter of LockDuration after
	// the grace ends. Go cannot stop the handler's goroutine: it keeps its
	// executor slot until it returns, so Concurrency still bounds the
	// goroutines running handlers (a queue whose handlers all hang stops
	// taking work), and its verdict is dropped when it does return. Such
	// handlers are logged and counted in WorkerStats. Jobs without a timeout
	// are renewed for as long as they run. Default 10s.
	TimeoutGrace time.Duration

	// Retry decides when failed jobs run again. Default: DefaultRetry
	// (exponential backoff with jitter). HandlerOptions.Retry overrides it.
	Retry RetryPolicy

	// PollInterval is how often an idle queue is checked for work that no
	// in-process signal announced (other processes, jobs coming due).
	// Default 1s.
	PollInterval time.Duration

	// SettleBatch is the most verdicts written in one store call (at most
	// store.MaxBatch); SettleDelay is the longest a verdict waits to share a
	// call. A verdict is also written before its lock would expire.
	// Defaults 500 and 2ms.
	SettleBatch int
	SettleDelay time.Duration

	// ShutdownTimeout is how long Run lets in-flight jobs finish once its
	// context ends, before cancelling them and releasing their jobs.
	// Default 10s. (Stop takes its deadline from its own context.)
	ShutdownTimeout time.Duration

	// Maintenance configures the reaper (expired locks) and retention
	// (finished jobs) this worker runs. Several workers may run them at once.
	Maintenance MaintenanceConfig

	// Scheduler configures the schedule firing this worker runs when its
	// store keeps schedules. It is checked whether or not the store does.
	Scheduler SchedulerConfig

	// Metrics, when set, receives the worker's metrics (see Metrics); the
	// worker also computes the cluster-wide gauges while it holds their
	// lease, when the store has Capabilities.Leases. Default: none, which
	// costs nothing.
	Metrics *Metrics

	// Heartbeat configures how this worker is listed among the workers
	// online (Client.Workers, spool workers) when its store keeps them.
	Heartbeat HeartbeatConfig

	// ID names this worker in claims, logs and the workers online.
	// Default: host-pid-random, different for every Worker of a process.
	// Two running workers must not share an ID: their heartbeats would
	// overwrite each other's entry.
	ID string
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// Clock runs every timer of the worker (polling, renewal, backoff,
	// handler timeouts, settling, maintenance and schedule firing) and
	// measures lock deadlines. Default: the real clock. In tests, use
	// clockwork.NewFakeClock and move time with Advance. The worker never
	// compares this clock with the store's timestamps (see "Time" in the
	// package documentation), so a clock that is off does not shorten locks
	// or move retries.
	Clock clockwork.Clock

	// TracerProvider makes the spans of handlers ("process QUEUE", whose
	// parent is the producer's span on a job's first delivery and which
	// links to it on retries) and of settle batches ("settle"), following
	// the OpenTelemetry messaging conventions. A handler's context carries
	// its span. Default: the global provider (otel.GetTracerProvider),
	// looked up on each use; while it is the no-op one, tracing costs
	// nothing measurable.
	TracerProvider trace.TracerProvider
}

// HeartbeatConfig configures a Worker's heartbeats: while it runs, it
// records itself in the store (store.WorkerStore) every Interval: its ID,
// host, pid, version of Spool, queues, busy and total slots, start time.
// It removes its entry when it stops; the entry of a worker that dies
// expires after TTL. A store without the Workers capability is not
// heartbeated.
type HeartbeatConfig struct {
	// Disable turns heartbeats off.
	Disable bool
	// Interval is how often the worker heartbeats. Default 10s.
	Interval time.Duration
	// TTL is how long an entry stays without a heartbeat. Default three
	// Intervals; at least Interval, and store.MinWorkerTTL..MaxWorkerTTL
	// (1s..24h).
	TTL time.Duration
}

// QueueConfig sets how one queue is worked.
type QueueConfig struct {
	// Concurrency is how many jobs of the queue run at once (like Service
	// Bus MaxConcurrentCalls). Default 10.
	Concurrency int
	// Prefetch is how many extra jobs are claimed ahead of free slots, so the
	// next job is ready when one finishes. Their locks are renewed while they
	// wait. Default 0. Concurrency+Prefetch is at most store.MaxClaim (1,000).
	Prefetch int
}

// KeepForever is the retention that keeps finished jobs of a state until
// they are deleted by hand (dead letters: requeued or purged). It is the
// default for dead jobs.
const KeepForever time.Duration = maint.KeepForever

// MaintenanceConfig configures the background services a Worker runs.
type MaintenanceConfig struct {
	// Disable turns off reaping and retention in this worker (run them elsewhere).
	Disable bool
	// ReapInterval is how often expired locks are returned. Default 1s.
	ReapInterval time.Duration
	// CompletedRetention and CancelledRetention keep finished jobs (and
	// their results) this long before deleting them. Default 24h;
	// KeepForever keeps them. Other negative values are refused.
	CompletedRetention time.Duration
	CancelledRetention time.Duration
	// InboxRetention keeps inbox entries (Client.MarkSeen) this long.
	// Default 7 days; KeepForever keeps them. It must outlast every
	// redelivery of what is marked.
	InboxRetention time.Duration
	// DeadRetention keeps dead letters this long. Default KeepForever: until
	// requeued or purged.
	DeadRetention time.Duration
	// RetentionInterval is how often retention runs. Default 1m.
	RetentionInterval time.Duration
}

// SchedulerConfig configures the schedule firing a Worker runs. Any number
// of workers, in any number of processes, may fire the same store's
// schedules: each slot is enqueued once, whoever fires it.
type SchedulerConfig struct {
	// Disable turns off firing in this worker (fire elsewhere).
	Disable bool
	// Batch is how many due schedules one store call fires. Default 1000
	// (store.DefaultFireBatch); at most store.MaxFireBatch.
	Batch int
	// Concurrency is how many store calls fire at once while more than a
	// batch is due. Default 2; at most 64.
	Concurrency int
	// MaxWait is the longest the scheduler sleeps between looks at the
	// store, and so how late it can notice a schedule that another process
	// made due sooner than any it knew of. Default 1s.
	MaxWait time.Duration
}

// Worker claims jobs from its queues and runs their handlers. Create it
// with NewWorker, register handlers with Handle, then Start and Stop it (or
// Run it until a context ends). A stopped Worker may be started again.
//
// # Lifecycle
//
// A Worker is an ordered set of services, each with the same start/stop
// contract. Start starts them in this order, and stops the ones already
// started if one fails:
//
//  1. the reaper, retention and the scheduler (unless disabled);
//  2. the settler, which batches verdicts into store calls;
//  3. the renewer, which extends the locks of held jobs;
//  4. the executors, Concurrency goroutines per queue running handlers;
//  5. the routers, one per subscription (see Subscribe), turning the
//     topic's new events into the subscription's deliveries;
//  6. the fetchers, one goroutine per queue claiming jobs;
//  7. the heartbeat, which lists the worker among the workers online.
//
// Stop stops them in the reverse order, which is the graceful shutdown:
//
//  1. the heartbeat (the worker's entry is removed), fetchers, then
//     routers: no more claims or routing; jobs claimed
//     ahead and not started are released (available again, no attempt
//     spent);
//  2. executors (the drain): running handlers get until Stop's ctx ends,
//     all queues together; then their contexts are cancelled, their jobs
//     released, and they get one grace of 2s, all together, to return;
//  3. the renewer: locks of handlers still running are no longer renewed;
//  4. the settler: every pending verdict is written (up to 30s, even when
//     ctx has ended);
//  5. the scheduler, retention and the reaper.
//
// Each Start begins a new run with state of its own (the jobs it holds, its
// queues), so a restarted Worker never renews or settles for a handler a
// previous run left behind.
type Worker struct {
	cfg      WorkerConfig // defaults filled in
	metrics  *Metrics     // cfg.Metrics; nil: count nothing
	queues   []queueSpec  // from cfg.Queues, sorted by name
	log      *slog.Logger
	clock    clockwork.Clock
	settler  *settle.Settler
	services []startstop.Service // reaper, retention, scheduler, as present; started in this order
	hooks    testHooks
	tracer   *tracing.Tracer
	workers  store.WorkerStore // where heartbeats go; nil: none

	// activity counts claims and verdicts per queue for the store's
	// per-minute activity (actStore), flushed on the heartbeat's interval
	// and at Stop; both nil when the store keeps no activity. The counts
	// outlive a run: a flush that failed at Stop is made by the next run.
	activity   *activity.Recorder
	actStore   store.ActivityStore
	actFailing atomic.Bool // the last flush failed: log when one succeeds again

	// ordered maps a job with an ordering key whose verdict is with the
	// settler to its queue's runner: once the verdict is written, the
	// next job of its key may be claimable, and the fetcher is woken.
	ordered sync.Map // store.ID -> *queueRunner

	givenUp atomic.Int64 // handlers given up on after their timeout and grace, since NewWorker
	stuck   atomic.Int64 // of those, still running

	mu       sync.Mutex // guards handlers and subs (written before Start) and run
	handlers map[string]handler
	subs     map[string]*subscriber // by "TOPIC/NAME"
	run      *workerRun             // the current run; nil while stopped
}

// testHooks let this package's tests watch and steer a Worker. They are
// zero outside tests (see export_test.go).
type testHooks struct {
	// SettleWhenIdle makes the settler flush whenever a flush slot is free
	// instead of waiting SettleDelay, a timer a fake clock never fires by
	// itself.
	SettleWhenIdle bool
	// AfterRenew is called by the renewer after each of its ticks.
	AfterRenew func()
	// OnSettled is told the store's answer to every verdict.
	OnSettled func(v store.Verdict, err error)
	// CancelGrace replaces the 2s Stop gives cancelled handlers.
	CancelGrace time.Duration
	// AfterHeartbeat is told the store's answer to every heartbeat.
	AfterHeartbeat func(err error)
	// AfterActivityFlush is told the answer of every flush of activity.
	AfterActivityFlush func(err error)
}

// NewWorker validates cfg and returns a Worker ready for handlers. Every
// mistake is reported at once, joined: each is a *store.ValidationError or
// *store.LimitError matching ErrInvalid and naming the public field, such
// as WorkerConfig.SettleDelay or QueueConfig["mail"].Prefetch.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	return newWorker(cfg, testHooks{})
}

func newWorker(cfg WorkerConfig, hooks testHooks) (*Worker, error) {
	queues, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, metrics: cfg.Metrics, queues: queues, log: cfg.Logger, clock: cfg.Clock, hooks: hooks, handlers: map[string]handler{},
		tracer: tracing.New(cfg.TracerProvider)}
	if !cfg.Heartbeat.Disable {
		w.workers = cfg.Store.Capabilities().Workers
	}
	if as := cfg.Store.Capabilities().Activity; as != nil {
		w.activity, w.actStore = &activity.Recorder{}, as
	}
	var (
		onFlush func(int, time.Duration)
		onReap  func(maint.ReapPass)
		onFire  func(*store.FireResult)
	)
	if m := w.metrics; m != nil {
		onFlush = func(n int, d time.Duration) { m.observeBatch(opSettle, n, d) }
		onReap = func(p maint.ReapPass) {
			m.observeReap(store.ReapResult{Returned: p.Returned, DeadLettered: p.DeadLettered})
		}
		onFire = m.observeFire
	}
	// The internal services assume a valid config, which resolve checked
	// in the user's terms.
	w.settler = settle.New(settle.Config{
		Store:         cfg.Store,
		MaxBatch:      cfg.SettleBatch,
		MaxDelay:      cfg.SettleDelay,
		FlushWhenIdle: hooks.SettleWhenIdle,
		OnResult:      w.settled,
		OnFlush:       onFlush,
		Clock:         cfg.Clock,
		Logger:        cfg.Logger,
		Tracer:        w.tracer.Get,
	})
	if m := cfg.Maintenance; !m.Disable {
		w.services = append(w.services,
			maint.NewReaper(maint.ReaperConfig{Store: cfg.Store, Interval: m.ReapInterval, Clock: cfg.Clock, Logger: cfg.Logger, OnPass: onReap}),
			maint.NewRetention(maint.RetentionConfig{
				Store:              cfg.Store,
				Interval:           m.RetentionInterval,
				CompletedRetention: m.CompletedRetention,
				CancelledRetention: m.CancelledRetention,
				InboxRetention:     m.InboxRetention,
				DeadRetention:      m.DeadRetention,
				Clock:              cfg.Clock,
				Logger:             cfg.Logger,
			}))
	}
	if ss := cfg.Store.Capabilities().Schedules; ss != nil && !cfg.Scheduler.Disable {
		w.services = append(w.services, scheduler.New(scheduler.Config{
			Store:       ss,
			Batch:       cfg.Scheduler.Batch,
			Concurrency: cfg.Scheduler.Concurrency,
			MaxWait:     cfg.Scheduler.MaxWait,
			Clock:       cfg.Clock,
			Logger:      cfg.Logger,
			OnFire:      onFire,
		}))
	}
	if ls := cfg.Store.Capabilities().Leases; ls != nil && w.metrics != nil {
		w.services = append(w.services, newGauges(w.metrics, cfg.Store, ls, cfg.Clock, cfg.Logger))
	}
	return w, nil
}

func (w *Worker) register(kind string, h handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.run != nil {
		panic("spool: Handle called after the worker started")
	}
	w.handlers[kind] = h
}

// settled is told the store's answer to every verdict, with its held job
// as the tag when the worker counts verdicts (metrics, activity; nil
// otherwise).
func (w *Worker) settled(v store.Verdict, tag any, err error) {
	if r, ok := tag.(*heldJob); ok {
		if r.ms != nil {
			switch {
			case err == nil:
				r.ms.outcomes[outcomeOf(v, r.job)].settled.Inc()
			case errors.Is(err, store.ErrLockLost):
				r.ms.staleSets.Inc()
			}
		}
		if r.act != nil && err == nil {
			r.act.Settled(v.Outcome, r.job.Attempts, r.job.MaxAttempts)
		}
	}
	if q, ok := w.ordered.LoadAndDelete(v.ID); ok {
		if q, ok := q.(*queueRunner); ok {
			q.keyed.Add(-1)
			if err == nil {
				q.wakeFetcher()
			}
		}
	}
	if w.hooks.OnSettled != nil {
		w.hooks.OnSettled(v, err)
	}
}

// Start starts the worker's services (see Lifecycle) and returns once they
// run. ctx only bounds starting; stop the worker with Stop. If a service
// fails to start, the ones already started are stopped and Start returns
// the error; this happens when a previous Stop ran out of time and one of
// its services is still winding down.
func (w *Worker) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.run != nil {
		return errors.New("spool: worker already started")
	}
	subs, err := w.resolveSubscriptions(ctx)
	if err != nil {
		return err
	}
	run := newWorkerRun(w, subs)
	services := make([]startstop.Service, 0, len(w.services)+5)
	for _, s := range w.services {
		services = append(services, detached{s})
	}
	services = append(services, detached{w.settler}, detached{run.renewer}, detached{run.executors}, detached{run.routers}, detached{run.fetchers},
		detached{run.heartbeat})
	if err := startstop.StartAll(ctx, services...); err != nil {
		return err
	}
	w.run = run
	if w.metrics != nil {
		run.unexport = w.metrics.addRun(run)
	}
	w.log.Info("spool: worker started", "worker", w.cfg.ID, "queues", len(run.queues))
	return nil
}

// detached starts a service on a context that keeps Start's values but not
// its cancellation: Start's ctx bounds starting only, and the service runs
// until it is stopped.
type detached struct{ startstop.Service }

func (d detached) Start(ctx context.Context) error {
	return d.Service.Start(context.WithoutCancel(ctx))
}

// stepTimeout bounds the stop steps that must run even when Stop's ctx has
// ended: stopping the fetchers, the renewer and the maintenance services,
// and flushing the settler.
const stepTimeout = 30 * time.Second

// Stop shuts the worker down gracefully, in the order given under
// Lifecycle: it stops claiming, releases prefetched jobs that have not
// started, and waits for running jobs to finish until ctx ends. Then it
// cancels the jobs still running and releases them without spending an
// attempt, writes every pending verdict, and stops the maintenance services.
// No goroutine of the worker outlives a Stop that returned nil. Stop is
// idempotent.
//
// Handlers must return once their context is cancelled. Go cannot stop a
// goroutine from outside: a handler still running 2s after its cancellation
// is left behind, and Stop returns an error naming its job. Its lock is no
// longer renewed, so the job runs again elsewhere once the lock expires,
// and a later Start of this Worker does not touch it.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	run := w.run
	if run == nil {
		return nil
	}
	run.stopping.Store(true) // executors release what they have not started
	var errs []error
	step := func(ctx context.Context, s startstop.Service) {
		errs = append(errs, s.Stop(ctx))
	}
	fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
	step(fetchCtx, run.heartbeat) // off the list of workers online first
	step(fetchCtx, run.fetchers)
	step(fetchCtx, run.routers)
	cancel()
	step(ctx, run.executors) // the drain: until ctx ends, then one grace
	// Verdicts must be written even when ctx is already over: the remaining
	// steps get a bounded context of their own.
	afterCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
	defer cancel()
	step(afterCtx, run.renewer)
	step(afterCtx, w.settler)
	w.flushActivity(afterCtx) // the verdicts just written included
	for i := len(w.services) - 1; i >= 0; i-- {
		step(afterCtx, w.services[i])
	}
	if run.unexport != nil {
		run.unexport()
	}
	w.run = nil
	w.log.Info("spool: worker stopped", "worker", w.cfg.ID)
	return errors.Join(errs...)
}

// flushActivity adds the activity counted since the last flush to the
// store (Capabilities.Activity). A failure is logged once until a flush
// succeeds again; its counts are kept for the next flush.
func (w *Worker) flushActivity(ctx context.Context) {
	if w.activity == nil {
		return
	}
	_, err := w.activity.Flush(ctx, w.actStore)
	switch {
	case err != nil && !w.actFailing.Swap(true):
		w.log.Warn("spool: recording activity failed; the counts are kept for the next try", "worker", w.cfg.ID, "err", err)
	case err == nil && w.actFailing.Swap(false):
		w.log.Info("spool: recording activity succeeds again", "worker", w.cfg.ID)
	}
	if w.hooks.AfterActivityFlush != nil {
		w.hooks.AfterActivityFlush(err)
	}
}

// Run starts the worker, works until ctx ends, then stops it gracefully,
// giving running jobs up to ShutdownTimeout to finish.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.ShutdownTimeout)
	defer cancel()
	return w.Stop(stopCtx)
}

// Stats returns the worker's counters since NewWorker, for metrics and
// benchmarks.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{
		Settle:          settleStats(w.settler.Stats()),
		HandlersGivenUp: w.givenUp.Load(),
		HandlersStuck:   int(w.stuck.Load()),
	}
}

// handlerFor returns the kind's handler and its effective options.
func (w *Worker) handlerFor(kind string) (handler, bool) {
	h, ok := w.handlers[kind]
	if !ok {
		h, ok = w.handlers[anyKind] // the catch-all from HandleAll, if any
	}
	if !ok {
		return handler{}, false
	}
	h.opts.Timeout = cmp.Or(h.opts.Timeout, w.cfg.JobTimeout)
	if h.opts.Retry == nil {
		h.opts.Retry = w.cfg.Retry
	}
	return h, true
}
