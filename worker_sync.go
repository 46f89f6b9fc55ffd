package spool

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spoolrun/spool/internal/testhook"
	"github.com/spoolrun/spool/store"
)

// The synchronous path behind package spooltest: one job claimed, run in
// the caller's goroutine and settled before returning. It is reached only
// through internal/testhook, so it adds nothing to the public API.

func init() {
	testhook.WorkOne = func(ctx context.Context, worker any, queue string) (testhook.Attempt, error) {
		w, err := hookedWorker(worker)
		if err != nil {
			return testhook.Attempt{}, err
		}
		return w.workOne(ctx, queue)
	}
	testhook.Store = func(worker any) (store.Store, error) {
		w, err := hookedWorker(worker)
		if err != nil {
			return nil, err
		}
		return w.cfg.Store, nil
	}
}

func hookedWorker(worker any) (*Worker, error) {
	w, ok := worker.(*Worker)
	if !ok || w == nil {
		return nil, fmt.Errorf("spool: %T is not a *spool.Worker made by NewWorker", worker)
	}
	return w, nil
}

// workOne claims one available job of queue and works it as an executor
// would, in the calling goroutine: the handler for its kind (or the
// catch-all), its timeout on the worker's clock, panics recovered, the
// verdict its return gives under its retry policy, and giving up on a
// handler that returns past its timeout plus TimeoutGrace. The verdict is
// written with one Settle call before workOne returns. Nothing renews the
// job's lock meanwhile; a store whose reaper does not run lets a verdict
// past the lock through (see store.Store.Settle).
func (w *Worker) workOne(ctx context.Context, queue string) (testhook.Attempt, error) {
	if !slices.ContainsFunc(w.queues, func(q queueSpec) bool { return q.name == queue }) {
		return testhook.Attempt{}, fmt.Errorf("spool: the worker does not work queue %q (add it to WorkerConfig.Queues)", queue)
	}
	w.mu.Lock()
	running := w.run != nil
	w.mu.Unlock()
	if running {
		return testhook.Attempt{}, errors.New("spool: the worker is running; work jobs one at a time only with a worker that is not started")
	}
	st := w.cfg.Store
	jobs, err := st.Claim(ctx, store.ClaimParams{Queue: queue, Limit: 1, LockFor: w.cfg.LockDuration, Worker: w.cfg.ID})
	if err != nil {
		return testhook.Attempt{}, err
	}
	if len(jobs) == 0 {
		return testhook.Attempt{}, nil
	}
	job := jobs[0]
	a := testhook.Attempt{Job: job}
	if h, ok := w.handlerFor(job.Kind); !ok {
		a.Err = w.noHandler(job.Kind)
		a.Verdict = verdictFor(job, nil, a.Err, w.cfg.Retry)
	} else {
		hctx, _, release, giveUpAt := w.handlerContext(ctx, h.opts)
		result, err := h.call(hctx, job)
		a.Err = withCause(err, context.Cause(hctx))
		release()
		if !giveUpAt.IsZero() && !w.clock.Now().Before(giveUpAt) {
			// A running worker would have given up on the handler by now
			// and recorded the attempt as failed; what it returned is
			// dropped.
			a.Verdict = w.giveUpVerdict(job, h.opts)
			if a.Err != nil {
				a.Err = fmt.Errorf("%w; then it returned: %w", errGaveUp, a.Err)
			} else {
				a.Err = errGaveUp
			}
		} else {
			a.Verdict = verdictFor(job, result, a.Err, h.opts.Retry)
		}
	}
	// The verdict is written even when ctx ended while the handler ran, as
	// the settler writes every verdict it was handed.
	sctx := context.WithoutCancel(ctx)
	errs, err := st.Settle(sctx, []store.Verdict{a.Verdict})
	if err == nil && len(errs) != 1 {
		err = fmt.Errorf("spool: store returned %d results for 1 verdict", len(errs))
	}
	if err != nil {
		return a, fmt.Errorf("spool: settle job %s: %w", job.ID, err)
	}
	a.Refused = errs[0]
	if a.Settled, err = st.Get(sctx, job.ID); err != nil {
		return a, fmt.Errorf("spool: read job %s after its verdict: %w", job.ID, err)
	}
	return a, nil
}
