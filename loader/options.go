package loader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/store"
)

// Defaults for the zero fields of Options.
const (
	DefaultTTL          = time.Minute
	DefaultErrorTTL     = time.Second
	DefaultMaxErrorTTL  = 30 * time.Second
	DefaultLoadTimeout  = 30 * time.Second
	DefaultMaxSize      = 10_000
	DefaultMaxRefreshes = 64
	DefaultJitter       = 0.1
)

// Options configure a Loader. Every field is optional: the zero value of a
// field means its default, and the zero Options are a cache of 10,000
// entries that keeps values for a minute and errors for a second.
type Options[K comparable, V any] struct {
	// LoadMany loads many keys in one call, for GetMany: a database's
	// "WHERE id IN (...)". Keys missing from the map are not found (as if
	// the load had returned ErrNotFound). When it returns an error, the keys
	// in the map still count as loaded and every other key of the call gets
	// the error, so a partial answer is possible. Default: nil, and GetMany
	// loads each missing key with the Loader's load function, in parallel
	// and coalesced with Gets like any load.
	LoadMany func(ctx context.Context, keys []K) (map[K]V, error)

	// TTL is how long a loaded value is fresh; a Get after it loads the key
	// again. Default: a minute. Negative: values never expire (they leave
	// only when evicted for size, invalidated or replaced).
	TTL time.Duration

	// RefreshAfter makes reads refresh ahead: the first read of a value
	// older than RefreshAfter starts one background reload and gets the
	// value it has at once; the others keep getting it until the reload
	// stores the new one. Each value's refresh time is shortened at random
	// by up to Jitter, so keys loaded together do not all reload together.
	// It must be shorter than TTL. Default: 0, no refresh-ahead.
	RefreshAfter time.Duration

	// StaleFor keeps serving a value for up to this long past its expiry
	// while reloading it fails (stale-if-error): the Get that reloads gets
	// the old value instead of the error, and so do later Gets until the
	// next retry, which waits for the error backoff (ErrorTTL). After
	// StaleFor the error is returned. A reload answering ErrNotFound ends
	// the value at once. Default: 0, an expired value is never served.
	StaleFor time.Duration

	// ErrorTTL is how long a failed load is remembered: Gets of the key
	// return the same error without loading until then, so a failing
	// backend is not hammered. Each further failure of the key doubles the
	// wait, up to MaxErrorTTL; a success resets it. It is also the wait
	// before retrying a failed refresh, with the same doubling. Default: a
	// second. Negative: errors are not cached, and every Get after a failure
	// loads again.
	ErrorTTL time.Duration

	// MaxErrorTTL caps the backoff of repeated failures (see ErrorTTL).
	// Default: 30 seconds, or ErrorTTL when that is longer.
	MaxErrorTTL time.Duration

	// NotFoundTTL is how long a "not found" answer (a load returning
	// ErrNotFound, or a key LoadMany leaves out) is cached; Gets of the key
	// return ErrNotFound until then without loading. Default: TTL, or a
	// minute when TTL is negative. Negative: not-found answers are not
	// cached.
	NotFoundTTL time.Duration

	// LoadTimeout bounds each call of the load functions. A load does not
	// run on its caller's context (a caller giving up must not fail the load
	// for the others waiting for it): it runs on a context that keeps the
	// first caller's values, is not cancelled with it, and ends after
	// LoadTimeout or at Close. Default: 30 seconds. Negative: no timeout.
	LoadTimeout time.Duration

	// MaxSize bounds the number of entries (values, cached errors and
	// not-founds); beyond it otter evicts the entries least likely to be
	// used again (W-TinyLFU). Default: 10,000. Negative: unbounded.
	MaxSize int

	// MaxRefreshes bounds the background refreshes running at once. A read
	// that would start one more leaves the value as it is and the next read
	// tries again; Stats.RefreshesSkipped counts these. Default: 64.
	MaxRefreshes int

	// Jitter is the fraction by which refresh times and error backoffs are
	// shortened at random, between 0 and 1. Default: 0.1 (up to 10%
	// earlier). Negative: no jitter.
	Jitter float64

	// Clock is the time source of TTLs, refreshes and backoffs. Default:
	// the real clock. In tests, use clockwork.NewFakeClock and move time
	// with Advance; LoadTimeout is always real time.
	Clock clockwork.Clock

	// Logger receives failed background refreshes (warn level) and
	// recovered panics of the load functions (error level). Default: a
	// logger that discards everything.
	Logger *slog.Logger
}

// resolve fills o's zero fields with their defaults, then checks every
// field and returns all mistakes at once, joined; each is a
// *store.ValidationError (matching store.ErrInvalid) named after the field.
func (o *Options[K, V]) resolve() error {
	var errs []error
	invalid := func(field, format string, args ...any) {
		errs = append(errs, &store.ValidationError{Field: "Options." + field, Reason: fmt.Sprintf(format, args...)})
	}
	notNegative := func(field string, d time.Duration) {
		if d < 0 {
			invalid(field, "%v is negative", d)
		}
	}

	o.TTL = cmp.Or(o.TTL, DefaultTTL) // negative: never expire
	notNegative("RefreshAfter", o.RefreshAfter)
	if o.RefreshAfter > 0 && o.TTL > 0 && o.RefreshAfter >= o.TTL {
		invalid("RefreshAfter", "%v is not shorter than TTL %v: values would expire before they refresh", o.RefreshAfter, o.TTL)
	}
	notNegative("StaleFor", o.StaleFor)
	o.ErrorTTL = cmp.Or(o.ErrorTTL, DefaultErrorTTL) // negative: not cached
	o.MaxErrorTTL = cmp.Or(o.MaxErrorTTL, max(DefaultMaxErrorTTL, o.ErrorTTL))
	notNegative("MaxErrorTTL", o.MaxErrorTTL)
	if o.ErrorTTL > 0 && o.MaxErrorTTL < o.ErrorTTL {
		invalid("MaxErrorTTL", "%v is shorter than ErrorTTL %v", o.MaxErrorTTL, o.ErrorTTL)
	}
	if o.NotFoundTTL == 0 {
		o.NotFoundTTL = o.TTL
		if o.TTL < 0 {
			o.NotFoundTTL = DefaultTTL
		}
	}
	o.LoadTimeout = cmp.Or(o.LoadTimeout, DefaultLoadTimeout) // negative: none
	o.MaxSize = cmp.Or(o.MaxSize, DefaultMaxSize)             // negative: unbounded
	o.MaxRefreshes = cmp.Or(o.MaxRefreshes, DefaultMaxRefreshes)
	if o.MaxRefreshes < 0 {
		invalid("MaxRefreshes", "%d is negative", o.MaxRefreshes)
	}
	o.Jitter = cmp.Or(o.Jitter, DefaultJitter) // negative: none
	if o.Jitter >= 1 {
		invalid("Jitter", "%v is not below 1", o.Jitter)
	}
	if o.Jitter < 0 {
		o.Jitter = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}
