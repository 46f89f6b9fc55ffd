package crashtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool"
)

// TestLockRenewalUnderLoad is contract clause 3 (docs/ARCHITECTURE.md) "one holder at a time" for long
// jobs: fifty jobs run at once, each for five times the lock duration,
// while the reaper looks for expired locks every 20ms. Only renewal keeps
// them: without it every lock would expire four times over.
//
// It proves that each job is delivered exactly once (deliveries 1, no lock
// expiry in its history, one handler run, no handler context cancelled by a
// lost lock) even with every slot of the worker busy, and that renewal and
// the reaper really ran meanwhile.
func TestLockRenewalUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		jobs    = 50
		lock    = 200 * time.Millisecond
		jobTime = 5 * lock
		reap    = 20 * time.Millisecond
	)
	st := openStore(t, "")
	c := newClient(t, st)
	ids := enqueueWork(t, c, jobs, nil) // all waiting before the worker starts: one claim takes them all
	f := newFlakyStore(st)              // never down here: it counts the worker's calls

	runs, interrupted := newTally(), newTally()
	var (
		mu            sync.Mutex // guards running, peak and reapsAtPeak
		running, peak int
		reapsAtPeak   int // reaper calls made when every job was running
	)
	startWorker(t, spool.WorkerConfig{
		Store:        f,
		LockDuration: lock,
		Queues:       map[string]spool.QueueConfig{"default": {Concurrency: jobs}},
		Maintenance:  spool.MaintenanceConfig{ReapInterval: reap},
	}, func(w *spool.Worker) {
		spool.HandleRaw(w, workKind, func(ctx context.Context, job *spool.Job) ([]byte, error) {
			runs.add(job.ID)
			mu.Lock()
			running++
			peak = max(peak, running)
			if running == jobs {
				calls, _, _ := f.stats()
				reapsAtPeak = calls[opReap]
			}
			mu.Unlock()
			defer func() {
				mu.Lock()
				running--
				mu.Unlock()
			}()
			if err := sleepCtx(ctx, jobTime); err != nil {
				interrupted.add(job.ID)
				return nil, err
			}
			return nil, nil
		}, nil)
	})

	for _, j := range waitAll(t, c, ids) {
		if j.State != spool.StateCompleted || j.Deliveries != 1 || j.Attempts != 0 || len(j.Errors) != 0 {
			t.Errorf("job %s: state %s, deliveries %d, attempts %d, errors %v; want completed at its only delivery",
				j.ID, j.State, j.Deliveries, j.Attempts, j.Errors)
		}
		if n := runs.of(j.ID); n != 1 {
			t.Errorf("job %s ran %d times, want 1", j.ID, n)
		}
	}
	if n := interrupted.sum(); n != 0 {
		t.Errorf("%d handlers saw their context cancelled (lock lost)", n)
	}
	calls, items, _ := f.stats()
	mu.Lock()
	defer mu.Unlock()
	// Preconditions: the test means something only if every slot was busy
	// and the reaper kept looking while the jobs ran (it is asked to every
	// 20ms; once per lock duration is plenty to catch a lapsed lock).
	if peak != jobs {
		t.Fatalf("at most %d jobs ran at once, want all %d: the test did not load the worker", peak, jobs)
	}
	if reaps, want := calls[opReap]-reapsAtPeak, int(jobTime/lock); reaps < want {
		t.Fatalf("the reaper ran %d times while the jobs ran, want at least %d: the test did not exercise it", reaps, want)
	}
	// A lock covers lock of the job's jobTime, so each job needs at least
	// jobTime/lock - 1 renewals to be held throughout.
	if want := jobs * (int(jobTime/lock) - 1); items[opRenew] < want {
		t.Errorf("%d lock renewals, want at least %d", items[opRenew], want)
	}
	t.Logf("%d jobs of %v with a %v lock: peak %d running, %d renewals in %d calls, %d reaper calls (%d while all ran) that returned %d jobs",
		jobs, jobTime, lock, peak, items[opRenew], calls[opRenew], calls[opReap], calls[opReap]-reapsAtPeak, items[opReap])
}

// TestPrefetchedJobsKeepTheirLocks is TestLockRenewalUnderLoad with
// prefetch: ten jobs run five times their lock while ten more wait in the
// worker's prefetch buffer for a free slot. A waiting job is claimed and
// must keep its lock, or the reaper returns it, another delivery (here the
// same worker's next claim; with two workers, another process) takes it, and
// the stale delivery still reaches an executor and starts its handler: two
// runs of one job at once, against "one holder at a time" (contract clause 3 (docs/ARCHITECTURE.md)).
//
// Before the fix (renewal covered only jobs whose handler ran) each
// prefetched job here was delivered twice and its handler started twice.
func TestPrefetchedJobsKeepTheirLocks(t *testing.T) {
	t.Parallel()
	const (
		concurrency = 10
		prefetch    = 10
		jobs        = concurrency + prefetch
		lock        = 200 * time.Millisecond
		jobTime     = 5 * lock
	)
	st := openStore(t, "")
	c := newClient(t, st)
	ids := enqueueWork(t, c, jobs, nil)
	runs := newTally()
	startWorker(t, spool.WorkerConfig{
		Store:        st,
		LockDuration: lock,
		Queues:       map[string]spool.QueueConfig{"default": {Concurrency: concurrency, Prefetch: prefetch}},
		Maintenance:  spool.MaintenanceConfig{ReapInterval: 20 * time.Millisecond},
	}, func(w *spool.Worker) {
		spool.HandleRaw(w, workKind, func(ctx context.Context, job *spool.Job) ([]byte, error) {
			runs.add(job.ID)
			return nil, sleepCtx(ctx, jobTime)
		}, nil)
	})
	for _, j := range waitAll(t, c, ids) {
		if j.State != spool.StateCompleted || j.Deliveries != 1 || len(j.Errors) != 0 || runs.of(j.ID) != 1 {
			t.Errorf("job %s: state %s, deliveries %d, errors %v, handler started %d times; want completed at its only delivery, started once",
				j.ID, j.State, j.Deliveries, j.Errors, runs.of(j.ID))
		}
	}
}
