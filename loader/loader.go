package loader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"

	"github.com/spoolrun/spool/store"
)

// Loader is a read-through cache in front of a load function: Get returns
// the cached value of a key or loads it, and concurrent Gets of a key that
// is not cached share one call of the load function. It is safe for
// concurrent use. Close it when done: loads run on goroutines of their own.
type Loader[K comparable, V any] struct {
	load  func(ctx context.Context, key K) (V, error)
	opts  Options[K, V]
	cache *otter.Cache[K, *entry[V]]
	clock *clockSource

	// counter counts hits and misses (striped, cheap on the hit path) and
	// otter's evictions; counts has the rest.
	counter *stats.Counter
	counts  counts

	// refreshSlots holds a token for each background refresh running.
	refreshSlots chan struct{}
	// base ends with Close; every load's context ends with it.
	base       context.Context
	cancelBase context.CancelFunc
	// wg counts the goroutines running loads; Add only under mu, while
	// not closed.
	wg sync.WaitGroup

	// mu guards flights and closed. A load stores its result under mu, and
	// only if its flight is still the key's, so that Invalidate, Clear and
	// Set (which take mu and drop the key's flight) are never overwritten
	// by a load that began before them.
	mu      sync.Mutex
	flights map[K]*flight[V]
	closed  bool

	hooks hooks[K] // set by tests only, before any use
}

// flight is one load of a key in progress, which its waiters share.
type flight[V any] struct {
	done    chan struct{} // closed when out is set
	out     outcome[V]
	prev    *entry[V] // the key's entry when the load started, or nil
	refresh bool      // a background refresh
}

// hooks let tests wait for events instead of sleeping.
type hooks[K comparable] struct {
	joined  func(K) // a Get or GetMany registered as a waiter of a flight
	settled func(K) // a flight's outcome was stored (or dropped) and delivered
}

// New returns a Loader that loads keys missing from its cache with load.
// load is called with a context detached from its callers (see
// Options.LoadTimeout); it returns ErrNotFound (or an error wrapping it)
// for a key that has no value. An invalid opts gives errors matching
// store.ErrInvalid, all of them joined.
func New[K comparable, V any](load func(ctx context.Context, key K) (V, error), opts Options[K, V]) (*Loader[K, V], error) {
	err := opts.resolve()
	if load == nil {
		err = errors.Join(&store.ValidationError{Field: "load", Reason: "is required"}, err)
	}
	if err != nil {
		return nil, err
	}
	l := &Loader[K, V]{
		load:         load,
		opts:         opts,
		clock:        newClockSource(opts.Clock),
		counter:      stats.NewCounter(),
		refreshSlots: make(chan struct{}, opts.MaxRefreshes),
		flights:      make(map[K]*flight[V]),
	}
	l.base, l.cancelBase = context.WithCancel(context.Background())
	oo := &otter.Options[K, *entry[V]]{
		// Every entry carries its own deadline, so the cache always has
		// a time policy: that is also what makes GetEntry report the
		// time of the read (SnapshotAtNano), which saves the hit path a
		// second reading of the clock.
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[K, *entry[V]]) time.Duration {
			return time.Duration(e.Value.dropAt - e.SnapshotAtNano)
		}),
		StatsRecorder: evictionRecorder{l.counter},
		Clock:         l.clock,
		Logger:        otterLogger{opts.Logger},
	}
	if opts.MaxSize > 0 {
		oo.MaximumSize = opts.MaxSize
	}
	l.cache, err = otter.New(oo)
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	return l, nil
}

// Get returns key's value: from the cache when it holds a fresh one, or
// else from a load, which concurrent Gets of key share. It returns
// ErrNotFound (as the load returned it) for a key without a value, and a
// load's error, or a *PanicError, when the load failed; both are cached
// for a while (Options.NotFoundTTL, Options.ErrorTTL). A Get whose ctx
// ends while it waits returns ctx.Err() at once; the load goes on for the
// others and is cached.
func (l *Loader[K, V]) Get(ctx context.Context, key K) (V, error) {
	if got, ok := l.cache.GetEntry(key); ok {
		e, now := got.Value, got.SnapshotAtNano
		if e.err == nil && now < e.freshUntil {
			if now >= e.refreshAt {
				l.refresh(ctx, key, e)
			}
			l.counter.RecordHits(1)
			return e.value, nil
		}
		if v, ok, err := l.answer(e, now); ok {
			return v, err
		}
	}
	return l.getSlow(ctx, key)
}

