package crashtest

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolrun/spool"
)

// TestStopMidRunLosesNothingAndLeaksNothing is graceful shutdown (STYLE
// "Graceful shutdown is designed", contract clause 2 (docs/ARCHITECTURE.md) "not on shutdown"): a worker
// busy with many jobs, whose handlers take a random 0–50ms and honour their
// context, is stopped mid-run with a deadline shorter than most handlers.
// A few "hold" jobs run until their context ends, so that whatever the
// timing, Stop always finds handlers it must cancel.
//
// It proves that Stop
//   - leaves no goroutine of the worker behind (goleak, right after Stop);
//   - loses no verdict: exactly the jobs whose handler returned nil are
//     completed, each at its only delivery;
//   - consumes nothing it did not finish: every other job is available with
//     no attempt spent, its delivery given back and no error recorded
//     (cancelled handlers and prefetched jobs are released, not failed);
//   - leaves nothing running, scheduled or dead, so that a fresh worker then
//     finishes every job, each completed by exactly one successful handler
//     run over both workers.
//
// It does not run in parallel: goleak looks at every goroutine of the
// process, and other tests' goroutines would be reported as leaks.
func TestStopMidRunLosesNothingAndLeaksNothing(t *testing.T) {
	const (
		jobs        = 1000
		holds       = 8
		concurrency = 32
		prefetch    = 16
		// stopAfter completions the worker is stopped, with stopDeadline
		// for its running handlers to finish.
		stopAfter    = 200
		stopDeadline = 5 * time.Millisecond
		maxWork      = 50 * time.Millisecond
		holdKind     = "hold"
	)
	st := openStore(t, "")
	c := newClient(t, st)
	ctx := context.Background()
	ids := enqueueWork(t, c, jobs, nil)
	holdItems := make([]spool.Item, holds)
	for i := range holdItems {
		// Claimed first, so they hold their slots through the run.
		holdItems[i] = spool.RawItem(holdKind, nil, &spool.EnqueueOptions{Priority: -1})
	}
	res, err := c.EnqueueMany(ctx, holdItems...)
	if err != nil {
		t.Fatal(err)
	}
	var holdIDs []spool.ID
	for _, r := range res {
		holdIDs = append(holdIDs, r.ID)
	}

	// What the handlers did, over both workers.
	completions, cancels, held := newTally(), newTally(), newTally()
	enough, allHeld := completions.when(stopAfter), held.when(holds)
	releaseHolds := make(chan struct{}) // closed before the second worker starts
	handle := func(w *spool.Worker) {
		spool.HandleRaw(w, workKind, func(ctx context.Context, job *spool.Job) ([]byte, error) {
			if err := sleepCtx(ctx, rand.N(maxWork+1)); err != nil {
				cancels.add(job.ID)
				return nil, err
			}
			completions.add(job.ID)
			return nil, nil
		}, nil)
		spool.HandleRaw(w, holdKind, func(ctx context.Context, job *spool.Job) ([]byte, error) {
			held.add(job.ID)
			select {
			case <-releaseHolds:
				completions.add(job.ID)
				return nil, nil
			case <-ctx.Done():
				cancels.add(job.ID)
				return nil, context.Cause(ctx)
			}
		}, nil)
	}
	cfg := spool.WorkerConfig{
		Store:  st,
		Queues: map[string]spool.QueueConfig{"default": {Concurrency: concurrency, Prefetch: prefetch}},
	}

	// The store's goroutines (its writer, database/sql's) are not the
	// worker's: they live until the store is closed.
	beforeWorker := goleak.IgnoreCurrent()
	w, err := spool.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	handle(w)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, allHeld, "the hold jobs to start")
	waitClosed(t, enough, "the first completions")
	stopCtx, cancel := context.WithTimeout(ctx, stopDeadline)
	err = w.Stop(stopCtx)
	cancel()
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	goleak.VerifyNone(t, beforeWorker)

	completed, released := 0, 0
	for _, j := range listAll(t, st) {
		done := completions.of(j.ID)
		switch {
		case j.State == spool.StateCompleted && done == 1 && j.Attempts == 0 && j.Deliveries == 1:
			completed++
		case j.State == spool.StateAvailable && done == 0 && j.Attempts == 0 && j.Deliveries == 0 && len(j.Errors) == 0:
			released++
		default:
			t.Errorf("job %s (%s) after Stop: state %s, attempts %d, deliveries %d, errors %v; its handler returned nil %d times",
				j.ID, j.Kind, j.State, j.Attempts, j.Deliveries, j.Errors, done)
		}
	}
	if completed+released != jobs+holds {
		t.Fatalf("after Stop: %d completed + %d available of %d jobs", completed, released, jobs+holds)
	}
	if completed != completions.sum() {
		t.Errorf("%d jobs completed but %d handler runs returned nil before Stop returned", completed, completions.sum())
	}
	for _, id := range holdIDs {
		if cancels.of(id) != 1 {
			t.Errorf("hold job %s: cancelled %d times by Stop, want 1", id, cancels.of(id))
		}
	}
	t.Logf("Stop after %d completions with a %v deadline: %d completed, %d released (%d handlers cancelled, %d of them hold jobs)",
		stopAfter, stopDeadline, completed, released, cancels.sum(), holds)

	// A fresh worker finishes the rest.
	close(releaseHolds)
	startWorker(t, cfg, handle)
	for _, j := range waitAll(t, c, slices.Concat(ids, holdIDs)) {
		if j.State != spool.StateCompleted || j.Attempts != 0 || j.Deliveries != 1 || len(j.Errors) != 0 {
			t.Errorf("job %s: state %s, attempts %d, deliveries %d, errors %v; want completed at its first counted delivery",
				j.ID, j.State, j.Attempts, j.Deliveries, j.Errors)
		}
		if n := completions.of(j.ID); n != 1 {
			t.Errorf("job %s: handler returned nil %d times, want 1", j.ID, n)
		}
	}
	if got := completions.sum(); got != jobs+holds {
		t.Errorf("%d successful handler runs for %d jobs", got, jobs+holds)
	}
}
