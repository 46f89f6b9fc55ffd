package spool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolrun/spool/internal/activity"
	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/internal/tracing"
	"github.com/spoolrun/spool/store"
)

// errShutdown is the cause given to handler contexts cancelled because Stop
// ran out of time; their jobs are released, not failed.
var errShutdown = errors.New("spool: worker shutting down")

// cancelGrace is how long Stop waits for cancelled handlers to return, all
// queues together. It is wall-clock time, like Stop's ctx.
const cancelGrace = 2 * time.Second

// workerRun is one run of a Worker, from Start to Stop: its queues, the jobs
// they hold and the services that work them. Each Start makes a new one, so
// what a run leaves behind (handlers that ignored cancellation) stays with
// it and is never renewed or settled by a later run.
type workerRun struct {
	w         *Worker
	held      heldSet // claimed jobs until their verdict
	queues    []*queueRunner
	stopping  atomic.Bool // set by Stop first: executors release jobs they have not started
	routers   *routers
	fetchers  *fetchers
	executors *executors
	renewer   *renewer
	unexport  func() // stops exporting the run's slots; nil without metrics
	heartbeat *heartbeat
	busy      atomic.Int64 // handlers running now

}

func newWorkerRun(w *Worker, subs []queueSpec) *workerRun {
	run := &workerRun{w: w}
	for _, spec := range append(slices.Clone(w.queues), subs...) {
		var act *activity.Queue
		if w.activity != nil {
			act = w.activity.Queue(spec.name)
		}
		run.queues = append(run.queues, &queueRunner{
			act:      act,
			run:      run,
			name:     spec.name,
			conc:     spec.conc,
			capacity: spec.capacity,
			lock:     cmp.Or(spec.lock, w.cfg.LockDuration),
			sub:      spec.sub,
			jobs:     make(chan *heldJob, spec.capacity),
			freed:    make(chan struct{}, 1),
			settled:  make(chan struct{}, 1),
		})
	}
	run.routers = &routers{run: run}
	run.fetchers = &fetchers{run: run}
	run.executors = &executors{run: run}
	run.renewer = &renewer{run: run}
	run.heartbeat = &heartbeat{run: run}
	return run
}

// queueRunner works one queue of a run: a fetcher goroutine claims up to the
// free capacity in one call, and Concurrency executor goroutines run the jobs.
type queueRunner struct {
	run      *workerRun
	name     string
	conc     int // executors
	capacity int // Concurrency + Prefetch: most jobs claimed and not yet finished
	lock     time.Duration
	sub      *subscriber // the subscription whose deliveries this queue holds; nil for a job queue

	jobs     chan *heldJob   // claimed jobs waiting for an executor; never blocks (capacity slots); closed by the fetcher
	freed    chan struct{}   // capacity 1: a job was finished or released
	settled  chan struct{}   // capacity 1: a job with an ordering key was settled: its key's next may be claimable
	inflight atomic.Int64    // claimed and not yet finished or released
	keyed    atomic.Int64    // claimed jobs with an ordering key whose verdicts are not settled yet
	busy     atomic.Int64    // handlers running now, counted with metrics only
	act      *activity.Queue // the queue's activity counters; nil when the store keeps no activity
}

// fetchers is the service of a run's fetcher goroutines, one per queue.
// Stopping it stops claiming; what was claimed ahead and not started is
// released.
type fetchers struct {
	run  *workerRun
	base startstop.Base
}

func (f *fetchers) Start(ctx context.Context) error {
	return f.base.Start(ctx, func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, q := range f.run.queues {
			wg.Go(func() {
				q.fetch(ctx)
				close(q.jobs) // the fetcher is the only sender
				// Give back what was claimed ahead, sharing the work with
				// the executors, which release what they take too.
				for r := range q.jobs {
					q.releaseUnstarted(ctx, r)
				}
			})
		}
		wg.Wait()
	})
}

func (f *fetchers) Stop(ctx context.Context) error { return f.base.Stop(ctx) }

// executors is the service of a run's executor goroutines, Concurrency per
// queue. They run jobs until the fetchers close their queues. Stopping it is
// the drain: it waits for running handlers until its ctx ends, then cancels
// them (their jobs are released) and waits one grace for all of them.
type executors struct {
	run  *workerRun
	base startstop.Base
	// cancel cancels, with errShutdown, the parent of every handler's
	// context; set by Start, before the executors run.
	cancel context.CancelCauseFunc
}

func (e *executors) Start(ctx context.Context) error {
	// Handlers are cancelled by the drain only, not by the service's own
	// loop context, which Stop cancels at once.
	handlerCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	e.cancel = cancel
	err := e.base.Start(ctx, func(ctx context.Context) {
		defer cancel(nil)
		var wg sync.WaitGroup
		for _, q := range e.run.queues {
			for range q.conc {
				wg.Go(func() { q.work(ctx, handlerCtx) })
			}
		}
		wg.Wait()
	})
	if err != nil {
		cancel(nil)
	}
	return err
}

