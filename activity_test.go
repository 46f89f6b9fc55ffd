package spool_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

// retryNow retries a failed job at once.
type retryNow struct{}

func (retryNow) RetryDelay(*spool.Job, int, error) time.Duration { return 0 }

// activityJobs enqueues into queue "mail" of st: n jobs of kind "ok",
// two "flaky" (they fail once, then complete), one "doomed" (one attempt
// allowed, which fails) and one "dead" (the handler dead-letters it). It
// returns how many verdicts their handling settles.
func activityJobs(t *testing.T, st store.Store, n int) int {
	t.Helper()
	var ps []store.EnqueueParams
	for range n {
		ps = append(ps, store.EnqueueParams{Queue: "mail", Kind: "ok"})
	}
	ps = append(ps, store.EnqueueParams{Queue: "mail", Kind: "flaky"}, store.EnqueueParams{Queue: "mail", Kind: "flaky"},
		store.EnqueueParams{Queue: "mail", Kind: "doomed", MaxAttempts: 1}, store.EnqueueParams{Queue: "mail", Kind: "dead"})
	if _, err := st.Enqueue(t.Context(), ps); err != nil {
		t.Fatal(err)
	}
	return n + 2*2 + 1 + 1
}

// activityWorker is a Worker on st for the jobs of activityJobs, which
// heartbeats (and flushes its activity) every hour, or as hb says;
// settled receives the store's answer to each of its verdicts.
func activityWorker(t *testing.T, st store.Store, hooks spool.TestHooks, hb ...spool.HeartbeatConfig) (*spool.Worker, chan error) {
	t.Helper()
	settled := make(chan error, 100)
	hooks.OnSettled = func(_ store.Verdict, err error) { settled <- err }
	heartbeat := spool.HeartbeatConfig{Interval: time.Hour}
	if len(hb) > 0 {
		heartbeat = hb[0]
	}
	w, err := spool.NewWorkerWithHooks(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{"mail": {Concurrency: 2}},
		Retry: retryNow{}, Heartbeat: heartbeat,
		Maintenance: spool.MaintenanceConfig{Disable: true}, Scheduler: spool.SchedulerConfig{Disable: true}}, hooks)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	failed := map[spool.ID]bool{}
	spool.HandleAll(w, func(_ context.Context, job *spool.Job) ([]byte, error) {
		switch job.Kind {
		case "flaky":
			mu.Lock()
			defer mu.Unlock()
			if !failed[job.ID] {
				failed[job.ID] = true
				return nil, errors.New("once")
			}
		case "doomed":
			return nil, errors.New("always")
		case "dead":
			return nil, spool.DeadLetter(errors.New("no point"))
		}
		return nil, nil
	}, nil)
	return w, settled
}

// waitSettled waits for n verdicts, each applied.
func waitSettled(t *testing.T, settled chan error, n int) {
	t.Helper()
	for range n {
		if err := <-settled; err != nil {
			t.Fatalf("a verdict was refused: %v", err)
		}
	}
}

// activityTotals sums the store's activity of the last hour per queue.
func activityTotals(t *testing.T, st store.Store) map[string]store.QueueActivity {
	t.Helper()
	rows, err := st.Capabilities().Activity.Activity(t.Context(), store.AllTenants, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.QueueActivity{}
	for _, r := range rows {
		a := out[r.Queue]
		a.Queue = r.Queue
		a.Add(&r.QueueActivity)
		out[r.Queue] = a
	}
	return out
}

// wantActivity fails the test unless queue mail's activity is what
// activityJobs(n) leads to: n+2 completed, 2 retried, 2 dead, and one
// pickup per claim.
func wantActivity(t *testing.T, st store.Store, n int) {
	t.Helper()
	got := activityTotals(t, st)
	a := got["mail"]
	claims := int64(0)
	for _, c := range a.Pickup {
		claims += c
	}
	if len(got) != 1 || a.Completed != int64(n+2) || a.Failed != 2 || a.Dead != 2 || claims != int64(n+2*2+2) {
		t.Errorf("activity %+v: want only mail, with %d completed, 2 failed, 2 dead and %d claims in its pickup histogram", got, n+2, n+6)
	}
}

// A Worker on a store that keeps activity counts its jobs per queue and
// adds them when it stops.
func TestActivityOfWorker(t *testing.T) {
	t.Parallel()
	st := openTraceStore(t)
	const n = 20
	verdicts := activityJobs(t, st, n)
	w, settled := activityWorker(t, st, spool.TestHooks{})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, settled, verdicts)
	if got := activityTotals(t, st); len(got) != 0 {
		t.Fatalf("activity before the worker flushed: %+v", got)
	}
	if err := w.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantActivity(t, st, n)
}

