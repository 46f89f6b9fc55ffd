package spool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/store"
)

// errShutdown is the cause given to handler contexts cancelled because Stop
// ran out of time; their jobs are released, not failed.
var errShutdown = errors.New("spool: worker shutting down")

// queueRunner works one queue: a fetcher goroutine claims up to the free
// capacity in one call, and Concurrency executor goroutines run the jobs.
type queueRunner struct {
	w        *Worker
	name     string
	conc     int // executors
	capacity int // Concurrency + Prefetch: most jobs claimed and not yet finished

	jobs     chan *runningJob // claimed jobs waiting for an executor, renewed from their claim; never blocks (capacity slots)
	freed    chan struct{}    // capacity 1: an executor finished a job
	inflight atomic.Int64     // claimed and not yet handed to the settler

	fetchCancel context.CancelFunc
	fetchDone   chan struct{}
	// cancelHandler cancels, with errShutdown, the parent of every
	// execution's context when Stop's deadline passes.
	cancelHandler context.CancelCauseFunc
	stopping      atomic.Bool // set by stopFetching: executors release what they have not started
	execWG        sync.WaitGroup
}

func newQueueRunner(w *Worker, name string, qc QueueConfig) *queueRunner {
	conc := qc.Concurrency
	if conc == 0 {
		conc = 10
	}
	capacity := conc + qc.Prefetch
	q := &queueRunner{
		w:        w,
		name:     name,
		conc:     conc,
		capacity: capacity,
		jobs:     make(chan *runningJob, capacity),
		freed:    make(chan struct{}, 1),
	}
	return q
}

func (q *queueRunner) start(ctx context.Context) {
	handlerCtx, cancelHandler := context.WithCancelCause(ctx)
	q.cancelHandler = cancelHandler
	fetchCtx, cancel := context.WithCancel(ctx)
	q.fetchCancel = cancel
	q.fetchDone = make(chan struct{})
	go func() {
		defer close(q.fetchDone)
		q.fetch(fetchCtx)
	}()
	q.execWG.Add(q.conc)
	for range q.conc {
		go func() {
			defer q.execWG.Done()
			for r := range q.jobs {
				q.execute(handlerCtx, r)
			}
		}()
	}
}

// stopFetching stops claiming and waits for the fetcher to exit.
func (q *queueRunner) stopFetching() {
	q.stopping.Store(true)
	q.fetchCancel()
	<-q.fetchDone
	close(q.jobs) // the fetcher was the only sender
}

// drain waits for the executors to finish what they hold; when ctx ends
// first, it cancels the running handlers (their jobs are released) and waits
// for them to return.
func (q *queueRunner) drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		q.execWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	q.w.log.Warn("spool: shutdown deadline passed; cancelling running jobs", "queue", q.name)
	q.cancelHandler(errShutdown)
	// Handlers must return once their context ends. Those that do not past
	// a short grace are named and left behind: Go cannot stop them, and
	// Stop stays bounded. Their locks are no longer renewed, so their jobs
	// run again elsewhere; nothing is lost.
	grace := time.NewTimer(cancelGrace)
	defer grace.Stop()
	select {
	case <-done:
		return nil
	case <-grace.C:
	}
	var stuck []string
	for _, r := range q.w.running.all() {
		if r.job.Queue == q.name {
			stuck = append(stuck, r.job.ID.String()+" ("+r.job.Kind+")")
		}
	}
	return fmt.Errorf("spool: queue %s: %d handlers ignored cancellation and are still running: %s; their jobs will run again when their locks expire",
		q.name, len(stuck), strings.Join(stuck, ", "))
}

// cancelGrace is how long Stop waits for cancelled handlers to return.
const cancelGrace = 2 * time.Second

