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

	"go.uber.org/goleak"

	"github.com/spoolrun/spool/internal/scheduler"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
	"github.com/spoolrun/spool/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestFiresEverySecond runs the service on a real clock against a schedule
// that is due every second and waits for three runs.
func TestFiresEverySecond(t *testing.T) {
	s := open(t)
	if res, err := s.UpsertSchedules(t.Context(), []store.Schedule{{ID: "tick", Spec: "* * * * * *", Kind: "tick", Overlap: store.OverlapAllow}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	fired := make(chan store.FiredRun, 100)
	sch, err := scheduler.New(scheduler.Config{Store: s, OnFire: func(r *store.FireResult) {
		for _, run := range r.Runs {
			fired <- run
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sch.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	var last time.Time
	for i := range 3 {
		select {
		case run := <-fired:
			if !run.Slot.After(last) {
				t.Errorf("run %d slot %s is not after %s", i, run.Slot, last)
			}
			last = run.Slot
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d runs in 10s", i)
		}
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
	f := &failing{}
	sch, err := scheduler.New(scheduler.Config{Store: f, MaxWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.calls.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := sch.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load(); n < 4 {
		t.Errorf("%d FireDue calls, want the service to keep trying after failures", n)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := scheduler.New(scheduler.Config{}); err == nil {
		t.Error("New without a store succeeded")
	}
	if _, err := scheduler.New(scheduler.Config{Store: &failing{}, Batch: store.MaxFireBatch + 1}); err == nil {
		t.Error("New with an oversized batch succeeded")
	}
}

// TestBacklogSharedByConcurrentCalls makes 3,000 schedules due at once and
// fires them in batches of 100 from three concurrent loops: each is fired
// exactly once.
func TestBacklogSharedByConcurrentCalls(t *testing.T) {
	clock := storetest.NewClock(time.Date(2031, 1, 1, 0, 0, 30, 0, time.UTC))
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const n = 3000
	scs := make([]store.Schedule, n)
	for i := range scs {
		scs[i] = store.Schedule{ID: fmt.Sprintf("s%04d", i), Spec: "0 * * * *", Kind: "k"}
	}
	if _, err := s.UpsertSchedules(t.Context(), scs); err != nil {
		t.Fatal(err)
	}
	clock.Set(time.Date(2031, 1, 1, 1, 0, 0, 0, time.UTC))
	var (
		mu   sync.Mutex
		seen = map[store.ScheduleRef]int{}
		all  = make(chan struct{})
	)
	sch, err := scheduler.New(scheduler.Config{Store: s, Batch: 100, Concurrency: 3, Now: clock.Now, OnFire: func(r *store.FireResult) {
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
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Error("not all schedules fired within 30s")
	}
	if err := sch.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for ref, k := range seen {
		if k != 1 {
			t.Errorf("%s fired %d times", ref, k)
		}
	}
}
