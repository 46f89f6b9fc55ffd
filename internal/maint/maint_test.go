package maint

import (
	"context"
	"errors"
	"io"
	"log/slog"
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

// waitTimeout bounds how long a test waits for something that should happen
// promptly. It is generous on purpose: tests never assert a tight time bound.
const waitTimeout = 10 * time.Second

// fakeStore answers ReapExpired and Prune from scripts and records the
// calls. Once a script runs out it answers "nothing to do". With hang set,
// calls wait for ctx to end, as a store stuck on a lock would. Other Store
// methods are not implemented (the nil embedded interface panics).
type fakeStore struct {
	store.Store

	mu         sync.Mutex // guards the fields below
	reaps      []reply[store.ReapResult]
	prunes     []reply[int]
	reapCalls  []int
	pruneCalls []store.PruneParams
	hang       bool
	events     store.EventStore // what Capabilities declares; nil: none
	hanging    chan struct{}    // with hang: receives one value as each call starts to hang
}

type reply[T any] struct {
	v   T
	err error
}

func (f *fakeStore) ReapExpired(ctx context.Context, limit int) (store.ReapResult, error) {
	f.mu.Lock()
	f.reapCalls = append(f.reapCalls, limit)
	hang := f.hang
	var r reply[store.ReapResult]
	if len(f.reaps) > 0 {
		r, f.reaps = f.reaps[0], f.reaps[1:]
	}
	f.mu.Unlock()
	if hang {
		f.hanging <- struct{}{}
		<-ctx.Done()
		return store.ReapResult{}, ctx.Err()
	}
	return r.v, r.err
}

func (f *fakeStore) Prune(ctx context.Context, p store.PruneParams) (int, error) {
	f.mu.Lock()
	f.pruneCalls = append(f.pruneCalls, p)
	hang := f.hang
	var r reply[int]
	if len(f.prunes) > 0 {
		r, f.prunes = f.prunes[0], f.prunes[1:]
	}
	f.mu.Unlock()
	if hang {
		f.hanging <- struct{}{}
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return r.v, r.err
}

// passes collects OnPass calls for tests to wait on.
type passes[T any] struct{ ch chan T }

func newPasses[T any]() *passes[T] { return &passes[T]{ch: make(chan T, 1024)} }

func (p *passes[T]) on(v T) { p.ch <- v }

func (p *passes[T]) next(t *testing.T) T {
	t.Helper()
	select {
	case v := <-p.ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatal("no pass reported")
		panic("unreachable")
	}
}

func stopAtCleanup(t *testing.T, s startstop.Service) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Writer(l), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestReaperRepeatsWhileBatchesAreFull(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{reaps: []reply[store.ReapResult]{
		{v: store.ReapResult{Returned: 8, DeadLettered: 2}},
		{v: store.ReapResult{Returned: 10}},
		{v: store.ReapResult{Returned: 3, DeadLettered: 1}},
	}}
	var logs logBuffer
	got := newPasses[ReapPass]()
	// An hour between passes: all three calls must come from the first pass.
	r := NewReaper(ReaperConfig{Store: fs, Interval: time.Hour, Limit: 10, OnPass: got.on, Logger: logs.logger()})
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, r)
	p := got.next(t)
	want := ReapPass{Returned: 21, DeadLettered: 3, Calls: 3}
	if p != want {
		t.Fatalf("pass = %+v, want %+v", p, want)
	}
	fs.mu.Lock()
	calls := append([]int(nil), fs.reapCalls...)
	fs.mu.Unlock()
	if len(calls) != 3 || calls[0] != 10 {
		t.Fatalf("ReapExpired calls = %v, want three with limit 10", calls)
	}
	if s := logs.String(); !strings.Contains(s, "reaped expired locks") || !strings.Contains(s, "returned=21") {
		t.Fatalf("log does not report the counts:\n%s", s)
	}
}

func TestReaperRunsEveryInterval(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{}
	got := newPasses[ReapPass]()
	clock := clockwork.NewFakeClock()
	r := NewReaper(ReaperConfig{Store: fs, Interval: time.Minute, Clock: clock, OnPass: got.on})
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, r)
	for i := range 3 {
		if i > 0 {
			advance(t, clock, time.Minute)
		}
		if p := got.next(t); p.Calls != 1 || p.Err != nil {
			t.Fatalf("pass = %+v, want one empty call", p)
		}
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.reapCalls) != 3 {
		t.Fatalf("%d ReapExpired calls after two intervals, want 3", len(fs.reapCalls))
	}
}