// work is one executor: it runs q's jobs until the fetcher closes the
// queue, or, once stop ends (the fetchers have stopped by then), until the
// queue is empty.
func (q *queueRunner) work(stop, handlerCtx context.Context) {
	for {
		select {
		case r, ok := <-q.jobs:
			if !ok {
				return
			}
			q.execute(handlerCtx, r)
		case <-stop.Done():
			for {
				select {
				case r, ok := <-q.jobs:
					if !ok {
						return
					}
					q.execute(handlerCtx, r)
				default:
					return
				}
			}
		}
	}
}

func (e *executors) Stop(ctx context.Context) error {
	if e.base.Stop(ctx) == nil {
		return nil
	}
	w := e.run.w
	w.log.Warn("spool: shutdown deadline passed; cancelling running jobs", "worker", w.cfg.ID)
	e.cancel(errShutdown)
	// Handlers must return once their context ends. Those that do not past
	// one grace, for all queues together, are named and left behind: Go
	// cannot stop them, and Stop stays bounded. Their locks are no longer
	// renewed once the renewer stops, so their jobs run again; nothing is
	// lost.
	grace := time.NewTimer(cmp.Or(w.hooks.CancelGrace, cancelGrace))
	defer grace.Stop()
	select {
	case <-e.base.Done():
		return nil
	case <-grace.C:
	}
	var stuck []string
	for _, r := range e.run.held.started() {
		stuck = append(stuck, r.job.ID.String()+" ("+r.job.Queue+"/"+r.job.Kind+")")
	}
	return fmt.Errorf("spool: %d handlers ignored cancellation and are still running: %s; their jobs will run again when their locks expire",
		len(stuck), strings.Join(stuck, ", "))
}

// fetch claims jobs while there is free capacity, then sleeps until an
// executor frees a slot, new work is announced, or the poll interval passes.
func (q *queueRunner) fetch(ctx context.Context) {
	w := q.run.w
	lock := q.lock
	notifier := w.cfg.Store.Capabilities().Notifier
	waiter := w.cfg.Store.Capabilities().ClaimWaiter
	backoff := minBackoff
	failing := false      // the last claim failed: log when one succeeds again
	var series *jobSeries // the metric series of the last job claimed
	for ctx.Err() == nil {
		free := q.capacity - int(q.inflight.Load())
		if free <= 0 {
			select {
			case <-q.freed:
			case <-ctx.Done():
			}
			continue
		}
		// A store that can wait for jobs (over a network) claims and waits
		// in one call, unless a job of an ordering key is out: its settle
		// must wake this fetcher (q.settled) to claim the key's next job.
		waits := waiter != nil && q.keyed.Load() == 0
		var available <-chan struct{}
		if notifier != nil && !waits {
			available = notifier.Available(q.name) // before claiming: no lost wake-up
		}
		w.settler.Nudge() // let pending verdicts share the claim's commit
		// The lock is measured on the worker's clock from before the call
		// (and the store's wait): the store's lock ends no sooner, whatever
		// the two clocks say.
		before := w.clock.Now()
		params := store.ClaimParams{Queue: q.name, Limit: free, LockFor: lock, Worker: w.cfg.ID}
		var (
			jobs   []*store.Job
			waited time.Duration
			err    error
		)
		if waits {
			jobs, waited, err = waiter.ClaimWait(ctx, params, w.cfg.PollInterval)
		} else {
			jobs, err = w.cfg.Store.Claim(ctx, params)
		}
		deadline := before.Add(waited + lock)
		if m := w.metrics; m != nil && err == nil && len(jobs) > 0 {
			m.observeBatch(opClaim, len(jobs), w.clock.Since(before)-waited)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Error("spool: claim failed; retrying", "queue", q.name, "err", err, "after", backoff)
			sleep(ctx, w.clock, backoff)
			backoff = min(2*backoff, maxBackoff)
			failing = true
			continue
		}
		if failing {
			w.log.Info("spool: claims succeed again", "queue", q.name)
			failing = false
		}
		backoff = minBackoff
		if len(jobs) > free {
			// A malformed answer: keep what fits, give back the rest.
			w.log.Error("spool: the store returned more jobs than claimed; releasing the extra ones",
				"queue", q.name, "claimed", free, "returned", len(jobs))
			for _, j := range jobs[free:] {
				q.submit(ctx, store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Release}, deadline)
			}
			jobs = jobs[:free]
		}
		q.inflight.Add(int64(len(jobs)))
		for _, j := range jobs {
			if j.OrderingKey != "" {
				q.keyed.Add(1) // until its verdict is settled (Worker.settled) or it ends unsettled (execute)
			}
			// Renewal covers a job from its claim, so a prefetched job
			// keeps its lock while it waits for an executor.
			r := q.run.held.add(j, deadline, lock)
			if m := w.metrics; m != nil {
				r.ms = m.claimed(j, lock, series)
				series = r.ms
			}
			if q.act != nil {
				r.act = q.act
				q.act.Claimed(activity.Pickup(j, lock))
			}
			q.jobs <- r
		}
		if q.sub != nil && len(jobs) > 0 {
			q.sub.claimed() // room for the router to route more
		}
		if len(jobs) == free || waits {
			continue // there may be more; or the store has waited already
		}
		poll := w.clock.NewTimer(w.cfg.PollInterval)
		select {
		case <-available:
		case <-q.settled:
		case <-poll.Chan():
		case <-ctx.Done():
		}
		poll.Stop()
	}
}

