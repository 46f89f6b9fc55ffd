package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/spoolrun/spool/internal/scheduler"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds how long a test waits for something that should happen
// promptly; no test asserts a tight time bound.
const waitTimeout = 10 * time.Second

// start is a whole second, so schedules due every second fall on it.
var start = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)

// open opens a SQLite store whose clock is clock.
func open(t *testing.T, clock clockwork.Clock) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// run starts sch and stops it when the test ends.
func run(t *testing.T, sch *scheduler.Scheduler) {
	t.Helper()
	if err := sch.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sch.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

// sleeping waits until the service sleeps on clock (its only waiter).
func sleeping(t *testing.T, clock *clockwork.FakeClock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("the scheduler never went to sleep: %v", err)
	}
}

// TestFiresEverySecond runs the service on a fake clock, shared with the
// store, against a schedule that is due every second: each second of the
// clock fires one run.
func TestFiresEverySecond(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(start)
	s := open(t, clock)
	if res, err := s.UpsertSchedules(t.Context(), []store.Schedule{{ID: "tick", Spec: "* * * * * *", Kind: "tick", Overlap: store.OverlapAllow}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	fired := make(chan store.FiredRun, 100)
	run(t, scheduler.New(scheduler.Config{Store: s, Clock: clock, OnFire: func(r *store.FireResult) {
		for _, run := range r.Runs {
			fired <- run
		}
	}}))
	for i := range 3 {
		sleeping(t, clock)
		clock.Advance(time.Second)
		select {
		case got := <-fired:
			if want := start.Add(time.Duration(i+1) * time.Second); !got.Slot.Equal(want) {
				t.Errorf("run %d has slot %s, want %s", i, got.Slot, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no run after second %d", i+1)
		}
	}
	select {
	case got := <-fired:
		t.Fatalf("an extra run fired without the clock moving: %+v", got)
	default:
	}
}

// failing is a store whose FireDue fails a few times, then succeeds.
type failing struct {
	store.ScheduleStore
	calls atomic.Int32
}

func (f *failing) FireDue(context.Context, store.FireParams) (*store.FireResult, error) {
	if f.calls.Add(1) <= 2 {
		return nil, errors.New("database is down")
	}
	return &store.FireResult{}, nil
}

func TestRetriesAfterErrors(t *testing.T) {
	t.Parallel()
	f := &failing{}
	clock := clockwork.NewFakeClock()
	run(t, scheduler.New(scheduler.Config{Store: f, Clock: clock, MaxWait: time.Minute}))
	// Each failure backs off (at most 5s); the service must try again after
	// each one, and keep going once the store recovers.
	for want := int32(1); want <= 4; want++ {
		sleeping(t, clock)
		if n := f.calls.Load(); n != want {
			t.Fatalf("%d FireDue calls, want %d", n, want)
		}
		clock.Advance(5 * time.Second)
		if want >= 3 { // recovered: the next call waits for MaxWait
			clock.Advance(time.Minute)
		}
	}
}

// skewed answers FireDue on a clock of its own, offset from the scheduler's:
// the next schedule is always due three seconds after the store's now.
type skewed struct {
	store.ScheduleStore
	clock  *clockwork.FakeClock
	offset time.Duration
	took   time.Duration // how long each call takes, on the clock
	calls  atomic.Int32
}

func (s *skewed) FireDue(context.Context, store.FireParams) (*store.FireResult, error) {
	s.calls.Add(1)
	now := s.clock.Now().Add(s.offset)
	s.clock.Advance(s.took)
	return &store.FireResult{Now: now, NextDue: now.Add(3 * time.Second)}, nil
}

// A FireDue call that takes a while does not delay the next pass: the next
// schedule is due NextDue-Now after the call was made, not after it
// returned (a call of 60 ms once made every slot 60 ms later).
func TestSlowCallDoesNotDelayTheNextPass(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(start)
	// The first call took 1s of the 3s to the next schedule.
	secondCallAfter(t, clock, &skewed{clock: clock, took: time.Second}, 2*time.Second)
}

// secondCallAfter runs the service on f and checks that, once the first
// call returned, the second comes wait later on clock, not sooner.
func secondCallAfter(t *testing.T, clock *clockwork.FakeClock, f *skewed, wait time.Duration) {
	t.Helper()
	run(t, scheduler.New(scheduler.Config{Store: f, Clock: clock, MaxWait: time.Minute}))
	sleeping(t, clock)
	clock.Advance(wait - time.Millisecond)
	sleeping(t, clock)
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("%d FireDue calls before the next schedule was due, want 1", n)
	}
	clock.Advance(time.Millisecond)
	sleeping(t, clock)
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d FireDue calls once the next schedule was due, want 2", n)
	}
}

// The service sleeps for NextDue minus the store's time of the same answer,
// whatever its own clock says: a process whose clock is an hour off fires
// neither early (a busy loop) nor late (MaxWait).
func TestSleepsByTheStoresClock(t *testing.T) {
	t.Parallel()
	for _, offset := range []time.Duration{time.Hour, -time.Hour} {
		t.Run(fmt.Sprint(offset), func(t *testing.T) {
			t.Parallel()
			clock := clockwork.NewFakeClockAt(start)
			secondCallAfter(t, clock, &skewed{clock: clock, offset: offset}, 3*time.Second)
		})
	}
}

func TestConfigErrorsPanic(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]scheduler.Config{
		"no store":        {},
		"oversized batch": {Store: &failing{}, Batch: store.MaxFireBatch + 1},
		"concurrency":     {Store: &failing{}, Concurrency: scheduler.MaxConcurrency + 1},
		"negative wait":   {Store: &failing{}, MaxWait: -time.Second},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with %s did not panic", name)
				}
			}()
			scheduler.New(cfg)
		}()
	}
}

// TestBacklogSharedByConcurrentCalls makes 3,000 schedules due at once and
// fires them in batches of 100 from three concurrent loops: each is fired
// exactly once.
func TestBacklogSharedByConcurrentCalls(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(time.Date(2031, 1, 1, 0, 0, 30, 0, time.UTC))
	s := open(t, clock)
	const n = 3000
	scs := make([]store.Schedule, n)
	for i := range scs {
		scs[i] = store.Schedule{ID: fmt.Sprintf("s%04d", i), Spec: "0 * * * *", Kind: "k"}
	}
	if _, err := s.UpsertSchedules(t.Context(), scs); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour - 30*time.Second) // 01:00: all due
	var (
		mu   sync.Mutex
		seen = map[store.ScheduleRef]int{}
		all  = make(chan struct{})
	)
	run(t, scheduler.New(scheduler.Config{Store: s, Batch: 100, Concurrency: 3, Clock: clock, OnFire: func(r *store.FireResult) {
		mu.Lock()
		defer mu.Unlock()
		for _, run := range r.Runs {
			seen[run.Ref]++
		}
		if len(seen) == n {
			select {
			case <-all:
			default:
				close(all)
			}
		}
	}}))
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatal("not all schedules fired within 30s")
	}
	mu.Lock()
	defer mu.Unlock()
	for ref, k := range seen {
		if k != 1 {
			t.Errorf("%s fired %d times", ref, k)
		}
	}
}
