package settle

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start makes and starts a settler over fs with cfg's non-zero fields,
// reporting into the returned recorder, and stops it when the test ends.
func start(t *testing.T, fs *fakeStore, cfg Config) (*Settler, *recorder) {
	t.Helper()
	rec := newRecorder()
	cfg.Store = fs
	cfg.OnResult = rec.onResult
	s := New(cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s, rec
}

func submitAll(t *testing.T, s *Settler, vs []store.Verdict, lockedUntil time.Time) {
	t.Helper()
	for _, v := range vs {
		if err := s.Submit(t.Context(), v, lockedUntil); err != nil {
			t.Fatalf("Submit: %v", err)
		}
	}
}

func requireAllSettled(t *testing.T, fs *fakeStore, got map[store.ID]error) {
	t.Helper()
	for id, err := range got {
		if err != nil {
			t.Fatalf("job %s: result %v, want nil", id, err)
		}
		if j := fs.job(id); j.state != store.StateCompleted || j.settles != 1 {
			t.Fatalf("job %s: state %s after %d settles, want completed once", id, j.state, j.settles)
		}
	}
}

func TestLowLoadFlushesAfterMaxDelay(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	s, rec := start(t, fs, Config{})
	v := fs.claim(1)[0]
	if err := s.Submit(t.Context(), v, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Nothing else arrives: the lone verdict must go out on its own, because
	// of MaxDelay rather than a full batch or its distant lock deadline.
	requireAllSettled(t, fs, rec.wait(t, 1))
	st := s.Stats()
	if st.BatchesDelay != 1 || st.Batches != 1 || st.Settled != 1 || st.Flushes != 1 {
		t.Fatalf("stats = %+v, want one delay batch with one settled verdict", st)
	}
	if sizes := fs.callSizes(); len(sizes) != 1 || sizes[0] != 1 {
		t.Fatalf("Settle calls = %v, want [1]", sizes)
	}
}

// The MaxDelay timer runs on the injected clock: a lone verdict waits until
// the clock has moved MaxDelay on, however long that takes in real time.
func TestMaxDelayRunsOnTheClock(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	clock := clockwork.NewFakeClock()
	s, rec := start(t, fs, Config{Clock: clock, MaxDelay: time.Second})
	v := fs.claim(1)[0]
	if err := s.Submit(t.Context(), v, clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil { // the loop armed its MaxDelay timer
		t.Fatal(err)
	}
	if got := s.Stats().Pending; got != 1 {
		t.Fatalf("pending = %d before the clock moved, want 1", got)
	}
	clock.Advance(time.Second)
	requireAllSettled(t, fs, rec.wait(t, 1))
	if st := s.Stats(); st.BatchesDelay != 1 {
		t.Fatalf("stats = %+v, want one delay batch", st)
	}
}

func TestSubmitWaitReturnsWhenDurable(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	s, rec := start(t, fs, Config{})
	v := fs.claim(1)[0]
	if err := s.SubmitWait(t.Context(), v, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("SubmitWait: %v", err)
	}
	// SubmitWait returned, so the store has already applied the verdict.
	if j := fs.job(v.ID); j.state != store.StateCompleted {
		t.Fatalf("job state after SubmitWait = %s, want completed", j.state)
	}
	rec.wait(t, 1) // OnResult is called for SubmitWait verdicts too
}

func TestBurstWhileFlushBlockedGrowsBatches(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	fs.entered = make(chan int, 16)
	release := fs.block()
	s, rec := start(t, fs, Config{MaxInFlight: 1})

	first := fs.claim(1)
	submitAll(t, s, first, time.Now().Add(time.Minute))
	select {
	case n := <-fs.entered:
		if n != 1 {
			t.Fatalf("first call carries %d verdicts, want 1", n)
		}
	case <-time.After(waitTimeout):
		t.Fatal("first flush did not start")
	}

	// The only flush slot is busy: a burst must pile up for the next batches.
	burst := fs.claim(1000)
	submitAll(t, s, burst, time.Now().Add(time.Minute))
	release()
	requireAllSettled(t, fs, rec.wait(t, 1001))

	sizes := fs.callSizes()
	if len(sizes) < 2 || sizes[0] != 1 {
		t.Fatalf("Settle calls = %v, want [1, ...]", sizes)
	}
	if sizes[1] <= 1 {
		t.Fatalf("Settle calls = %v: the burst was not batched", sizes)
	}
	for _, n := range sizes {
		if n > DefaultMaxBatch {
			t.Fatalf("Settle calls = %v: a batch is over MaxBatch %d", sizes, DefaultMaxBatch)
		}
	}
	if len(sizes) > 1+1000/DefaultMaxBatch+1 {
		t.Fatalf("Settle calls = %v: too many calls for a burst of 1000", sizes)
	}
	if st := s.Stats(); st.LargestBatch <= 1 || st.AverageBatch() <= 1 {
		t.Fatalf("stats = %+v, want batches larger than 1", st)
	}
}

func TestMaxBatchRespected(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	release := fs.block()
	s, rec := start(t, fs, Config{MaxBatch: 7, MaxInFlight: 1, MaxDelay: time.Hour})
	vs := fs.claim(100)
	submitAll(t, s, vs, time.Time{})
	release()
	// 100 = 14*7 + 2: the last two wait for MaxDelay (an hour) until Stop.
	got := rec.wait(t, 98)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for id, err := range rec.wait(t, 2) {
		got[id] = err
	}
	requireAllSettled(t, fs, got)
	total := 0
	for _, n := range fs.callSizes() {
		if n > 7 {
			t.Fatalf("Settle calls = %v: one is over MaxBatch 7", fs.callSizes())
		}
		total += n
	}
	if total != 100 {
		t.Fatalf("Settle calls carried %d verdicts, want 100", total)
	}
	if st := s.Stats(); st.BatchesFull != 14 || st.BatchesStop != 1 || st.LargestBatch != 7 {
		t.Fatalf("stats = %+v, want 14 full batches and one at stop", st)
	}
}

func TestLockDeadlineForcesEarlyFlush(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		margin time.Duration
		locked time.Duration // lock time left at Submit
	}{
		{"default margin", 0, 300 * time.Millisecond},
		{"configured margin", time.Hour, time.Hour + 300*time.Millisecond},
		{"lock already expired", 0, -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := newFakeStore()
			// MaxDelay is an hour: within the test's timeout only the lock
			// deadline can trigger the flush.
			s, rec := start(t, fs, Config{MaxDelay: time.Hour, Margin: tt.margin})
			v := fs.claim(1)[0]
			if err := s.Submit(t.Context(), v, time.Now().Add(tt.locked)); err != nil {
				t.Fatal(err)
			}
			got := rec.wait(t, 1)
			if tt.locked > 0 {
				requireAllSettled(t, fs, got)
			}
			if st := s.Stats(); st.BatchesDeadline != 1 || st.Batches != 1 {
				t.Fatalf("stats = %+v, want one batch cut by the lock deadline", st)
			}
		})
	}
}

func TestEarlierDeadlineReschedules(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	s, rec := start(t, fs, Config{MaxDelay: time.Hour, Margin: time.Hour})
	vs := fs.claim(2)
	// The first verdict's deadline is far away; the second's is near. The
	// loop must notice the earlier deadline and flush both together.
	submitAll(t, s, vs[:1], time.Now().Add(3*time.Hour))
	submitAll(t, s, vs[1:], time.Now().Add(time.Hour+100*time.Millisecond))
	requireAllSettled(t, fs, rec.wait(t, 2))
	if sizes := fs.callSizes(); len(sizes) != 1 || sizes[0] != 2 {
		t.Fatalf("Settle calls = %v, want [2]", sizes)
	}
}

func TestFailedFlushIsRetried(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	fs.failNext(errors.New("disk I/O error"), context.DeadlineExceeded, errors.New("database is locked"))
	s, rec := start(t, fs, Config{RetryDelay: time.Millisecond, MaxRetryDelay: 4 * time.Millisecond})
	vs := fs.claim(50)
	submitAll(t, s, vs, time.Now().Add(time.Minute))
	requireAllSettled(t, fs, rec.wait(t, 50))
	st := s.Stats()
	if st.FlushErrors != 3 || st.Settled != 50 || st.Abandoned != 0 {
		t.Fatalf("stats = %+v, want 3 failed calls then all 50 settled", st)
	}
}

func TestRetryContinuesPastLockDeadline(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	fs.failNext(errors.New("network down"), errors.New("network down"))
	s, rec := start(t, fs, Config{RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Millisecond})
	v := fs.claim(1)[0]
	// The deadline has passed already: the settler must still keep trying,
	// and the store (not the settler) decides whether the token is stale.
	if err := s.Submit(t.Context(), v, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	requireAllSettled(t, fs, rec.wait(t, 1))
	if st := s.Stats(); st.FlushErrors != 2 {
		t.Fatalf("FlushErrors = %d, want 2", st.FlushErrors)
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	for _, storeErr := range []error{store.ErrClosed, &store.LimitError{Field: "batch size", Limit: 1, Got: 2}, store.ErrSchema} {
		t.Run(store.Code(storeErr), func(t *testing.T) {
			t.Parallel()
			fs := newFakeStore()
			fs.failNext(storeErr)
			s, rec := start(t, fs, Config{RetryDelay: time.Millisecond})
			v := fs.claim(1)[0]
			if err := s.Submit(t.Context(), v, time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if err := rec.wait(t, 1)[v.ID]; !errors.Is(err, storeErr) {
				t.Fatalf("result = %v, want %v", err, storeErr)
			}
			if sizes := fs.callSizes(); len(sizes) != 1 {
				t.Fatalf("Settle calls = %v, want exactly one", sizes)
			}
			if st := s.Stats(); st.Abandoned != 1 || st.Settled != 0 {
				t.Fatalf("stats = %+v, want one abandoned verdict", st)
			}
		})
	}
}

func TestPerItemLockLostIsReported(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	var logs strings.Builder
	var logMu sync.Mutex
	s, rec := start(t, fs, Config{Logger: newTestLogger(&logMu, &logs)})
	vs := fs.claim(3)
	fs.expire(vs[1].ID) // its lock expired and the reaper took it back
	submitAll(t, s, vs, time.Now().Add(time.Minute))
	got := rec.wait(t, 3)
	if !errors.Is(got[vs[1].ID], store.ErrLockLost) {
		t.Fatalf("expired job's result = %v, want ErrLockLost", got[vs[1].ID])
	}
	delete(got, vs[1].ID)
	requireAllSettled(t, fs, got)
	st := s.Stats()
	if st.LockLost != 1 || st.Refused != 1 || st.Settled != 2 {
		t.Fatalf("stats = %+v, want 2 settled and 1 lock lost", st)
	}
	if sizes := fs.callSizes(); len(sizes) != 1 {
		t.Fatalf("Settle calls = %v: a per-item refusal must not be retried", sizes)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "verdict refused") || !strings.Contains(logs.String(), vs[1].ID.String()) {
		t.Fatalf("log does not warn about the refused verdict:\n%s", logs.String())
	}
}

func TestSubmitWaitReturnsItemError(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	s, rec := start(t, fs, Config{})
	v := fs.claim(1)[0]
	fs.expire(v.ID)
	if err := s.SubmitWait(t.Context(), v, time.Now().Add(time.Minute)); !errors.Is(err, store.ErrLockLost) {
		t.Fatalf("SubmitWait = %v, want ErrLockLost", err)
	}
	rec.wait(t, 1)
}

func TestStopFlushesEverything(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	s, rec := start(t, fs, Config{MaxDelay: time.Hour, MaxBatch: 100})
	vs := fs.claim(1234)
	submitAll(t, s, vs, time.Time{})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Stop returned: every verdict must already be settled and reported.
	for _, v := range vs {
		if j := fs.job(v.ID); j.state != store.StateCompleted {
			t.Fatalf("job %s is %s after Stop, want completed", v.ID, j.state)
		}
	}
	if len(rec.ch) != len(vs) {
		t.Fatalf("%d results reported by the time Stop returned, want %d", len(rec.ch), len(vs))
	}
	requireAllSettled(t, fs, rec.wait(t, len(vs)))
	if st := s.Stats(); st.BatchesStop == 0 || st.Pending != 0 || st.InFlight != 0 {
		t.Fatalf("stats = %+v, want stop batches and nothing left", st)
	}
	if err := s.Submit(t.Context(), fs.claim(1)[0], time.Time{}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Submit after Stop = %v, want ErrStopped", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStopRetriesFailingFlush(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	fs.failNext(errors.New("busy"), errors.New("busy"))
	s, rec := start(t, fs, Config{MaxDelay: time.Hour, RetryDelay: time.Millisecond})
	vs := fs.claim(10)
	submitAll(t, s, vs, time.Time{})
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	requireAllSettled(t, fs, rec.wait(t, 10))
}

func TestStopDeadlineReportsUnflushed(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	fs.entered = make(chan int, 16)
	release := fs.block() // the store hangs (but honours ctx)
	defer release()
	s, rec := start(t, fs, Config{MaxInFlight: 1})
	vs := fs.claim(10)
	submitAll(t, s, vs[:1], time.Time{})
	<-fs.entered // the first verdict is in a call that hangs
	submitAll(t, s, vs[1:], time.Time{})

	ctx, cancel := context.WithCancel(t.Context())
	cancel() // Stop has no time at all
	if err := s.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want context.Canceled", err)
	}
	// Every verdict, the hanging one and the buffered ones, is reported.
	for id, err := range rec.wait(t, len(vs)) {
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("job %s: result %v, want ErrStopped", id, err)
		}
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if st := s.Stats(); st.Abandoned != int64(len(vs)) {
		t.Fatalf("Abandoned = %d, want %d", st.Abandoned, len(vs))
	}
}

func TestStartContextDoesNotStopSettler(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	rec := newRecorder()
	s := New(Config{Store: fs, OnResult: rec.onResult})
	ctx, cancel := context.WithCancel(t.Context())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	v := fs.claim(1)[0]
	if err := s.SubmitWait(t.Context(), v, time.Time{}); err != nil {
		t.Fatalf("SubmitWait after the Start ctx ended: %v", err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestSubmitBackpressure(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	fs.entered = make(chan int, 16)
	release := fs.block()
	defer release()
	s, rec := start(t, fs, Config{MaxBatch: 2, MaxPending: 2, MaxInFlight: 1})
	vs := fs.claim(4)
	submitAll(t, s, vs[:1], time.Time{})
	<-fs.entered                          // vs[0] is in flight
	submitAll(t, s, vs[1:3], time.Time{}) // the buffer is now full

	full, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Submit(full, vs[3], time.Time{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit into a full buffer with a done ctx = %v, want context.Canceled", err)
	}
	// A Submit without a deadline waits until the store catches up.
	done := make(chan error, 1)
	go func() { done <- s.Submit(t.Context(), vs[3], time.Time{}) }()
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("blocked Submit: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("blocked Submit was not released")
	}
	requireAllSettled(t, fs, rec.wait(t, 4))
}

func TestStopReleasesBlockedSubmit(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	fs.entered = make(chan int, 16)
	release := fs.block()
	defer release()
	s, rec := start(t, fs, Config{MaxBatch: 1, MaxPending: 1, MaxInFlight: 1})
	vs := fs.claim(3)
	submitAll(t, s, vs[:1], time.Time{})
	<-fs.entered
	submitAll(t, s, vs[1:2], time.Time{})
	done := make(chan error, 1)
	go func() { done <- s.Submit(t.Context(), vs[2], time.Time{}) }()

	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(t.Context()) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("blocked Submit during Stop = %v, want ErrStopped", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Stop did not release the blocked Submit")
	}
	release()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	requireAllSettled(t, fs, rec.wait(t, 2))
}

func TestSubmitRejectsInvalidAndStopped(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	s := New(Config{Store: fs})
	v := fs.claim(1)[0]
	if err := s.Submit(t.Context(), v, time.Time{}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Submit before Start = %v, want ErrStopped", err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	if err := s.Start(t.Context()); !errors.Is(err, startstop.ErrAlreadyStarted) {
		t.Fatalf("second Start = %v, want ErrAlreadyStarted", err)
	}
	bad := v
	bad.Token = 0
	if err := s.Submit(t.Context(), bad, time.Time{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Submit without a token = %v, want ErrInvalid", err)
	}
	if st := s.Stats(); st.Submitted != 0 {
		t.Fatalf("Submitted = %d, want 0", st.Submitted)
	}
}

func TestRestartAfterStop(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	s, rec := start(t, fs, Config{})
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	v := fs.claim(1)[0]
	if err := s.SubmitWait(t.Context(), v, time.Time{}); err != nil {
		t.Fatal(err)
	}
	requireAllSettled(t, fs, rec.wait(t, 1))
}

func TestConcurrentSubmitsWithFailuresLoseNothing(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	for range 5 {
		fs.failNext(errors.New("transient"))
	}
	s, rec := start(t, fs, Config{MaxBatch: 64, MaxPending: 256, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Millisecond})
	const producers, each = 8, 500
	var wg sync.WaitGroup
	for range producers {
		vs := fs.claim(each)
		wg.Go(func() {
			for _, v := range vs {
				if err := s.Submit(t.Context(), v, time.Now().Add(time.Minute)); err != nil {
					t.Errorf("Submit: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	requireAllSettled(t, fs, rec.wait(t, producers*each))
	rec.none(t)
	st := s.Stats()
	if st.Submitted != producers*each || st.Settled != producers*each || st.FlushErrors != 5 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	bad := Config{
		MaxBatch:      store.MaxBatch + 1,
		MaxDelay:      -time.Second,
		Margin:        -time.Second,
		MaxInFlight:   -1,
		RetryDelay:    time.Minute,
		MaxRetryDelay: time.Second,
	}
	err := bad.withDefaults().validate()
	if err == nil {
		t.Fatal("validate accepted a bad config")
	}
	for _, want := range []string{"Store is required", "MaxBatch", "MaxDelay", "Margin", "MaxPending", "MaxInFlight", "MaxRetryDelay"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Error("New did not panic on a bad config")
			}
		}()
		New(bad)
	}()
	s := New(Config{Store: newFakeStore()})
	if s.cfg.MaxBatch != DefaultMaxBatch || s.cfg.MaxDelay != DefaultMaxDelay || s.cfg.MaxInFlight != DefaultMaxInFlight || s.cfg.Clock == nil {
		t.Fatalf("defaults not applied: %+v", s.cfg)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	s := New(Config{Store: newFakeStore(), RetryDelay: 10 * time.Millisecond, MaxRetryDelay: time.Second})
	for attempt, want := range map[int]time.Duration{0: 10 * time.Millisecond, 3: 80 * time.Millisecond, 50: time.Second} {
		for range 100 {
			if d := s.backoff(attempt); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

func TestFlushWhenIdle(t *testing.T) {
	t.Parallel()
	fs := newFakeStore()
	fs.entered = make(chan int, 16)
	release := fs.block()
	// MaxDelay is an hour: only a free flush slot can trigger these flushes.
	s, rec := start(t, fs, Config{FlushWhenIdle: true, MaxInFlight: 1, MaxDelay: time.Hour})
	vs := fs.claim(51)
	submitAll(t, s, vs[:1], time.Time{})
	select {
	case <-fs.entered: // the lone verdict went out without waiting
	case <-time.After(waitTimeout):
		t.Fatal("a verdict submitted to an idle settler was not flushed")
	}
	// The only slot is busy: the next 50 accumulate into one batch.
	submitAll(t, s, vs[1:], time.Time{})
	release()
	requireAllSettled(t, fs, rec.wait(t, 51))
	if sizes := fs.callSizes(); len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 50 {
		t.Fatalf("Settle calls = %v, want [1 50]", sizes)
	}
	if st := s.Stats(); st.BatchesIdle != 2 {
		t.Fatalf("stats = %+v, want 2 batches cut because the slot was free", st)
	}
}
