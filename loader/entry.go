package loader

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// never is a deadline that does not come.
const never = math.MaxInt64

// entry is what the otter cache holds for a key: a loaded value, or the
// cached outcome of a load that gave none (not found, or an error). Times
// are nanoseconds on the Loader's clock. An entry is not changed once
// stored, except for its refreshing flag; a new outcome is a new entry.
type entry[V any] struct {
	value V
	// err is nil for a value; otherwise the cached outcome, returned as is.
	err      error
	notFound bool // err matches ErrNotFound

	// freshUntil: a value is served until then; a cached error is
	// returned until then, and the next Get loads again.
	freshUntil int64
	// refreshAt: the first read of the value at or after it starts a
	// background reload; never without refresh-ahead.
	refreshAt int64
	// staleUntil: past freshUntil, the value is served instead of a
	// failed reload's error until then (Options.StaleFor).
	staleUntil int64
	// retryAt: past freshUntil, after a failed reload, no reload starts
	// before then and the stale value is served meanwhile.
	retryAt int64
	// failures counts the key's consecutive failed loads, for the backoff.
	failures int
	// dropAt: the otter cache removes the entry then.
	dropAt int64

	// refreshing is set by the read that starts the entry's refresh, so
	// that the reads after it do not try again.
	refreshing atomic.Bool
}

// verdict is what a lookup does with an entry.
type verdict uint8

const (
	serveValue verdict = iota // a fresh value
	serveError                // a cached error or not-found
	serveStale                // a value past its expiry, while reloads fail
	mustLoad                  // nothing usable: load the key
)

// verdict says what a lookup at now does with e.
func (e *entry[V]) verdict(now int64) verdict {
	switch {
	case now < e.freshUntil:
		if e.err != nil {
			return serveError
		}
		return serveValue
	case e.err == nil && now < e.retryAt && now < e.staleUntil:
		return serveStale
	default:
		return mustLoad
	}
}

// addNanos returns t+d, saturated at never; a negative d means never.
func addNanos(t int64, d time.Duration) int64 {
	if d < 0 || t > never-int64(d) {
		return never
	}
	return t + int64(d)
}

// jitter shortens d at random by up to the Jitter fraction.
func (l *Loader[K, V]) jitter(d time.Duration) time.Duration {
	if l.opts.Jitter <= 0 || d <= 0 {
		return d
	}
	return d - time.Duration(float64(d)*l.opts.Jitter*rand.Float64())
}

// backoff is how long the failures-th consecutive failure of a key is
// remembered: ErrorTTL doubled for each failure before it, capped at
// MaxErrorTTL, jittered.
func (l *Loader[K, V]) backoff(failures int) time.Duration {
	d := l.opts.ErrorTTL
	if d <= 0 {
		return 0
	}
	for i := 1; i < failures && d < l.opts.MaxErrorTTL; i++ {
		d *= 2
	}
	return l.jitter(min(d, l.opts.MaxErrorTTL))
}

// valueEntry is a freshly loaded (or Set) value at now.
func (l *Loader[K, V]) valueEntry(v V, now int64) *entry[V] {
	e := &entry[V]{value: v, refreshAt: never, freshUntil: never, staleUntil: never, dropAt: never}
	if l.opts.TTL > 0 {
		e.freshUntil = addNanos(now, l.opts.TTL)
		e.staleUntil = addNanos(e.freshUntil, l.opts.StaleFor)
		e.dropAt = e.staleUntil
	}
	if l.opts.RefreshAfter > 0 {
		e.refreshAt = addNanos(now, l.jitter(l.opts.RefreshAfter))
	}
	return e
}

// outcome is what the waiters of a load get.
type outcome[V any] struct {
	val   V
	err   error
	stale bool // val is an expired value served because the reload failed
}

// settle turns the result of a load that started from prev (nil: no
// entry) into the entry to store (nil: none, remove the key's) and what the
// load's waiters get, at now.
func (l *Loader[K, V]) settle(prev *entry[V], v V, err error, now int64) (*entry[V], outcome[V]) {
	if err == nil {
		return l.valueEntry(v, now), outcome[V]{val: v}
	}
	if isNotFound(err) {
		if l.opts.NotFoundTTL < 0 {
			return nil, outcome[V]{err: err}
		}
		until := addNanos(now, l.opts.NotFoundTTL)
		return &entry[V]{err: err, notFound: true, freshUntil: until, refreshAt: never, dropAt: until}, outcome[V]{err: err}
	}

	failures := 1
	if prev != nil && !prev.notFound {
		failures = prev.failures + 1
	}
	wait := l.backoff(failures)
	if prev != nil && prev.err == nil && now < prev.staleUntil {
		// Keep the old value: until its expiry as a fresh value whose
		// refresh is retried after the backoff, then as a stale one
		// until StaleFor ends.
		next := &entry[V]{
			value:      prev.value,
			freshUntil: prev.freshUntil,
			refreshAt:  never,
			staleUntil: prev.staleUntil,
			retryAt:    addNanos(now, wait),
			failures:   failures,
			dropAt:     prev.dropAt,
		}
		if prev.refreshAt != never {
			next.refreshAt = next.retryAt
		}
		return next, outcome[V]{val: prev.value, stale: now >= prev.freshUntil}
	}
	if l.opts.ErrorTTL < 0 {
		return nil, outcome[V]{err: err}
	}
	until := addNanos(now, wait)
	// The entry outlives its TTL by MaxErrorTTL so that the next failure
	// of the key finds it and waits longer.
	return &entry[V]{err: err, freshUntil: until, refreshAt: never, failures: failures, dropAt: addNanos(until, l.opts.MaxErrorTTL)},
		outcome[V]{err: err}
}