func TestReaperErrorIsLoggedAndNextPassRuns(t *testing.T) {
	t.Parallel()
	boom := errors.New("database is locked")
	fs := &fakeStore{reaps: []reply[store.ReapResult]{{err: boom}, {v: store.ReapResult{Returned: 1}}}}
	var logs logBuffer
	got := newPasses[ReapPass]()
	clock := clockwork.NewFakeClock()
	r := NewReaper(ReaperConfig{Store: fs, Interval: time.Minute, Clock: clock, OnPass: got.on, Logger: logs.logger()})
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, r)
	if p := got.next(t); !errors.Is(p.Err, boom) || p.Calls != 1 {
		t.Fatalf("first pass = %+v, want the store error", p)
	}
	advance(t, clock, time.Minute)
	if p := got.next(t); p.Err != nil || p.Returned != 1 {
		t.Fatalf("second pass = %+v, want one job returned", p)
	}
	if s := logs.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, boom.Error()) {
		t.Fatalf("log does not warn about the failure:\n%s", s)
	}
}

func TestStopCancelsCallInProgress(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{hang: true, hanging: make(chan struct{}, 2)}
	reaped := newPasses[ReapPass]()
	pruned := newPasses[PrunePass]()
	r := NewReaper(ReaperConfig{Store: fs, OnPass: reaped.on})
	ret := NewRetention(RetentionConfig{Store: fs, OnPass: pruned.on})
	if err := startstop.StartAll(t.Context(), r, ret); err != nil {
		t.Fatal(err)
	}
	for range 2 { // both services are stuck in a store call
		select {
		case <-fs.hanging:
		case <-time.After(waitTimeout):
			t.Fatal("the services did not call the store")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := startstop.StopAll(ctx, r, ret); err != nil {
		t.Fatalf("Stop with a hanging store: %v", err)
	}
	if p := reaped.next(t); !errors.Is(p.Err, context.Canceled) {
		t.Fatalf("reap pass = %+v, want it cancelled", p)
	}
	if p := pruned.next(t); !errors.Is(p.Err, context.Canceled) {
		t.Fatalf("prune pass = %+v, want it cancelled", p)
	}
}

func TestRetentionCutoffs(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name string
		cfg  RetentionConfig
		want store.PruneParams
	}{
		{
			name: "defaults",
			want: store.PruneParams{
				CompletedBefore: now.Add(-24 * time.Hour),
				CancelledBefore: now.Add(-24 * time.Hour),
				Limit:           DefaultPruneLimit,
			},
		},
		{
			name: "configured",
			cfg: RetentionConfig{
				CompletedRetention: time.Hour,
				CancelledRetention: KeepForever,
				DeadRetention:      7 * 24 * time.Hour,
				Limit:              50,
			},
			want: store.PruneParams{
				CompletedBefore: now.Add(-time.Hour),
				DeadBefore:      now.Add(-7 * 24 * time.Hour),
				Limit:           50,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := &fakeStore{prunes: []reply[int]{{v: 7}}}
			got := newPasses[PrunePass]()
			cfg := tt.cfg
			cfg.Store, cfg.Interval, cfg.OnPass = fs, time.Hour, got.on
			cfg.Clock = clockwork.NewFakeClockAt(now)
			ret := NewRetention(cfg)
			if err := ret.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			stopAtCleanup(t, ret)
			p := got.next(t)
			if p.Pruned != 7 || p.Calls != 1 || p.Err != nil {
				t.Fatalf("pass = %+v, want 7 pruned in one call", p)
			}
			fs.mu.Lock()
			defer fs.mu.Unlock()
			if len(fs.pruneCalls) != 1 || fs.pruneCalls[0] != tt.want {
				t.Fatalf("Prune calls = %+v, want [%+v]", fs.pruneCalls, tt.want)
			}
		})
	}
}

func TestRetentionRepeatsWhileBatchesAreFull(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{prunes: []reply[int]{{v: 5}, {v: 5}, {v: 2}, {v: 5}}}
	got := newPasses[PrunePass]()
	ret := NewRetention(RetentionConfig{Store: fs, Interval: time.Hour, Limit: 5, OnPass: got.on})
	if err := ret.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, ret)
	if p := got.next(t); p.Pruned != 12 || p.Calls != 3 {
		t.Fatalf("pass = %+v, want 12 pruned in 3 calls", p)
	}
}

