package spool

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/internal/maint"
	"github.com/spoolrun/spool/internal/scheduler"
	"github.com/spoolrun/spool/internal/settle"
	"github.com/spoolrun/spool/store"
)

// WorkerConfig configures a Worker. Zero fields take the documented
// defaults; NewWorker checks every field once the defaults are filled in
// and reports every mistake at once.
type WorkerConfig struct {
	// Store is where jobs come from. Required.
	Store store.Store

	// Queues maps each queue to work to its settings.
	// Default: {"default": {}}.
	Queues map[string]QueueConfig

	// LockDuration is how long a claim holds a job before another worker may
	// take it. Jobs that run longer are renewed automatically, so this only
	// bounds how soon a crashed worker's jobs run elsewhere. Default 30s;
	// store.MinLockDuration..store.MaxLockDuration (100ms..24h).
	LockDuration time.Duration

	// JobTimeout bounds each execution through its context. Default 1m;
	// negative: no timeout. HandlerOptions.Timeout overrides it per kind.
	JobTimeout time.Duration

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

	// ID names this worker in claims and logs. Default: host-pid.
	ID string
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// Clock is the worker's clock. It runs the settler's, the maintenance
	// services' and the scheduler's timers. Default: the real clock. In
	// tests, use clockwork.NewFakeClock and move time with Advance.
	Clock clockwork.Clock
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
// Run it until a context ends).
type Worker struct {
	cfg      WorkerConfig
	log      *slog.Logger
	now      func() time.Time
	settler  *settle.Settler
	services []interface {
		Start(context.Context) error
		Stop(context.Context) error
	}

	mu       sync.Mutex // guards handlers (before Start), queues, started
	handlers map[string]handler
	queues   []*queueRunner
	started  bool

	running runningSet // jobs executing now, for lock renewal
	renewWG sync.WaitGroup
	stopRen context.CancelFunc
}

// NewWorker validates cfg and returns a Worker ready for handlers. Every
// mistake is reported at once, joined: each is a *store.ValidationError or
// *store.LimitError matching ErrInvalid and naming the public field, such
// as WorkerConfig.SettleDelay or QueueConfig["mail"].Prefetch.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if _, err := cfg.resolve(); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, log: cfg.Logger, now: cfg.Clock.Now, handlers: map[string]handler{}}
	// The internal services assume a valid config, which resolve checked
	// in the user's terms.
	w.settler = settle.New(settle.Config{
		Store:    cfg.Store,
		MaxBatch: cfg.SettleBatch,
		MaxDelay: cfg.SettleDelay,
		Clock:    cfg.Clock,
		Logger:   cfg.Logger,
	})
	if m := cfg.Maintenance; !m.Disable {
		w.services = append(w.services,
			maint.NewReaper(maint.ReaperConfig{Store: cfg.Store, Interval: m.ReapInterval, Clock: cfg.Clock, Logger: cfg.Logger}),
			maint.NewRetention(maint.RetentionConfig{
				Store:              cfg.Store,
				Interval:           m.RetentionInterval,
				CompletedRetention: m.CompletedRetention,
				CancelledRetention: m.CancelledRetention,
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
		}))
	}
	return w, nil
}

func (w *Worker) register(kind string, h handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		panic("spool: Handle called after the worker started")
	}
	w.handlers[kind] = h
}

// Start starts fetching and running jobs and the maintenance services. It
// returns once they run. ctx only bounds starting; stop the worker with Stop.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("spool: worker already started")
	}
	bg := context.WithoutCancel(ctx)
	if err := w.settler.Start(bg); err != nil {
		return err
	}
	for _, s := range w.services {
		if err := s.Start(bg); err != nil {
			return errors.Join(err, w.settler.Stop(ctx))
		}
	}
	renewCtx, stop := context.WithCancel(bg)
	w.stopRen = stop
	w.renewWG.Add(1)
	go func() {
		defer w.renewWG.Done()
		w.renewLoop(renewCtx)
	}()
	w.queues = w.queues[:0]
	for name, qc := range w.cfg.Queues {
		q := newQueueRunner(w, name, qc)
		w.queues = append(w.queues, q)
		q.start(bg)
	}
	w.started = true
	w.log.Info("spool: worker started", "worker", w.cfg.ID, "queues", len(w.queues))
	return nil
}

// Stop shuts the worker down gracefully: it stops claiming, releases
// prefetched jobs that have not started, and waits for running jobs to
// finish until ctx ends. Then it cancels the jobs still running and releases
// them without spending an attempt, writes every pending verdict, and stops
// the maintenance services. No goroutine of the worker outlives a Stop that
// returned nil. Stop is idempotent.
//
// Handlers must return once their context is cancelled. Go cannot stop a
// goroutine from outside: a handler still running 2s after its cancellation
// is left behind, and Stop returns an error naming its job. Its lock is no
// longer renewed, so the job runs again elsewhere once the lock expires.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started {
		return nil
	}
	var errs []error
	for _, q := range w.queues {
		q.stopFetching()
	}
	for _, q := range w.queues {
		errs = append(errs, q.drain(ctx))
	}
	w.stopRen()
	w.renewWG.Wait()
	// Verdicts must be written even when ctx is already over: give the
	// settler a bounded context of its own.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	errs = append(errs, w.settler.Stop(flushCtx))
	for _, s := range w.services {
		errs = append(errs, s.Stop(flushCtx))
	}
	w.started = false
	w.log.Info("spool: worker stopped", "worker", w.cfg.ID)
	return errors.Join(errs...)
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

// SettleStats reports the verdict batching counters, for metrics and benchmarks.
func (w *Worker) SettleStats() settle.Stats { return w.settler.Stats() }

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
