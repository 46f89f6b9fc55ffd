package loader_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.uber.org/goleak"

	"github.com/spoolrun/spool/loader"
	"github.com/spoolrun/spool/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness is a Loader under test with a fake clock and its hooks wired to
// channels, so tests wait on events instead of sleeping.
type harness[V any] struct {
	*loader.Loader[string, V]
	clock   *clockwork.FakeClock
	joined  chan string // a lookup started or joined a load
	settled chan string // a load's outcome was stored and delivered
}

// newHarness returns a Loader on a fake clock, with no jitter unless opts
// asks for some; it is closed and checked for loads left in flight when
// the test ends.
func newHarness[V any](t *testing.T, load func(context.Context, string) (V, error), opts loader.Options[string, V]) *harness[V] {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	opts.Clock = clock
	if opts.Jitter == 0 {
		opts.Jitter = -1
	}
	l, err := loader.New(load, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness[V]{Loader: l, clock: clock, joined: make(chan string, 4096), settled: make(chan string, 4096)}
	loader.SetHooks(l,
		func(k string) { h.joined <- k },
		func(k string) { h.settled <- k },
	)
	t.Cleanup(func() {
		l.Close()
		if n := loader.InFlight(l); n != 0 {
			t.Errorf("%d loads left in flight after Close", n)
		}
	})
	return h
}

// waitJoined waits until n lookups have started or joined loads.
func (h *harness[V]) waitJoined(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-h.joined:
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for lookups to join a load")
		}
	}
}

// waitSettled waits for the next load to settle and returns its key.
func (h *harness[V]) waitSettled(t *testing.T) string {
	t.Helper()
	select {
	case k := <-h.settled:
		return k
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a load to settle")
		return ""
	}
}

// counter is a load function that answers from fn and counts its calls.
type counter[V any] struct {
	calls atomic.Int64
	fn    func(ctx context.Context, key string, call int64) (V, error)
}

func (c *counter[V]) load(ctx context.Context, key string) (V, error) {
	return c.fn(ctx, key, c.calls.Add(1))
}

// versions answers key@1, key@2, ... on successive calls.
func versions() *counter[string] {
	return &counter[string]{fn: func(_ context.Context, key string, call int64) (string, error) {
		return fmt.Sprintf("%s@%d", key, call), nil
	}}
}

func mustGet[V comparable](t *testing.T, l *loader.Loader[string, V], key string, want V) {
	t.Helper()
	got, err := l.Get(t.Context(), key)
	if err != nil || got != want {
		t.Fatalf("Get(%q) = %v, %v; want %v, nil", key, got, err, want)
	}
}

func assertCalls[V any](t *testing.T, c *counter[V], want int64) {
	t.Helper()
	if got := c.calls.Load(); got != want {
		t.Fatalf("load called %d times, want %d", got, want)
	}
}

func TestStampedeLoadsOnce(t *testing.T) {
	t.Parallel()
	const n = 1000
	release := make(chan struct{})
	c := &counter[string]{fn: func(_ context.Context, key string, _ int64) (string, error) {
		<-release // a slow database: 100 ms or more, until the test says
		return "value of " + key, nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{})

	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Go(func() {
			v, err := h.Get(context.Background(), "hot")
			if err != nil {
				t.Error(err)
			}
			results <- v
		})
	}
	h.waitJoined(t, n) // all n are waiting on the one load
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "value of hot" {
			t.Fatalf("got %q", v)
		}
	}
	assertCalls(t, c, 1)
	if k := loader.InFlight(h.Loader); k != 0 {
		t.Fatalf("%d loads in flight after the stampede", k)
	}
	s := h.Stats()
	if s.Loads != 1 || s.Misses != n || s.Coalesced != n-1 {
		t.Fatalf("stats = %+v; want 1 load, %d misses, %d coalesced", s, n, n-1)
	}
}