func TestRetentionKeepingEverythingCallsNothing(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{}
	got := newPasses[PrunePass]()
	clock := clockwork.NewFakeClock()
	ret := NewRetention(RetentionConfig{
		Store: fs, Interval: time.Minute, Clock: clock, OnPass: got.on,
		CompletedRetention: KeepForever, CancelledRetention: KeepForever,
	})
	if err := ret.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, ret)
	for i := range 2 {
		if i > 0 {
			advance(t, clock, time.Minute)
		}
		if p := got.next(t); p.Calls != 0 {
			t.Fatalf("pass = %+v, want no store call", p)
		}
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.pruneCalls) != 0 {
		t.Fatalf("Prune called %d times, want none", len(fs.pruneCalls))
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	err := ReaperConfig{Interval: -time.Second, Limit: -1}.withDefaults().validate()
	for _, want := range []string{"Store is required", "Interval", "Limit"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("reaper config error %v does not mention %s", err, want)
		}
	}
	err = RetentionConfig{
		Interval: -time.Second, CompletedRetention: -time.Hour, CancelledRetention: -2, DeadRetention: -time.Minute, Limit: -1,
	}.withDefaults().validate()
	for _, want := range []string{"Store is required", "Interval", "CompletedRetention", "CancelledRetention", "DeadRetention", "Limit"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("retention config error %v does not mention %s", err, want)
		}
	}
	mustPanic(t, func() { NewReaper(ReaperConfig{Interval: -time.Second}) })
	mustPanic(t, func() { NewRetention(RetentionConfig{Store: &fakeStore{}, CompletedRetention: -time.Hour}) })
	r := NewReaper(ReaperConfig{Store: &fakeStore{}})
	if r.cfg.Interval != DefaultReapInterval || r.cfg.Limit != DefaultReapLimit || r.cfg.Clock == nil {
		t.Fatalf("reaper defaults not applied: %+v", r.cfg)
	}
	ret := NewRetention(RetentionConfig{Store: &fakeStore{}})
	if ret.cfg.Interval != DefaultRetentionInterval || ret.cfg.DeadRetention != KeepForever ||
		ret.cfg.CompletedRetention != DefaultCompletedRetention || ret.cfg.CancelledRetention != DefaultCancelledRetention {
		t.Fatalf("retention defaults not applied: %+v", ret.cfg)
	}
}

func mustPanic(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Error("a bad config did not panic")
		}
	}()
	f()
}

// advance moves clock by d once the service under test waits on it.
func advance(t *testing.T, clock *clockwork.FakeClock, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("the service never waited on the clock: %v", err)
	}
	clock.Advance(d)
}

func TestStartTwiceFails(t *testing.T) {
	t.Parallel()
	r := NewReaper(ReaperConfig{Store: &fakeStore{}, Interval: time.Hour})
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, r)
	if err := r.Start(t.Context()); !errors.Is(err, startstop.ErrAlreadyStarted) {
		t.Fatalf("second Start = %v, want ErrAlreadyStarted", err)
	}
}

// Capabilities declares only what the test set: the embedded Store is nil.
func (f *fakeStore) Capabilities() store.Capabilities { return store.Capabilities{Events: f.events} }

// fakeEvents records PruneEvents calls and answers from a script.
type fakeEvents struct {
	store.EventStore
	mu      sync.Mutex
	answers []int
	calls   []store.PruneEventsParams
}

func (f *fakeEvents) PruneEvents(_ context.Context, p store.PruneEventsParams) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, p)
	n := 0
	if len(f.answers) > 0 {
		n, f.answers = f.answers[0], f.answers[1:]
	}
	return n, nil
}

func TestRetentionPrunesEventsAndTheInbox(t *testing.T) {
	t.Parallel()
	ev := &fakeEvents{answers: []int{5, 3}}
	fs := &fakeStore{events: ev}
	got := newPasses[PrunePass]()
	clock := clockwork.NewFakeClock()
	ret := NewRetention(RetentionConfig{Store: fs, Interval: time.Hour, Limit: 5, Clock: clock, OnPass: got.on,
		CompletedRetention: KeepForever, CancelledRetention: KeepForever})
	if err := ret.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopAtCleanup(t, ret)
	if p := got.next(t); p.Events != 8 || p.Calls != 2 {
		t.Fatalf("pass = %+v, want 8 events pruned in 2 calls", p)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if want := clock.Now().Add(-DefaultInboxRetention); !ev.calls[0].InboxBefore.Equal(want) || !ev.calls[1].InboxBefore.IsZero() || ev.calls[0].Limit != 5 {
		t.Fatalf("calls = %+v, want the inbox cut at %v once", ev.calls, want)
	}
}
