package spool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/internal/activity"
	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

// heldSet tracks a run's claimed jobs until their verdict, so their locks
// are renewed while they wait for an executor and while they run.
type heldSet struct {
	mu   sync.Mutex // guards jobs and the fields of each heldJob marked so
	jobs map[*heldJob]struct{}
}

// heldJob is one claimed job of a run.
type heldJob struct {
	job  *Job
	lock time.Duration // how long each claim or renewal holds it: its queue's lock duration

	// deadline is when the job's lock ends at the earliest, on the worker's
	// clock: the worker's time before the claim, or before the latest
	// successful renewal, plus LockDuration. The store's own timestamps
	// (Job.LockedUntil) are never compared with the worker's clock.
	// Guarded by heldSet.mu.
	deadline time.Time
	// cancel cancels the running handler's context; nil until an executor
	// starts the job. Guarded by heldSet.mu.
	cancel context.CancelCauseFunc
	// giveUpAt is when the worker gives up on the running handler: its
	// timeout plus TimeoutGrace after it started; zero when it has no
	// timeout or has not started. opts are its handler's options. Both are
	// set by start and guarded by heldSet.mu.
	giveUpAt time.Time
	opts     HandlerOptions
	// lost is set when a renewal was refused: another worker may hold the
	// job. Guarded by heldSet.mu.
	lost bool
	// givenUp is set when the worker gave up on the handler: its lock is
	// no longer renewed and its attempt was recorded. Guarded by heldSet.mu.
	givenUp bool
	// ms are the job's metric series; nil without WorkerConfig.Metrics.
	ms *jobSeries
	// act are the activity counters of the job's queue; nil when the
	// store keeps no activity.
	act *activity.Queue
}

// add tracks a claimed job whose lock lasts until deadline at the earliest
// and is renewed for lock at a time.
func (s *heldSet) add(job *Job, deadline time.Time, lock time.Duration) *heldJob {
	r := &heldJob{job: job, deadline: deadline, lock: lock}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil {
		s.jobs = make(map[*heldJob]struct{})
	}
	s.jobs[r] = struct{}{}
	return r
}

// start records that an executor runs the job; it reports false when the
// job's lock was lost while it waited.
func (s *heldSet) start(r *heldJob, cancel context.CancelCauseFunc, giveUpAt time.Time, opts HandlerOptions) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.cancel, r.giveUpAt, r.opts = cancel, giveUpAt, opts
	return !r.lost
}

// remove stops tracking the job and returns its lock deadline and what
// became of it.
func (s *heldSet) remove(r *heldJob) (deadline time.Time, lost, givenUp bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, r)
	return r.deadline, r.lost, r.givenUp
}

// started returns the jobs whose handlers are running.
func (s *heldSet) started() []*heldJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*heldJob
	for r := range s.jobs {
		if r.cancel != nil {
			out = append(out, r)
		}
	}
	return out
}

// giveUp is a job the renewer gave up on, with what its verdict needs.
type giveUp struct {
	r        *heldJob
	deadline time.Time
	opts     HandlerOptions
}

// plan returns, as of now, the jobs that have used half of their lock, and
// marks given up, and returns apart, the running jobs whose handlers are
// past their timeout plus grace.
func (s *heldSet) plan(now time.Time) (renew []*heldJob, giveUps []giveUp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for r := range s.jobs {
		switch {
		case r.lost || r.givenUp:
		case !r.giveUpAt.IsZero() && !now.Before(r.giveUpAt):
			r.givenUp = true
			giveUps = append(giveUps, giveUp{r: r, deadline: r.deadline, opts: r.opts})
		case r.deadline.Before(now.Add(r.lock / 2)):
			renew = append(renew, r)
		}
	}
	return renew, giveUps
}

// renewer is the service that keeps a run's locks: every quarter of the
// shortest lock duration of its queues it extends, in one store call, the locks of held jobs that
// have used half of theirs, and gives up on handlers past their timeout
// plus TimeoutGrace. A refused renewal means another worker may hold the
// job: its handler's context is cancelled and its verdict dropped.
type renewer struct {
	run  *workerRun
	base startstop.Base
}