func TestWaiterCancelDoesNotCancelLoad(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var loadCtxErr atomic.Value
	type key struct{}
	var gotValue atomic.Value
	c := &counter[string]{fn: func(ctx context.Context, _ string, _ int64) (string, error) {
		<-release
		loadCtxErr.Store(fmt.Sprint(ctx.Err()))
		gotValue.Store(fmt.Sprint(ctx.Value(key{})))
		return "v", nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{})

	type result struct {
		v   string
		err error
	}
	get := func(ctx context.Context) chan result {
		ch := make(chan result, 1)
		go func() {
			v, err := h.Get(ctx, "k")
			ch <- result{v, err}
		}()
		return ch
	}
	leaderCtx, cancelLeader := context.WithCancel(context.WithValue(t.Context(), key{}, "from the first caller"))
	leader := get(leaderCtx)
	h.waitJoined(t, 1)
	waiterCtx, cancelWaiter := context.WithCancel(t.Context())
	waiter := get(waiterCtx)
	patient := get(t.Context())
	h.waitJoined(t, 2)

	// Both the waiter and the caller that started the load give up: they
	// return at once, while the load still runs.
	cancelWaiter()
	if r := <-waiter; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled waiter got %v, %v", r.v, r.err)
	}
	cancelLeader()
	if r := <-leader; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled leader got %v, %v", r.v, r.err)
	}

	close(release)
	if r := <-patient; r.err != nil || r.v != "v" {
		t.Fatalf("patient waiter got %v, %v", r.v, r.err)
	}
	if got := loadCtxErr.Load(); got != "<nil>" {
		t.Fatalf("the load's context ended: %v", got)
	}
	if got := gotValue.Load(); got != "from the first caller" {
		t.Fatalf("the load's context lost the first caller's values: %v", got)
	}
	h.waitSettled(t)
	if v, ok := h.Peek("k"); !ok || v != "v" {
		t.Fatalf("Peek = %q, %v; the load was not cached", v, ok)
	}
	assertCalls(t, c, 1)
}

func TestDoneContextStartsNoLoad(t *testing.T) {
	t.Parallel()
	c := versions()
	h := newHarness(t, c.load, loader.Options[string, string]{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := h.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a done context = %v", err)
	}
	assertCalls(t, c, 0)
}

func TestPanicBecomesErrorForEveryWaiter(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := &counter[string]{fn: func(context.Context, string, int64) (string, error) {
		<-release
		panic("boom")
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{})

	const n = 10
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := h.Get(context.Background(), "k")
			errs <- err
		}()
	}
	h.waitJoined(t, n)
	close(release)
	for range n {
		var pe *loader.PanicError
		if err := <-errs; !errors.As(err, &pe) || pe.Value != "boom" || !strings.Contains(string(pe.Stack), "loader_test") {
			t.Fatalf("waiter got %v; want a *PanicError with the value and the stack", err)
		}
	}
	h.waitSettled(t)
	if k := loader.InFlight(h.Loader); k != 0 {
		t.Fatalf("%d loads in flight after the panic", k)
	}
	// The panic is cached as an error, for ErrorTTL.
	var pe *loader.PanicError
	if _, err := h.Get(t.Context(), "k"); !errors.As(err, &pe) {
		t.Fatalf("Get after the panic = %v", err)
	}
	assertCalls(t, c, 1)
	if s := h.Stats(); s.Panics != 1 || s.LoadErrors != 1 || s.ErrorsServed != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestPanicWithErrorUnwraps(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(_ context.Context, key string) (int, error) {
		return int(key[len(key)]), nil // index out of range: a runtime error
	}, loader.Options[string, int]{})
	_, err := h.Get(t.Context(), "k")
	var re runtime.Error
	if !errors.As(err, &re) {
		t.Fatalf("Get = %v; want a *PanicError wrapping the runtime.Error", err)
	}
}

func TestGoexitBecomesError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(context.Context, string) (string, error) {
		runtime.Goexit()
		return "", nil
	}, loader.Options[string, string]{})
	var pe *loader.PanicError
	if _, err := h.Get(t.Context(), "k"); !errors.As(err, &pe) || pe.Value != "runtime.Goexit" {
		t.Fatalf("Get = %v; want a *PanicError for runtime.Goexit", err)
	}
}