// wakeFetcher tells the fetcher that a job of q with an ordering key was
// settled, so the next job of its key may be claimable now.
func (q *queueRunner) wakeFetcher() {
	select {
	case q.settled <- struct{}{}:
	default:
	}
}

// Backoff between failed claims.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func sleep(ctx context.Context, clock clockwork.Clock, d time.Duration) {
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
	case <-ctx.Done():
	}
}

// done records that one of q's jobs was finished or released.
func (q *queueRunner) done() {
	q.inflight.Add(-1)
	select {
	case q.freed <- struct{}{}:
	default:
	}
}

// releaseUnstarted gives back a job that was claimed ahead and never
// started: available again, no attempt spent.
func (q *queueRunner) releaseUnstarted(ctx context.Context, r *heldJob) {
	defer q.done()
	if deadline, lost, _ := q.run.held.remove(r); !lost {
		q.submitTag(ctx, store.Verdict{ID: r.job.ID, Token: r.job.LockToken, Outcome: store.Release}, deadline, r)
	}
}

// execute runs one job and hands its verdict to the settler. ctx is the
// parent of the handler's context; it ends only when Stop's deadline passes.
func (q *queueRunner) execute(ctx context.Context, r *heldJob) {
	run := q.run
	w := run.w
	job := r.job
	// The fetcher counts a job of an ordering key as out until its verdict
	// is settled (Worker.settled), or here, if it ends with none to wait for.
	handedOver := false
	defer func() {
		if job.OrderingKey != "" && !handedOver {
			q.keyed.Add(-1)
		}
	}()
	if run.stopping.Load() {
		q.releaseUnstarted(ctx, r)
		return
	}
	defer q.done()
	h, ok := q.handlerFor(job.Kind)
	if !ok {
		deadline, lost, _ := run.held.remove(r)
		if !lost {
			q.submitTag(ctx, verdictFor(job, nil, w.noHandler(job.Kind), q.retry()), deadline, r)
		}
		return
	}
	ctx, cancel, release, giveUpAt := w.handlerContext(ctx, h.opts)
	defer release()
	if !run.held.start(r, cancel, giveUpAt, h.opts) {
		run.held.remove(r)
		w.log.Warn("spool: lock lost while the job waited for an executor; not run, it runs again elsewhere", jobAttrs(job)...)
		return
	}
	var span trace.Span
	if tr := w.tracer.Get(); tr != nil && q.sub == nil { // a subscription's events get spans of their own
		ctx, span = tracing.StartProcess(ctx, tr, jobDelivery(ctx, job))
	}
	var started time.Time
	if r.ms != nil {
		q.busy.Add(1)
		started = w.clock.Now()
	}
	run.busy.Add(1)
	result, err := h.call(ctx, job)
	run.busy.Add(-1)
	if r.ms != nil {
		r.ms.duration.Observe(w.clock.Since(started).Seconds())
		q.busy.Add(-1)
	}
	cause := context.Cause(ctx) // nil unless the context ended while the handler ran
	deadline, lost, givenUp := run.held.remove(r)
	switch {
	case givenUp:
		w.stuck.Add(-1)
		w.log.Warn("spool: a handler the worker had given up on returned; its verdict is dropped (its attempt was already recorded as timed out)",
			jobAttrs(job)...)
		endProcess(span, "given_up", err)
		return
	case lost:
		w.log.Warn("spool: lock lost while running; verdict dropped, the job runs again elsewhere", jobAttrs(job)...)
		endProcess(span, "lock_lost", err)
		return
	case err != nil && errors.Is(cause, errShutdown):
		q.submitTag(ctx, store.Verdict{ID: job.ID, Token: job.LockToken, Outcome: store.Release}, deadline, r)
		endProcess(span, store.Release.String(), err)
		return
	}
	if job.OrderingKey != "" {
		handedOver = true
		w.ordered.Store(job.ID, q)
	}
	err = withCause(err, cause)
	v := verdictFor(job, result, err, h.opts.Retry)
	endProcess(span, v.Outcome.String(), err)
	q.submitTag(ctx, v, deadline, r)
}