// Start starts the ticker before it returns, so that time moved on a fake
// clock after Start is seen.
func (rn *renewer) Start(ctx context.Context) error {
	tick := rn.run.w.clock.NewTicker(rn.run.shortestLock() / 4)
	err := rn.base.Start(ctx, func(ctx context.Context) {
		defer tick.Stop()
		rn.loop(ctx, tick)
	})
	if err != nil {
		tick.Stop()
	}
	return err
}

func (rn *renewer) Stop(ctx context.Context) error { return rn.base.Stop(ctx) }

func (rn *renewer) loop(ctx context.Context, tick clockwork.Ticker) {
	w := rn.run.w
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.Chan():
		}
		rn.tick(ctx)
		if f := w.hooks.AfterRenew; f != nil {
			f()
		}
	}
}

// tick does one round of giving up and renewing.
func (rn *renewer) tick(ctx context.Context) {
	w := rn.run.w
	now := w.clock.Now()
	due, giveUps := rn.run.held.plan(now)
	for _, g := range giveUps {
		rn.giveUp(ctx, g)
	}
	if len(due) == 0 {
		return
	}
	rs := make([]store.Renewal, len(due))
	for i, r := range due {
		rs[i] = store.Renewal{ID: r.job.ID, Token: r.job.LockToken, LockFor: r.lock}
	}
	// As for claims: the lock is measured from before the call, on the
	// worker's clock.
	before := w.clock.Now()
	errs, err := w.cfg.Store.Renew(ctx, rs)
	if err == nil && len(errs) != len(rs) {
		err = fmt.Errorf("spool: store returned %d results for %d renewals", len(errs), len(rs))
	}
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("spool: renewing locks failed; will retry", "jobs", len(rs), "err", err)
		}
		return
	}
	rn.run.held.mu.Lock()
	defer rn.run.held.mu.Unlock()
	for i, r := range due {
		if errs[i] == nil {
			r.deadline = before.Add(r.lock)
			continue
		}
		r.lost = true
		if r.ms != nil {
			r.ms.lost.Inc()
		}
		if r.cancel != nil { // nil while the job waits for an executor
			r.cancel(fmt.Errorf("spool: lock lost: %w", errs[i]))
		}
	}
}

// errGaveUp is the error the retry policy is given for a handler the worker
// gave up on.
var errGaveUp = errors.New("spool: handler did not return within its timeout plus grace")

// giveUp records a handler that is still running past its timeout plus
// TimeoutGrace as a failed attempt, so its job runs again per the retry
// policy; its lock is no longer renewed. The handler keeps its executor slot
// until it returns, and its verdict is then dropped.
func (rn *renewer) giveUp(ctx context.Context, g giveUp) {
	w := rn.run.w
	job := g.r.job
	w.givenUp.Add(1)
	w.stuck.Add(1)
	w.log.Error("spool: handler ignores its context: giving up on it; its goroutine keeps an executor slot until it returns",
		jobAttrs(job, "timeout", g.opts.Timeout, "grace", w.cfg.TimeoutGrace)...)
	v := w.giveUpVerdict(job, g.opts)
	var err error
	if g.r.ms != nil || g.r.act != nil {
		err = w.settler.SubmitTag(ctx, v, g.deadline, g.r) // counted when settled, as the executors' verdicts
	} else {
		err = w.settler.Submit(ctx, v, g.deadline)
	}
	if err != nil {
		w.log.Error("spool: timed-out verdict not accepted; the job runs again once its lock expires", jobAttrs(job, "err", err)...)
	}
}

// giveUpVerdict is the verdict of a job whose handler (with opts) the
// worker gave up on: a failed attempt, retried per the retry policy.
func (w *Worker) giveUpVerdict(job *Job, opts HandlerOptions) store.Verdict {
	msg := fmt.Sprintf("spool: handler did not return within %v (its %v timeout plus %v TimeoutGrace); the worker gave up on it and the job runs again",
		opts.Timeout+w.cfg.TimeoutGrace, opts.Timeout, w.cfg.TimeoutGrace)
	return store.Verdict{
		ID:      job.ID,
		Token:   job.LockToken,
		Outcome: store.Fail,
		Error:   &store.AttemptError{Message: msg},
		Delay:   max(opts.Retry.RetryDelay(job, job.Attempts+1, errGaveUp), 0),
	}
}