// flakyActivity is a store whose activity refuses the first adds.
type flakyActivity struct {
	store.Store
	mu    sync.Mutex
	fails int // adds left to refuse
}

func (f *flakyActivity) Capabilities() store.Capabilities {
	c := f.Store.Capabilities()
	c.Activity = f
	return c
}

func (f *flakyActivity) AddActivity(ctx context.Context, counts []store.QueueActivity) error {
	f.mu.Lock()
	refuse := f.fails > 0
	if refuse {
		f.fails--
	}
	f.mu.Unlock()
	if refuse {
		return errors.New("the database is away")
	}
	return f.Store.Capabilities().Activity.AddActivity(ctx, counts)
}

func (f *flakyActivity) Activity(ctx context.Context, tenant string, since time.Time) ([]store.ActivityMinute, error) {
	return f.Store.Capabilities().Activity.Activity(ctx, tenant, since)
}

// A flush that fails keeps its counts: the next one adds them, once.
func TestActivityKeptWhenFlushFails(t *testing.T) {
	t.Parallel()
	st := &flakyActivity{Store: openTraceStore(t), fails: 1}
	const n = 3
	verdicts := activityJobs(t, st, n)
	flushed := make(chan error, 10)
	w, settled := activityWorker(t, st, spool.TestHooks{AfterActivityFlush: func(err error) { flushed <- err }})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, settled, verdicts)
	if err := w.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-flushed; err == nil {
		t.Fatal("the first flush succeeded; the store should have refused it")
	}
	if got := activityTotals(t, st); len(got) != 0 {
		t.Fatalf("activity after a refused flush: %+v", got)
	}
	// The next run's flush adds what the refused one had, and no more.
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-flushed; err != nil {
		t.Fatalf("second flush: %v", err)
	}
	wantActivity(t, st, n)
}

// A remote Worker counts nothing itself (store/remote keeps no activity);
// spool serve counts the claims and verdicts it serves it, once.
func TestActivityThroughServe(t *testing.T) {
	t.Parallel()
	st := openTraceStore(t)
	srv, dial := serveStore(t, st)
	rs := dial()
	if rs.Capabilities().Activity != nil {
		t.Fatal("store/remote declares Activity: remote workers would count their jobs twice")
	}
	const n = 10
	verdicts := activityJobs(t, st, n)
	w, settled := activityWorker(t, rs, spool.TestHooks{})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitSettled(t, settled, verdicts)
	if err := w.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := srv.FlushActivity(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantActivity(t, st, n)
}

// A running Worker adds its activity on the heartbeat's interval, not only
// when it stops.
func TestActivityFlushedWhileRunning(t *testing.T) {
	t.Parallel()
	st := openTraceStore(t)
	const n = 5
	verdicts := activityJobs(t, st, n)
	flushed := make(chan error, 1000)
	w, settled := activityWorker(t, st, spool.TestHooks{AfterActivityFlush: func(err error) { flushed <- err }},
		spool.HeartbeatConfig{Interval: 20 * time.Millisecond, TTL: time.Second})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	waitSettled(t, settled, verdicts)
	// Every flush from now on has every count to add: wait for one after
	// this point that found the store holding them all.
	for {
		if err := <-flushed; err != nil {
			t.Fatalf("flush: %v", err)
		}
		if a := activityTotals(t, st)["mail"]; a.Completed == n+2 && a.Failed == 2 && a.Dead == 2 {
			break
		}
	}
	wantActivity(t, st, n)
}