// jobDelivery describes a job's delivery for its process span: the
// producer's span is the parent on the first delivery, and linked on
// retries and redeliveries.
func jobDelivery(ctx context.Context, job *Job) tracing.Delivery {
	return tracing.Delivery{Dest: job.Queue, ID: job.ID.String(), Kind: job.Kind, Tenant: job.Tenant,
		Attempt: job.Attempts + 1, Delivery: job.Deliveries, First: job.Attempts == 0 && job.Deliveries <= 1,
		Creation: tracing.Extract(ctx, job.Metadata)}
}

// endProcess ends a process span, when there is one.
func endProcess(span trace.Span, outcome string, err error) {
	if span != nil {
		tracing.EndProcess(span, outcome, err)
	}
}

// The pieces of an execution that the executors and the synchronous path
// behind spooltest (workOne) share, so that both give a handler's return
// the same meaning.

// noHandler is the error of a job whose kind has no handler, and no
// catch-all either: a failed attempt, retried per the worker's policy.
func (w *Worker) noHandler(kind string) error {
	return fmt.Errorf("no handler registered for kind %q in worker %s", kind, w.cfg.ID)
}

// handlerContext returns the context a handler with opts runs in: a child
// of parent that cancel ends with a cause and that the handler's timeout
// ends, on the worker's clock. release frees it; giveUpAt is when the
// worker gives up on the handler (its timeout plus TimeoutGrace from now),
// zero when it has no timeout.
func (w *Worker) handlerContext(parent context.Context, opts HandlerOptions) (ctx context.Context, cancel context.CancelCauseFunc, release func(), giveUpAt time.Time) {
	ctx, cancel = context.WithCancelCause(parent)
	release = func() { cancel(nil) }
	if timeout := opts.Timeout; timeout > 0 {
		var stop context.CancelFunc
		ctx, stop = withTimeout(ctx, w.clock, timeout, fmt.Errorf("spool: job timed out after %v", timeout))
		release = func() {
			stop()
			cancel(nil)
		}
		giveUpAt = w.clock.Now().Add(timeout + w.cfg.TimeoutGrace)
	}
	return ctx, cancel, release, giveUpAt
}

// withCause adds to a handler's error why its context ended (cause, nil
// when it did not), unless the error already says so: a timeout.
func withCause(err, cause error) error {
	if err != nil && cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}

// withTimeout is context.WithTimeoutCause on clock. On the real clock (or
// any clock that follows real time) it is the standard library's, so
// ctx.Err() is context.DeadlineExceeded as usual; on a
// *clockwork.FakeClock the context is cancelled with cause when the fake
// time comes, and reports that deadline.
func withTimeout(ctx context.Context, clock clockwork.Clock, d time.Duration, cause error) (context.Context, context.CancelFunc) {
	fake, ok := clock.(*clockwork.FakeClock)
	if !ok {
		return context.WithTimeoutCause(ctx, d, cause)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	t := fake.AfterFunc(d, func() { cancel(cause) })
	return fakeDeadline{ctx, fake.Now().Add(d)}, func() {
		t.Stop()
		cancel(nil)
	}
}

// fakeDeadline reports a deadline on a fake clock.
type fakeDeadline struct {
	context.Context
	deadline time.Time
}

func (c fakeDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

// submitTag is submit for the verdict of held job r, tagged with r when
// the worker counts verdicts (metrics, activity): Worker.settled counts
// it once the store has answered.
func (q *queueRunner) submitTag(ctx context.Context, v store.Verdict, deadline time.Time, r *heldJob) {
	if r.ms == nil && r.act == nil {
		q.submit(ctx, v, deadline)
		return
	}
	if err := q.run.w.settler.SubmitTag(context.WithoutCancel(ctx), v, deadline, r); err != nil {
		q.run.w.log.Error("spool: verdict not accepted; the job's lock will expire and it runs again",
			"job", v.ID, "outcome", v.Outcome, "err", err)
	}
}

// submit hands a verdict to the settler, to be written before deadline (on
// the worker's clock).
func (q *queueRunner) submit(ctx context.Context, v store.Verdict, deadline time.Time) {
	// Submit blocks only while the settler's buffer is full (backpressure);
	// it fails only when the settler stopped, which Stop orders after us.
	// Its context is never cancelled: a job's verdict is handed over even
	// when the job's own context has ended.
	if err := q.run.w.settler.Submit(context.WithoutCancel(ctx), v, deadline); err != nil {
		q.run.w.log.Error("spool: verdict not accepted; the job's lock will expire and it runs again",
			"job", v.ID, "outcome", v.Outcome, "err", err)
	}
}
