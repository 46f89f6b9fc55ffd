package crashtest

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool"
)

// TestWorkerRidesOutStoreOutage is contract clause 2 (docs/ARCHITECTURE.md) "not on store outage": the
// store becomes unreachable in the middle of a run, while handlers are
// finishing jobs, and comes back later. Every call the worker makes on its
// own (Claim, Settle, Renew, ReapExpired) fails while it is down.
//
// It proves that the worker
//   - keeps the verdicts reached during the outage (the settler retries
//     them) instead of dropping them or failing the jobs;
//   - resumes claiming by itself when the store is back, with no restart;
//   - completes every job exactly once from the store's view: attempts 0,
//     deliveries 1, no error recorded (the outage is far shorter than the
//     lock, so no lock expired), and from the handlers' view: one run each.
func TestWorkerRidesOutStoreOutage(t *testing.T) {
	t.Parallel()
	const (
		jobs        = 300
		concurrency = 8
		// The handler run that brings outageAt executions sets the store
		// down before returning, so its own verdict meets the outage.
		outageAt = 100
		// The store comes back once the worker has met the outage this many
		// times in each of these calls: the settler has retried, the fetcher
		// has retried, the reaper has failed.
		settleFailures = 3
		claimFailures  = 3
		reapFailures   = 1
	)
	st := openStore(t, "")
	c := newClient(t, st)
	ids := enqueueWork(t, c, jobs, nil)
	f := newFlakyStore(st)

	executions, duringOutage := newTally(), newTally()
	outage := make(chan struct{})
	var startOutage sync.Once
	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:  f,
		Queues: map[string]spool.QueueConfig{"default": {Concurrency: concurrency}},
		// The outage lasts a few retries, a small fraction of the lock; a
		// verdict the worker gave up on would show as a second delivery
		// soon after it.
		LockDuration: 5 * time.Second,
		Maintenance:  spool.MaintenanceConfig{ReapInterval: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	spool.HandleRaw(w, workKind, func(ctx context.Context, job *spool.Job) ([]byte, error) {
		if err := sleepCtx(ctx, rand.N(5*time.Millisecond)); err != nil {
			return nil, err
		}
		if executions.add(job.ID) == outageAt {
			startOutage.Do(func() {
				f.down.Store(true)
				close(outage)
			})
		}
		if f.down.Load() {
			duringOutage.add(job.ID)
		}
		return nil, nil
	}, nil)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		if err := w.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
	t.Cleanup(stop)

	waitClosed(t, outage, "the outage to start")
	deadline := time.After(patience)
	for {
		_, _, failed := f.stats()
		if failed[opSettle] >= settleFailures && failed[opClaim] >= claimFailures && failed[opReap] >= reapFailures {
			break
		}
		if ss := w.Stats().Settle; ss.Abandoned > 0 {
			t.Fatalf("the settler gave up on %d verdicts during the outage (store refused %v)", ss.Abandoned, failed)
		}
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("after %v of outage the worker failed only %v", patience, failed)
		}
	}
	f.down.Store(false)
	_, _, failed := f.stats()

	for _, j := range waitAll(t, c, ids) {
		if j.State != spool.StateCompleted || j.Attempts != 0 || j.Deliveries != 1 || len(j.Errors) != 0 {
			t.Errorf("job %s: state %s, attempts %d, deliveries %d, errors %v; want completed once at its first delivery",
				j.ID, j.State, j.Attempts, j.Deliveries, j.Errors)
		}
		if n := executions.of(j.ID); n != 1 {
			t.Errorf("job %s ran %d times, want 1", j.ID, n)
		}
	}
	stop()
	if duringOutage.sum() == 0 {
		t.Fatal("no handler finished during the outage: the test did not exercise verdicts meeting a dead store")
	}
	ss := w.Stats().Settle
	if ss.Submitted != jobs || ss.Settled != jobs || ss.Refused != 0 || ss.Abandoned != 0 {
		t.Errorf("settler: %d verdicts submitted, %d settled, %d refused, %d abandoned; want %d, %d, 0, 0",
			ss.Submitted, ss.Settled, ss.Refused, ss.Abandoned, jobs, jobs)
	}
	if ss.FlushErrors < int64(failed[opSettle]) {
		t.Errorf("settler counted %d failed flushes, the store refused %d", ss.FlushErrors, failed[opSettle])
	}
	t.Logf("outage after %d executions: refused %v; %d verdicts reached during the outage were kept and applied after it; settler: %d flushes, %d failed",
		outageAt, failed, duringOutage.sum(), ss.Flushes, ss.FlushErrors)
}
