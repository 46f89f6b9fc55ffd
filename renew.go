package spool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

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
	job *Job

	// deadline is when the job's lock ends at the earliest, on the worker's
	// clock: the worker's time before the claim, or before the latest
	// successful renewal, plus LockDuration. The store's own timestamps
	// (Job.LockedUntil) are never compared with the worker's clock.
	// Guarded by heldSet.mu.
	deadline time.Time
	// cancel cancels the running handler's context; nil until an executor
	// starts the job. Guarded by heldSet.mu.
	cancel context.CancelCauseFunc
	// lost is set when a renewal was refused: another worker may hold the
	// job. Guarded by heldSet.mu.
	lost bool
}

// add tracks a claimed job whose lock lasts until deadline at the earliest.
func (s *heldSet) add(job *Job, deadline time.Time) *heldJob {
	r := &heldJob{job: job, deadline: deadline}
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
func (s *heldSet) start(r *heldJob, cancel context.CancelCauseFunc) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.cancel = cancel
	return !r.lost
}

// remove stops tracking the job and returns its lock deadline and what
// became of it.
func (s *heldSet) remove(r *heldJob) (deadline time.Time, lost bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, r)
	return r.deadline, r.lost
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

// due returns the jobs whose locks end before renewBy.
func (s *heldSet) due(renewBy time.Time) []*heldJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*heldJob
	for r := range s.jobs {
		if !r.lost && r.deadline.Before(renewBy) {
			out = append(out, r)
		}
	}
	return out
}

// renewer is the service that keeps a run's locks: every quarter of
// LockDuration it extends, in one store call, the locks of held jobs that
// have used half of theirs. A refused renewal means another worker may hold
// the job: its handler's context is cancelled and its verdict dropped.
type renewer struct {
	run  *workerRun
	base startstop.Base
}

// Start starts the ticker before it returns, so that time moved on a fake
// clock after Start is seen.
func (rn *renewer) Start(ctx context.Context) error {
	tick := rn.run.w.clock.NewTicker(rn.run.w.cfg.LockDuration / 4)
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

// tick does one round of renewing.
func (rn *renewer) tick(ctx context.Context) {
	w := rn.run.w
	lock := w.cfg.LockDuration
	now := w.clock.Now()
	due := rn.run.held.due(now.Add(lock / 2))
	if len(due) == 0 {
		return
	}
	rs := make([]store.Renewal, len(due))
	for i, r := range due {
		rs[i] = store.Renewal{ID: r.job.ID, Token: r.job.LockToken, LockFor: lock}
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
			r.deadline = before.Add(lock)
			continue
		}
		r.lost = true
		if r.cancel != nil { // nil while the job waits for an executor
			r.cancel(fmt.Errorf("spool: lock lost: %w", errs[i]))
		}
	}
}