// answer returns what a lookup gets from e at now without loading, and
// whether it can: not for a fresh value (the caller serves those) or an
// entry that must be loaded again. It counts the hit.
func (l *Loader[K, V]) answer(e *entry[V], now int64) (v V, ok bool, err error) {
	switch e.verdict(now) {
	case serveError:
		l.counter.RecordHits(1)
		l.counts.errorsServed.Add(1)
		return v, true, e.err
	case serveStale:
		l.counter.RecordHits(1)
		l.counts.staleServed.Add(1)
		return e.value, true, nil
	}
	return v, false, nil
}

// getSlow is Get for a key that needs, or may need, a load.
func (l *Loader[K, V]) getSlow(ctx context.Context, key K) (V, error) {
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, err // a caller that has given up starts no load
	}
	l.mu.Lock()
	e, now, f, started, err := l.acquire(key)
	l.mu.Unlock()
	if started {
		go l.runLoad(ctx, key, f)
	}
	switch {
	case err != nil:
		return zero, err
	case f == nil:
		if e.verdict(now) == serveValue {
			l.counter.RecordHits(1)
			return e.value, nil
		}
		v, _, err := l.answer(e, now)
		return v, err
	}
	l.counter.RecordMisses(1)
	return l.wait(ctx, f)
}

// acquire finds what a lookup of key that found nothing usable gets now:
// an entry stored since (e, with the time of the read), the key's flight
// to wait for, or a new flight (started), which the caller must start.
// mu must be held.
func (l *Loader[K, V]) acquire(key K) (e *entry[V], now int64, f *flight[V], started bool, err error) {
	var prev *entry[V]
	if got, ok := l.cache.GetEntryQuietly(key); ok {
		if got.Value.verdict(got.SnapshotAtNano) != mustLoad {
			return got.Value, got.SnapshotAtNano, nil, false, nil
		}
		prev = got.Value
	}
	if f = l.flights[key]; f != nil {
		l.counts.coalesced.Add(1)
	} else if f, err = l.register(key, prev, false); err != nil {
		return nil, 0, nil, false, err
	} else {
		started = true
	}
	if l.hooks.joined != nil {
		l.hooks.joined(key)
	}
	return nil, 0, f, started, nil
}

// register adds a flight for key, which the caller must start on a
// goroutine of its own (wg counts it already). mu must be held.
func (l *Loader[K, V]) register(key K, prev *entry[V], refresh bool) (*flight[V], error) {
	if l.closed {
		return nil, ErrClosed
	}
	f := &flight[V]{done: make(chan struct{}), prev: prev, refresh: refresh}
	l.flights[key] = f
	l.wg.Add(1)
	return f, nil
}

// wait returns f's outcome, or ctx.Err() if ctx ends first.
func (l *Loader[K, V]) wait(ctx context.Context, f *flight[V]) (V, error) {
	select {
	case <-f.done:
		if f.out.stale {
			l.counts.staleServed.Add(1)
		}
		return f.out.val, f.out.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// refresh starts a background reload of key, whose entry e a read found
// due for one, unless one is running or MaxRefreshes are.
func (l *Loader[K, V]) refresh(ctx context.Context, key K, e *entry[V]) {
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	select {
	case l.refreshSlots <- struct{}{}:
	default:
		e.refreshing.Store(false) // the next read tries again
		l.counts.refreshesSkipped.Add(1)
		return
	}
	l.mu.Lock()
	var f *flight[V]
	if got, ok := l.cache.GetEntryQuietly(key); ok && got.Value == e && l.flights[key] == nil {
		f, _ = l.register(key, e, true) // fails only when closed
	}
	l.mu.Unlock()
	if f == nil {
		<-l.refreshSlots
		return
	}
	l.counts.refreshes.Add(1)
	go l.runLoad(ctx, key, f)
}

// loadContext is the context a load started by a caller with ctx runs
// on: ctx's values, not its cancellation, ended by LoadTimeout and Close.
func (l *Loader[K, V]) loadContext(ctx context.Context) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc
	if l.opts.LoadTimeout > 0 {
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), l.opts.LoadTimeout)
	} else {
		ctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
	}
	stop := context.AfterFunc(l.base, cancel)
	return ctx, func() { stop(); cancel() }
}