// fetch claims jobs while there is free capacity, then sleeps until an
// executor frees a slot, new work is announced, or the poll interval passes.
func (q *queueRunner) fetch(ctx context.Context) {
	w := q.w
	notifier := w.cfg.Store.Capabilities().Notifier
	poll := time.NewTimer(w.cfg.PollInterval)
	defer poll.Stop()
	backoff := 10 * time.Millisecond
	failing := false // the last claim failed: log when one succeeds again
	for ctx.Err() == nil {
		free := q.capacity - int(q.inflight.Load())
		if free <= 0 {
			select {
			case <-q.freed:
			case <-ctx.Done():
			}
			continue
		}
		var available <-chan struct{}
		if notifier != nil {
			available = notifier.Available(q.name) // before claiming: no lost wake-up
		}
		w.settler.Nudge() // let pending verdicts share the claim's commit
		jobs, err := w.cfg.Store.Claim(ctx, store.ClaimParams{Queue: q.name, Limit: free, LockFor: w.cfg.LockDuration, Worker: w.cfg.ID})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Error("spool: claim failed; retrying", "queue", q.name, "err", err, "after", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			failing = true
			continue
		}
		if failing {
			w.log.Info("spool: claims succeed again", "queue", q.name)
			failing = false
		}
		backoff = 10 * time.Millisecond
		q.inflight.Add(int64(len(jobs)))
		for _, j := range jobs {
			// Renewal covers a job from its claim, so a prefetched job
			// keeps its lock while it waits for an executor.
			q.jobs <- w.running.add(j)
		}
		if len(jobs) == free {
			continue // there may be more
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(w.cfg.PollInterval)
		select {
		case <-available:
		case <-poll.C:
		case <-ctx.Done():
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// execute runs one job and hands its verdict to the settler. ctx is the
// parent of the handler's context; it ends only when Stop's deadline passes.
func (q *queueRunner) execute(ctx context.Context, r *runningJob) {
	w := q.w
	job := r.job
	defer func() {
		q.inflight.Add(-1)
		select {
		case q.freed <- struct{}{}:
		default:
		}
	}()
	if q.stopping.Load() {
		// Claimed ahead but never started: give it back untouched.
		if lockedUntil, lost := w.running.remove(r); !lost {
			q.submit(ctx, store.Verdict{ID: job.ID, Token: job.LockToken, Outcome: store.Release}, lockedUntil)
		}
		return
	}
	h, ok := w.handlerFor(job.Kind)
	if !ok {
		lockedUntil, _ := w.running.remove(r)
		err := fmt.Errorf("no handler registered for kind %q in worker %s", job.Kind, w.cfg.ID)
		q.submit(ctx, verdictFor(job, nil, err, w.cfg.Retry, w.now()), lockedUntil)
		return
	}
	ctx, cancel := context.WithCancelCause(ctx)
	if h.opts.Timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeoutCause(ctx, h.opts.Timeout, fmt.Errorf("spool: job timed out after %v", h.opts.Timeout))
		defer cancelT()
	}
	if !w.running.start(r, cancel) {
		cancel(nil)
		w.running.remove(r)
		w.log.Warn("spool: lock lost while the job waited for an executor; not run, it runs again elsewhere",
			"job", job.ID, "kind", job.Kind)
		return
	}
	result, err := h.call(ctx, job)
	cause := context.Cause(ctx) // nil unless the context ended while the handler ran
	lockedUntil, lost := w.running.remove(r)
	cancel(nil)
	switch {
	case lost:
		w.log.Warn("spool: lock lost while running; verdict dropped, the job runs again elsewhere",
			"job", job.ID, "kind", job.Kind)
		return
	case err != nil && errors.Is(cause, errShutdown):
		q.submit(ctx, store.Verdict{ID: job.ID, Token: job.LockToken, Outcome: store.Release}, lockedUntil)
		return
	case err != nil && cause != nil && !errors.Is(err, cause):
		err = fmt.Errorf("%w (%w)", err, cause) // say why the context ended: a timeout
	}
	q.submit(ctx, verdictFor(job, result, err, h.opts.Retry, w.now()), lockedUntil)
}

func (q *queueRunner) submit(ctx context.Context, v store.Verdict, lockedUntil time.Time) {
	// Submit blocks only while the settler's buffer is full (backpressure);
	// it fails only when the settler stopped, which Stop orders after us.
	// Its context is never cancelled: a job's verdict is handed over even
	// when the job's own context has ended.
	if err := q.w.settler.Submit(context.WithoutCancel(ctx), v, lockedUntil); err != nil {
		q.w.log.Error("spool: verdict not accepted; the job's lock will expire and it runs again",
			"job", v.ID, "outcome", v.Outcome, "err", err)
	}
}

// runningSet tracks claimed jobs until their verdict, so their locks are
// renewed while they wait for an executor and while they run.
type runningSet struct {
	mu   sync.Mutex // guards jobs
	jobs map[*runningJob]struct{}
}

type runningJob struct {
	job         *Job
	cancel      context.CancelCauseFunc // nil until an executor starts the job; guarded by runningSet.mu
	lockedUntil time.Time               // latest lock expiry; guarded by runningSet.mu
	lost        bool                    // renewal was refused; guarded by runningSet.mu
}

// add tracks a claimed job from its claim on, so its lock is renewed while
// it waits for an executor and while it runs.
func (s *runningSet) add(job *Job) *runningJob {
	r := &runningJob{job: job, lockedUntil: job.LockedUntil}
	s.mu.Lock()
	if s.jobs == nil {
		s.jobs = make(map[*runningJob]struct{})
	}
	s.jobs[r] = struct{}{}
	s.mu.Unlock()
	return r
}

// start hands a waiting job the cancel func of its execution; it reports
// false when the job's lock was lost while it waited.
func (s *runningSet) start(r *runningJob, cancel context.CancelCauseFunc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.cancel = cancel
	return !r.lost
}

func (s *runningSet) remove(r *runningJob) (lockedUntil time.Time, lost bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, r)
	return r.lockedUntil, r.lost
}

// all returns the running jobs.
func (s *runningSet) all() []*runningJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*runningJob, 0, len(s.jobs))
	for r := range s.jobs {
		out = append(out, r)
	}
	return out
}

// due returns the running jobs whose lock ends before horizon.
func (s *runningSet) due(horizon time.Time) []*runningJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*runningJob
	for r := range s.jobs {
		if !r.lost && r.lockedUntil.Before(horizon) {
			out = append(out, r)
		}
	}
	return out
}

// renewLoop extends, in one store call per tick, the locks of jobs that have
// used half their lock. A refused renewal means another worker may hold the
// job: its handler's context is cancelled and its verdict dropped.
func (w *Worker) renewLoop(ctx context.Context) {
	lock := w.cfg.LockDuration
	tick := time.NewTicker(lock / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := w.now()
		due := w.running.due(now.Add(lock / 2))
		if len(due) == 0 {
			continue
		}
		rs := make([]store.Renewal, len(due))
		for i, r := range due {
			rs[i] = store.Renewal{ID: r.job.ID, Token: r.job.LockToken, LockFor: lock}
		}
		errs, err := w.cfg.Store.Renew(ctx, rs)
		if err != nil {
			w.log.Error("spool: renewing locks failed; will retry", "jobs", len(rs), "err", err)
			continue
		}
		w.running.mu.Lock()
		for i, r := range due {
			if errs[i] == nil {
				r.lockedUntil = now.Add(lock)
				continue
			}
			r.lost = true
			if r.cancel != nil { // nil while the job waits for an executor
				r.cancel(fmt.Errorf("spool: lock lost: %w", errs[i]))
			}
		}
		w.running.mu.Unlock()
	}
}