func TestErrorCachedWithBackoff(t *testing.T) {
	t.Parallel()
	down := errors.New("database down")
	var healthy atomic.Bool
	c := &counter[string]{fn: func(context.Context, string, int64) (string, error) {
		if healthy.Load() {
			return "v", nil
		}
		return "", down
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{ErrorTTL: time.Second, MaxErrorTTL: 4 * time.Second})
	getErr := func() {
		t.Helper()
		if _, err := h.Get(t.Context(), "k"); !errors.Is(err, down) {
			t.Fatalf("Get = %v; want %v", err, down)
		}
	}

	getErr()
	assertCalls(t, c, 1)
	getErr() // cached for 1s: no load
	assertCalls(t, c, 1)

	// Each failure doubles the wait: 1s, 2s, 4s, then capped at 4s.
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		h.clock.Advance(wait - time.Nanosecond)
		getErr()
		assertCalls(t, c, int64(i+1))
		h.clock.Advance(time.Nanosecond)
		getErr()
		assertCalls(t, c, int64(i+2))
	}

	// A success resets the backoff.
	healthy.Store(true)
	h.clock.Advance(4 * time.Second)
	mustGet(t, h.Loader, "k", "v")
	healthy.Store(false)
	h.clock.Advance(time.Minute) // the value expires
	getErr()
	calls := c.calls.Load()
	h.clock.Advance(time.Second)
	getErr()
	assertCalls(t, c, calls+1)
}