// runLoad runs the load of f, for key, and settles it.
func (l *Loader[K, V]) runLoad(ctx context.Context, key K, f *flight[V]) {
	defer l.wg.Done()
	ctx, cancel := l.loadContext(ctx)
	defer cancel()
	l.counts.loads.Add(1)
	var v V
	protect(func() (err error) {
		v, err = l.load(ctx, key)
		return err
	}, func(err error) {
		l.countFailure(ctx, err, f.refresh)
		if f.refresh {
			<-l.refreshSlots // before finish: a read after it may use the slot
		}
		l.finish(key, f, v, err)
	})
}

// countFailure counts a failed call of a load function and logs it when
// no caller sees the error: a background refresh, or a panic.
func (l *Loader[K, V]) countFailure(ctx context.Context, err error, refresh bool) {
	if err == nil || isNotFound(err) {
		return
	}
	l.counts.loadErrors.Add(1)
	if pe := (*PanicError)(nil); errors.As(err, &pe) {
		l.counts.panics.Add(1)
		l.opts.Logger.ErrorContext(ctx, "loader: load panicked", slog.Any("panic", pe.Value), slog.String("stack", string(pe.Stack)))
	}
	if refresh {
		l.counts.refreshErrors.Add(1)
		l.opts.Logger.WarnContext(ctx, "loader: refresh failed; keeping the old value", slog.Any("err", err))
	}
}

// finish stores the outcome of f, the flight of key, unless an
// Invalidate, Clear or Set has dropped f since it began, and delivers it
// to f's waiters.
func (l *Loader[K, V]) finish(key K, f *flight[V], v V, err error) {
	next, out := l.settle(f.prev, v, err, l.clock.NowNano())
	l.mu.Lock()
	if l.flights[key] == f {
		delete(l.flights, key)
		if next != nil {
			l.cache.Set(key, next)
		} else {
			l.cache.Invalidate(key)
		}
	}
	l.mu.Unlock()
	f.out = out
	close(f.done)
	if l.hooks.settled != nil {
		l.hooks.settled(key)
	}
}

// protect calls fn, turning a panic or runtime.Goexit in it into a
// *PanicError, and then always calls done with fn's error, even while a
// Goexit unwinds the goroutine, so that no waiter is left waiting.
func protect(fn func() error, done func(error)) {
	returned := false
	var err error
	defer func() {
		if !returned {
			r := recover()
			if r == nil {
				r = "runtime.Goexit" // a panic(nil) recovers a *runtime.PanicNilError
			}
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
		done(err)
	}()
	err = fn()
	returned = true
}

// Peek returns key's value if the cache holds a fresh one. It never loads,
// does not count as a hit or a miss, and does not start a refresh.
func (l *Loader[K, V]) Peek(key K) (V, bool) {
	got, ok := l.cache.GetEntryQuietly(key)
	if !ok || got.Value.verdict(got.SnapshotAtNano) != serveValue {
		var zero V
		return zero, false
	}
	return got.Value.value, true
}

// Set stores v as key's value, fresh for a TTL from now. A load of key in
// flight still answers its waiters but no longer stores its result.
func (l *Loader[K, V]) Set(key K, v V) {
	e := l.valueEntry(v, l.clock.NowNano())
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.flights, key)
	l.cache.Set(key, e)
}

// Invalidate removes key's value (or cached error). It does not wait for a
// load of key in flight: that load still answers its waiters but does not
// store its result, and the next Get of key loads again.
func (l *Loader[K, V]) Invalidate(key K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.flights, key)
	l.cache.Invalidate(key)
}

// Clear removes every value and cached error. Like Invalidate, it does not
// wait for loads in flight, and none that began before it stores its
// result.
func (l *Loader[K, V]) Clear() {
	l.mu.Lock()
	clear(l.flights)
	l.mu.Unlock()
	// Outside mu: a load that begins after the flights were dropped loads
	// current data, so it does not matter whether its result survives.
	l.cache.InvalidateAll()
}

// Close cancels the contexts of the loads in flight, waits for them to
// return (their waiters get their outcome) and stops the cache's
// goroutines. Afterwards cached values are still served, and a Get that
// needs a load returns ErrClosed. Close is idempotent.
func (l *Loader[K, V]) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	l.cancelBase()
	l.wg.Wait()
	l.cache.StopAllGoroutines()
	l.clock.stop()
}

// isNotFound reports whether a load's err means "no value".
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// counts are the Stats the stats.Counter does not keep.
type counts struct {
	coalesced, loads, bulkLoads, loadErrors, panics atomic.Uint64
	refreshes, refreshErrors, refreshesSkipped      atomic.Uint64
	staleServed, errorsServed                       atomic.Uint64
}