func TestErrorTTLNegativeDoesNotCache(t *testing.T) {
	t.Parallel()
	c := &counter[string]{fn: func(context.Context, string, int64) (string, error) {
		return "", errors.New("nope")
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{ErrorTTL: -1})
	for range 3 {
		if _, err := h.Get(t.Context(), "k"); err == nil {
			t.Fatal("Get succeeded")
		}
	}
	assertCalls(t, c, 3)
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	c := versions()
	h := newHarness(t, c.load, loader.Options[string, string]{TTL: time.Minute})
	mustGet(t, h.Loader, "k", "k@1")
	h.clock.Advance(time.Minute - time.Nanosecond)
	mustGet(t, h.Loader, "k", "k@1")
	if _, ok := h.Peek("k"); !ok {
		t.Fatal("Peek missed a fresh value")
	}
	h.clock.Advance(time.Nanosecond)
	if _, ok := h.Peek("k"); ok {
		t.Fatal("Peek returned an expired value")
	}
	mustGet(t, h.Loader, "k", "k@2")
	assertCalls(t, c, 2)
	if s := h.Stats(); s.Hits != 1 || s.Misses != 2 {
		t.Fatalf("stats = %+v; want 1 hit, 2 misses", s)
	}
}

func TestRefreshAheadServesOldValueAndReloadsOnce(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := &counter[string]{fn: func(_ context.Context, key string, call int64) (string, error) {
		if call > 1 {
			<-release
		}
		return fmt.Sprintf("%s@%d", key, call), nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{TTL: time.Minute, RefreshAfter: 30 * time.Second})
	mustGet(t, h.Loader, "k", "k@1")
	h.waitSettled(t)

	h.clock.Advance(30 * time.Second)
	// The reads after RefreshAfter get the old value at once, though the
	// reload blocks; only the first starts it.
	for range 5 {
		mustGet(t, h.Loader, "k", "k@1")
	}
	if _, err := h.GetMany(t.Context(), []string{"k"}); err != nil {
		t.Fatal(err)
	}
	close(release)
	h.waitSettled(t)
	mustGet(t, h.Loader, "k", "k@2")
	assertCalls(t, c, 2)
	if s := h.Stats(); s.Refreshes != 1 || s.Misses != 1 {
		t.Fatalf("stats = %+v; want 1 refresh and only the first Get missing", s)
	}

	// The refreshed value is fresh for a full TTL from its reload.
	h.clock.Advance(59 * time.Second)
	if v, ok := h.Peek("k"); !ok || v != "k@2" {
		t.Fatalf("Peek = %q, %v", v, ok)
	}
}

func TestRefreshJitterBounds(t *testing.T) {
	t.Parallel()
	c := versions()
	h := newHarness(t, c.load, loader.Options[string, string]{TTL: time.Minute, RefreshAfter: 20 * time.Second, Jitter: 0.5})
	mustGet(t, h.Loader, "k", "k@1")
	h.waitSettled(t)
	// Jitter 0.5 makes the refresh due between 10s and 20s.
	h.clock.Advance(10*time.Second - time.Nanosecond)
	mustGet(t, h.Loader, "k", "k@1")
	if s := h.Stats(); s.Refreshes != 0 {
		t.Fatalf("refreshed before RefreshAfter*(1-Jitter): %+v", s)
	}
	h.clock.Advance(10*time.Second + time.Nanosecond)
	mustGet(t, h.Loader, "k", "k@1")
	h.waitSettled(t)
	mustGet(t, h.Loader, "k", "k@2")
}

func TestRefreshFailureKeepsValue(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	c := &counter[string]{fn: func(_ context.Context, key string, call int64) (string, error) {
		if failing.Load() {
			return "", errors.New("flaky")
		}
		return fmt.Sprintf("%s@%d", key, call), nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{
		TTL: time.Minute, RefreshAfter: 30 * time.Second, ErrorTTL: 5 * time.Second,
	})
	mustGet(t, h.Loader, "k", "k@1")
	h.waitSettled(t)

	failing.Store(true)
	h.clock.Advance(30 * time.Second)
	mustGet(t, h.Loader, "k", "k@1") // starts the refresh, which fails
	h.waitSettled(t)
	mustGet(t, h.Loader, "k", "k@1") // still fresh; no retry before the backoff
	assertCalls(t, c, 2)

	failing.Store(false)
	h.clock.Advance(5 * time.Second)
	mustGet(t, h.Loader, "k", "k@1") // retries the refresh
	h.waitSettled(t)
	mustGet(t, h.Loader, "k", "k@3")
	if s := h.Stats(); s.Refreshes != 2 || s.RefreshErrors != 1 {
		t.Fatalf("stats = %+v; want 2 refreshes, 1 failed", s)
	}
}

func TestStaleOnErrorBoundedByStaleFor(t *testing.T) {
	t.Parallel()
	down := errors.New("down")
	var failing atomic.Bool
	c := &counter[string]{fn: func(_ context.Context, key string, call int64) (string, error) {
		if failing.Load() {
			return "", down
		}
		return fmt.Sprintf("%s@%d", key, call), nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{
		TTL: time.Minute, StaleFor: 30 * time.Second, ErrorTTL: 10 * time.Second,
	})
	mustGet(t, h.Loader, "k", "k@1")

	failing.Store(true)
	h.clock.Advance(time.Minute) // expired: the Get reloads, fails, gets the old value
	mustGet(t, h.Loader, "k", "k@1")
	assertCalls(t, c, 2)
	h.clock.Advance(5 * time.Second) // within the backoff: stale, no load
	mustGet(t, h.Loader, "k", "k@1")
	assertCalls(t, c, 2)
	h.clock.Advance(5 * time.Second) // the backoff is over: reload, fail, stale again
	mustGet(t, h.Loader, "k", "k@1")
	assertCalls(t, c, 3)

	// 30s past expiry the stale value ends; the error shows.
	h.clock.Advance(20 * time.Second)
	if v, err := h.Get(t.Context(), "k"); !errors.Is(err, down) {
		t.Fatalf("Get after StaleFor = %q, %v; want %v", v, err, down)
	}
	if s := h.Stats(); s.StaleServed != 3 {
		t.Fatalf("stats = %+v; want 3 stale served", s)
	}

	// Recovery brings a fresh value.
	failing.Store(false)
	h.clock.Advance(time.Minute)
	mustGet(t, h.Loader, "k", "k@5")
}

func TestNoStaleWithoutStaleFor(t *testing.T) {
	t.Parallel()
	down := errors.New("down")
	var failing atomic.Bool
	c := &counter[string]{fn: func(context.Context, string, int64) (string, error) {
		if failing.Load() {
			return "", down
		}
		return "v", nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{TTL: time.Minute})
	mustGet(t, h.Loader, "k", "v")
	failing.Store(true)
	h.clock.Advance(time.Minute)
	if _, err := h.Get(t.Context(), "k"); !errors.Is(err, down) {
		t.Fatalf("Get = %v; want %v", err, down)
	}
}

func TestInvalidateDuringLoad(t *testing.T) {
	t.Parallel()
	// Each load hands the test a channel on which it waits for its value.
	started := make(chan chan string, 2)
	c := &counter[string]{fn: func(context.Context, string, int64) (string, error) {
		reply := make(chan string)
		started <- reply
		return <-reply, nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{})

	first := make(chan string, 1)
	go func() {
		v, _ := h.Get(context.Background(), "k")
		first <- v
	}()
	oldLoad := <-started
	h.Invalidate("k") // returns without waiting for the load

	// A Get after the invalidation does not join the old load.
	second := make(chan string, 1)
	go func() {
		v, _ := h.Get(context.Background(), "k")
		second <- v
	}()
	newLoad := <-started

	oldLoad <- "old" // the old load ends: its waiter gets its value, the cache does not
	if v := <-first; v != "old" {
		t.Fatalf("first waiter got %q", v)
	}
	h.waitSettled(t)
	if v, ok := h.Peek("k"); ok {
		t.Fatalf("the load begun before Invalidate stored %q after it", v)
	}
	newLoad <- "new"
	if v := <-second; v != "new" {
		t.Fatalf("second waiter got %q", v)
	}
	h.waitSettled(t)
	mustGet(t, h.Loader, "k", "new")
	assertCalls(t, c, 2)
}

func TestSetDuringLoadWins(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := &counter[string]{fn: func(context.Context, string, int64) (string, error) {
		<-release
		return "loaded", nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{})
	got := make(chan string, 1)
	go func() {
		v, _ := h.Get(context.Background(), "k")
		got <- v
	}()
	h.waitJoined(t, 1)
	h.Set("k", "set")
	close(release)
	if v := <-got; v != "loaded" {
		t.Fatalf("waiter got %q", v)
	}
	h.waitSettled(t)
	mustGet(t, h.Loader, "k", "set")
}

func TestClearDuringLoads(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := &counter[string]{fn: func(_ context.Context, key string, call int64) (string, error) {
		if call <= 3 {
			<-release
		}
		return fmt.Sprintf("%s@%d", key, call), nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{})
	h.Set("cached", "old")

	keys := []string{"a", "b", "c"}
	results := make(chan error, len(keys))
	for _, k := range keys {
		go func() {
			v, err := h.Get(context.Background(), k)
			if err == nil && !strings.HasPrefix(v, k+"@") {
				err = fmt.Errorf("got %q for %q", v, k)
			}
			results <- err
		}()
	}
	h.waitJoined(t, len(keys))
	h.Clear() // returns without waiting for the loads
	if _, ok := h.Peek("cached"); ok {
		t.Fatal("Clear kept a value")
	}
	close(release)
	for range keys {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	for range keys {
		h.waitSettled(t)
	}
	for _, k := range keys {
		if v, ok := h.Peek(k); ok {
			t.Fatalf("a load begun before Clear stored %s=%q", k, v)
		}
	}
	if k := loader.InFlight(h.Loader); k != 0 {
		t.Fatalf("%d loads in flight", k)
	}
}

func TestNotFoundCached(t *testing.T) {
	t.Parallel()
	c := &counter[string]{fn: func(_ context.Context, key string, _ int64) (string, error) {
		return "", fmt.Errorf("post %q: %w", key, loader.ErrNotFound)
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{NotFoundTTL: 10 * time.Second})
	for range 3 {
		if _, err := h.Get(t.Context(), "missing"); !errors.Is(err, loader.ErrNotFound) || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("Get = %v; want the load's ErrNotFound", err)
		}
	}
	assertCalls(t, c, 1)
	if s := h.Stats(); s.LoadErrors != 0 || s.ErrorsServed != 2 {
		t.Fatalf("stats = %+v; not found is not a load error", s)
	}
	h.clock.Advance(10 * time.Second)
	if _, err := h.Get(t.Context(), "missing"); !errors.Is(err, loader.ErrNotFound) {
		t.Fatal(err)
	}
	assertCalls(t, c, 2)
}

func TestNotFoundOnReloadRemovesValue(t *testing.T) {
	t.Parallel()
	var gone atomic.Bool
	c := &counter[string]{fn: func(context.Context, string, int64) (string, error) {
		if gone.Load() {
			return "", loader.ErrNotFound
		}
		return "v", nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{TTL: time.Minute, StaleFor: time.Hour})
	mustGet(t, h.Loader, "k", "v")
	gone.Store(true)
	h.clock.Advance(time.Minute)
	// Deleted at the source: not served stale.
	if _, err := h.Get(t.Context(), "k"); !errors.Is(err, loader.ErrNotFound) {
		t.Fatalf("Get = %v; want ErrNotFound", err)
	}
}

func TestGetManyPerKey(t *testing.T) {
	t.Parallel()
	broken := errors.New("broken row")
	release := make(chan struct{})
	c := &counter[string]{fn: func(_ context.Context, key string, _ int64) (string, error) {
		switch key {
		case "slow":
			<-release
		case "bad":
			return "", broken
		case "gone":
			return "", loader.ErrNotFound
		}
		return "v:" + key, nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{})
	h.Set("cached", "v:cached")

	// A Get of "slow" is in flight: GetMany waits for it, not loading again.
	slow := make(chan string, 1)
	go func() {
		v, _ := h.Get(context.Background(), "slow")
		slow <- v
	}()
	h.waitJoined(t, 1)
	type result struct {
		m   map[string]string
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := h.GetMany(context.Background(), []string{"cached", "a", "slow", "bad", "gone", "a"})
		done <- result{m, err}
	}()
	h.waitJoined(t, 4) // a, slow (joined), bad, gone
	close(release)
	r := <-done
	want := map[string]string{"cached": "v:cached", "a": "v:a", "slow": "v:slow"}
	if fmt.Sprint(r.m) != fmt.Sprint(want) {
		t.Fatalf("GetMany = %v; want %v", r.m, want)
	}
	var ke *loader.KeyError[string]
	if !errors.As(r.err, &ke) || ke.Key != "bad" || !errors.Is(r.err, broken) || errors.Is(r.err, loader.ErrNotFound) {
		t.Fatalf("GetMany error = %v; want one *KeyError for bad", r.err)
	}
	if v := <-slow; v != "v:slow" {
		t.Fatalf("Get(slow) = %q", v)
	}
	assertCalls(t, c, 4) // a, slow, bad, gone: once each
	if s := h.Stats(); s.Coalesced != 1 {
		t.Fatalf("stats = %+v; want the GetMany to have joined the Get's load", s)
	}
}

func TestGetManyBulk(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		batches [][]string
	)
	partial := errors.New("shard 2 down")
	loadMany := func(_ context.Context, keys []string) (map[string]string, error) {
		mu.Lock()
		batches = append(batches, slices.Clone(keys))
		mu.Unlock()
		m := make(map[string]string)
		var err error
		for _, k := range keys {
			switch {
			case strings.HasPrefix(k, "s2-"):
				err = partial // this key's shard is down
			case k != "gone":
				m[k] = "v:" + k
			}
		}
		return m, err
	}
	single := versions()
	h := newHarness(t, single.load, loader.Options[string, string]{LoadMany: loadMany})
	h.Set("cached", "v:cached")

	m, err := h.GetMany(t.Context(), []string{"cached", "a", "b", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cached": "v:cached", "a": "v:a", "b": "v:b"}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("GetMany = %v; want %v", m, want)
	}
	// Left out of the answer: not found, and cached as such.
	if _, err := h.Get(t.Context(), "gone"); !errors.Is(err, loader.ErrNotFound) {
		t.Fatalf("Get(gone) = %v", err)
	}

	// A partial answer with an error: the keys answered are loaded, the
	// others fail with the error.
	m, err = h.GetMany(t.Context(), []string{"a", "c", "s2-x"})
	var ke *loader.KeyError[string]
	if !errors.As(err, &ke) || ke.Key != "s2-x" || !errors.Is(err, partial) {
		t.Fatalf("GetMany error = %v; want a *KeyError for s2-x", err)
	}
	if fmt.Sprint(m) != fmt.Sprint(map[string]string{"a": "v:a", "c": "v:c"}) {
		t.Fatalf("GetMany = %v", m)
	}

	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(batches) != "[[a b gone] [c s2-x]]" {
		t.Fatalf("LoadMany batches = %v; want only the keys not cached, once per GetMany", batches)
	}
	assertCalls(t, single, 0)
	if s := h.Stats(); s.BulkLoads != 2 || s.LoadErrors != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestGetManyBulkPanic(t *testing.T) {
	t.Parallel()
	h := newHarness(t, versions().load, loader.Options[string, string]{
		LoadMany: func(context.Context, []string) (map[string]string, error) { panic("bulk boom") },
	})
	_, err := h.GetMany(t.Context(), []string{"a", "b"})
	var pe *loader.PanicError
	if !errors.As(err, &pe) || pe.Value != "bulk boom" {
		t.Fatalf("GetMany = %v; want a *PanicError", err)
	}
	for range 2 {
		h.waitSettled(t)
	}
	if k := loader.InFlight(h.Loader); k != 0 {
		t.Fatalf("%d loads in flight", k)
	}
}

func TestSetAndPeek(t *testing.T) {
	t.Parallel()
	c := versions()
	h := newHarness(t, c.load, loader.Options[string, string]{TTL: time.Minute})
	if _, ok := h.Peek("k"); ok {
		t.Fatal("Peek found a value never loaded")
	}
	h.Set("k", "set")
	mustGet(t, h.Loader, "k", "set")
	h.clock.Advance(time.Minute)
	mustGet(t, h.Loader, "k", "k@1")
	assertCalls(t, c, 1)
}

func TestCloseEndsLoadsAndLaterLoads(t *testing.T) {
	t.Parallel()
	c := &counter[string]{fn: func(ctx context.Context, key string, _ int64) (string, error) {
		if key == "hang" {
			<-ctx.Done() // ends only with Close
			return "", ctx.Err()
		}
		return "v", nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{})
	mustGet(t, h.Loader, "cached", "v")
	h.waitJoined(t, 1)

	hung := make(chan error, 1)
	go func() {
		_, err := h.Get(context.Background(), "hang")
		hung <- err
	}()
	h.waitJoined(t, 1)
	h.Close()
	if err := <-hung; !errors.Is(err, context.Canceled) {
		t.Fatalf("load in flight at Close ended with %v", err)
	}
	mustGet(t, h.Loader, "cached", "v")
	if _, err := h.Get(t.Context(), "new"); !errors.Is(err, loader.ErrClosed) {
		t.Fatalf("Get after Close = %v; want ErrClosed", err)
	}
	h.Close() // idempotent
}

func TestLoadTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(ctx context.Context, _ string) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}, loader.Options[string, string]{LoadTimeout: time.Millisecond})
	if _, err := h.Get(t.Context(), "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v; want the load's deadline", err)
	}
}

func TestMaxRefreshes(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := &counter[string]{fn: func(_ context.Context, key string, call int64) (string, error) {
		if call > 2 {
			<-release
		}
		return fmt.Sprintf("%s@%d", key, call), nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{TTL: time.Minute, RefreshAfter: time.Second, MaxRefreshes: 1})
	mustGet(t, h.Loader, "a", "a@1")
	mustGet(t, h.Loader, "b", "b@2")
	h.clock.Advance(time.Second)
	mustGet(t, h.Loader, "a", "a@1") // starts a's refresh, which blocks
	mustGet(t, h.Loader, "b", "b@2") // no slot: skipped
	if s := h.Stats(); s.Refreshes != 1 || s.RefreshesSkipped != 1 {
		t.Fatalf("stats = %+v", s)
	}
	close(release)
	h.waitSettled(t)                 // a@1
	h.waitSettled(t)                 // b@2
	h.waitSettled(t)                 // a's refresh
	mustGet(t, h.Loader, "b", "b@2") // a slot is free: b's refresh starts now
	h.waitSettled(t)
	mustGet(t, h.Loader, "a", "a@3")
	mustGet(t, h.Loader, "b", "b@4")
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	load := func(context.Context, string) (string, error) { return "", nil }
	_, err := loader.New(load, loader.Options[string, string]{
		TTL:          time.Minute,
		RefreshAfter: time.Minute,
		StaleFor:     -1,
		MaxRefreshes: -1,
		Jitter:       1,
	})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("New = %v; want ErrInvalid", err)
	}
	for _, field := range []string{"RefreshAfter", "StaleFor", "MaxRefreshes", "Jitter"} {
		if !strings.Contains(err.Error(), "Options."+field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	if _, err := loader.New[string, string](nil, loader.Options[string, string]{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("New without load = %v", err)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	l, err := loader.New(func(context.Context, string) (string, error) { return "v", nil }, loader.Options[string, string]{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	v, err := l.Get(t.Context(), "k")
	if err != nil || v != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if v, ok := l.Peek("k"); !ok || v != "v" {
		t.Fatalf("Peek = %q, %v", v, ok)
	}
}

func TestRefreshOutlivesTriggeringRequest(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var reloadCtxErr atomic.Value
	c := &counter[string]{fn: func(ctx context.Context, key string, call int64) (string, error) {
		if call > 1 {
			<-release
			reloadCtxErr.Store(fmt.Sprint(ctx.Err()))
		}
		return fmt.Sprintf("%s@%d", key, call), nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{TTL: time.Minute, RefreshAfter: 30 * time.Second})
	mustGet(t, h.Loader, "k", "k@1")
	h.waitSettled(t)
	h.clock.Advance(30 * time.Second)

	// The request that triggers the refresh ends (its handler returned)
	// before the reload does.
	ctx, cancel := context.WithCancel(t.Context())
	if v, err := h.Get(ctx, "k"); err != nil || v != "k@1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	cancel()
	close(release)
	h.waitSettled(t)
	if got := reloadCtxErr.Load(); got != "<nil>" {
		t.Fatalf("the reload's context ended with its request: %v", got)
	}
	mustGet(t, h.Loader, "k", "k@2")
}

func TestGetManyCallerGivesUp(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := &counter[string]{fn: func(_ context.Context, key string, _ int64) (string, error) {
		if key == "slow" {
			<-release
		}
		return "v:" + key, nil
	}}
	h := newHarness(t, c.load, loader.Options[string, string]{})
	h.Set("cached", "v:cached")
	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		m   map[string]string
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := h.GetMany(ctx, []string{"cached", "slow"})
		done <- result{m, err}
	}()
	h.waitJoined(t, 1)
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) || r.m["cached"] != "v:cached" {
		t.Fatalf("GetMany = %v, %v; want the cached key and context.Canceled", r.m, r.err)
	}
	close(release) // the load goes on and is cached
	h.waitSettled(t)
	if v, ok := h.Peek("slow"); !ok || v != "v:slow" {
		t.Fatalf("Peek(slow) = %q, %v", v, ok)
	}
}
