package settle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

// Defaults for the zero fields of Config.
const (
	// DefaultMaxBatch is large enough that a busy worker pays one commit per
	// several hundred verdicts (the measured gain flattens past ~100 per
	// commit), and small enough that one batch stays a short transaction and
	// a modest statement on every backend.
	DefaultMaxBatch = 500
	// DefaultMaxDelay keeps a lone verdict's extra latency to about one
	// commit's worth.
	DefaultMaxDelay = 2 * time.Millisecond
	// DefaultMaxPending is twenty full batches.
	DefaultMaxPending = 10_000
	// DefaultMaxInFlight lets one batch be written while the next is cut.
	DefaultMaxInFlight = 2
	// DefaultRetryDelay is the first backoff after a failed Settle call.
	DefaultRetryDelay = 10 * time.Millisecond
	// DefaultMaxRetryDelay caps the backoff, so that settling resumes within
	// about a second of the store's recovery.
	DefaultMaxRetryDelay = time.Second
)

// ErrStopped is returned by Submit and SubmitWait when the settler is not
// running, and reported for verdicts still unflushed when Stop's ctx ended.
var ErrStopped = errors.New("settle: settler is not running")

// Config configures a Settler. Zero fields take the documented defaults.
type Config struct {
	// Store receives the batches. Required.
	Store store.Store
	// MaxBatch is the most verdicts one Settle call carries, and the buffer
	// size that triggers a flush at once. Default DefaultMaxBatch (500); at
	// most store.MaxBatch.
	MaxBatch int
	// MaxDelay is the longest the oldest buffered verdict waits for others
	// before a flush. Default DefaultMaxDelay (2ms).
	MaxDelay time.Duration
	// FlushWhenIdle, when true, cuts a batch whenever fewer than MaxInFlight
	// Settle calls are running, instead of letting the oldest verdict wait up
	// to MaxDelay for company. Verdicts then wait only while every flush slot
	// is busy, so batches grow with the store's latency (self-clocking, like
	// group commit). It lowers latency under light load and raises
	// throughput when producers wait for durability (SubmitWait), at the cost
	// of more, smaller calls. Default false: the MaxDelay policy.
	FlushWhenIdle bool
	// Margin is how long before its job's lockedUntil a verdict must be
	// flushed. Zero (the default) means a tenth of the lock time left when
	// the verdict was submitted.
	Margin time.Duration
	// MaxPending is the most verdicts the buffer holds; Submit blocks while it
	// is full. Default DefaultMaxPending (10,000); at least MaxBatch.
	MaxPending int
	// MaxInFlight is the most Settle calls running at once. Default
	// DefaultMaxInFlight (2).
	MaxInFlight int
	// RetryDelay is the first wait before retrying a failed Settle call; it
	// doubles with each failure, with jitter. Default DefaultRetryDelay (10ms).
	RetryDelay time.Duration
	// MaxRetryDelay caps the retry wait. Default DefaultMaxRetryDelay (1s);
	// at least RetryDelay.
	MaxRetryDelay time.Duration
	// Clock tells the time used for flush deadlines and runs the settler's
	// timers (MaxDelay, retry backoff). The lockedUntil given to Submit is on
	// this clock. Default: the real clock.
	Clock clockwork.Clock
	// Logger receives warnings about refused verdicts and failed calls.
	// Default: discard.
	Logger *slog.Logger
	// OnResult, when set, is called once for every verdict Submit accepted:
	// with nil when the store applied it, or with why it was not applied (a
	// per-item store error such as store.ErrLockLost, a permanent whole-call
	// error, or an error matching ErrStopped), and with the tag given to
	// SubmitTag (nil for Submit). It runs on the settler's goroutines,
	// possibly concurrently, and should return quickly: a slow OnResult
	// delays the next flush.
	OnResult func(v store.Verdict, tag any, err error)
	// OnFlush, when set, is told the size and wall-clock duration of every
	// Settle call that succeeded, for metrics.
	OnFlush func(verdicts int, took time.Duration)
	// Tracer, when set, returns the tracer of the "settle" span each
	// Settle call is wrapped in, or nil while tracing is off.
	Tracer func() trace.Tracer
}

// Settler batches verdicts into store.Settle calls. It is safe for concurrent
// use. Create it with New; start it with Start.
type Settler struct {
	cfg  Config
	log  *slog.Logger
	base startstop.Base
	kick chan struct{} // capacity 1: wakes the loop; sends never block
	wg   sync.WaitGroup

	mu sync.Mutex // guards the fields below
	// accepting is true between Start and Stop: Submit adds to pending only then.
	accepting bool
	// pending is the FIFO buffer of verdicts not yet in a Settle call.
	pending []item
	// minFlushBy is the earliest flushBy in pending; zero when no pending
	// verdict has a deadline.
	minFlushBy time.Time
	// space, when not nil, is closed (and reset to nil) when pending drops
	// below MaxPending or the settler stops; blocked Submits wait on it.
	space chan struct{}
	// inFlight counts running flush goroutines, at most MaxInFlight.
	inFlight int
	// abort cancels the current run's flush context (its Settle calls) when
	// Stop runs out of time.
	abort context.CancelCauseFunc
	// nudged asks the loop to cut a batch now (see Nudge); cleared when one is cut.
	nudged bool
	// stats are the counters Stats returns; Pending and InFlight are filled
	// in by Stats from len(pending) and inFlightItems.
	stats Stats
	// inFlightItems counts the verdicts in running flushes.
	inFlightItems int
}

// item is one buffered verdict.
type item struct {
	v       store.Verdict
	added   time.Time  // when Submit accepted it
	flushBy time.Time  // flush no later than this; zero: no lock deadline
	wait    chan error // SubmitWait's result, capacity 1; nil for Submit
	tag     any        // SubmitTag's tag, passed to OnResult
}

// Stats are the settler's counters since New. Average batch size is
// (Settled+Refused)/Flushes.
type Stats struct {
	Submitted int64 // verdicts accepted by Submit and SubmitWait
	Settled   int64 // verdicts the store applied
	Refused   int64 // verdicts the store refused per item, LockLost included
	LockLost  int64 // verdicts refused with store.ErrLockLost
	Abandoned int64 // verdicts never applied: permanent call error, or Stop ran out of time

	Batches         int64 // batches cut from the buffer
	BatchesFull     int64 // ... because MaxBatch verdicts were waiting
	BatchesDelay    int64 // ... because the oldest had waited MaxDelay
	BatchesIdle     int64 // ... because a flush slot was free (FlushWhenIdle)
	BatchesDeadline int64 // ... because a lock deadline (lockedUntil - margin) came
	BatchesStop     int64 // ... because the settler was stopping

	Flushes      int64 // Settle calls that succeeded
	FlushErrors  int64 // Settle calls that failed as a whole; each retry counts
	LargestBatch int   // most verdicts in one batch

	Pending  int // verdicts in the buffer now
	InFlight int // verdicts in Settle calls (or their retries) now
}

// AverageBatch returns the mean number of verdicts per successful Settle call.
func (st Stats) AverageBatch() float64 {
	if st.Flushes == 0 {
		return 0
	}
	return float64(st.Settled+st.Refused) / float64(st.Flushes)
}

// New fills cfg's defaults and returns a settler that is not yet started.
// cfg must be valid: New panics with every mistake otherwise. Its caller
// (the Worker) validates its own public configuration, in its users' terms,
// before it builds a settler, so a bad Config here is a programming error.
func New(cfg Config) *Settler {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	return &Settler{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1)}
}

// withDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	cfg.MaxBatch = cmp.Or(cfg.MaxBatch, DefaultMaxBatch)
	cfg.MaxDelay = cmp.Or(cfg.MaxDelay, DefaultMaxDelay)
	cfg.MaxPending = cmp.Or(cfg.MaxPending, DefaultMaxPending)
	cfg.MaxInFlight = cmp.Or(cfg.MaxInFlight, DefaultMaxInFlight)
	cfg.RetryDelay = cmp.Or(cfg.RetryDelay, DefaultRetryDelay)
	cfg.MaxRetryDelay = cmp.Or(cfg.MaxRetryDelay, DefaultMaxRetryDelay)
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// validate returns every mistake in a config whose defaults are filled in.
func (cfg Config) validate() error {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("settle: Config.Store is required"))
	}
	if cfg.MaxBatch < 1 || cfg.MaxBatch > store.MaxBatch {
		errs = append(errs, fmt.Errorf("settle: Config.MaxBatch is %d, want 1..%d", cfg.MaxBatch, store.MaxBatch))
	}
	if cfg.MaxDelay < 0 {
		errs = append(errs, fmt.Errorf("settle: Config.MaxDelay is %v, want > 0", cfg.MaxDelay))
	}
	if cfg.Margin < 0 {
		errs = append(errs, fmt.Errorf("settle: Config.Margin is %v, want >= 0", cfg.Margin))
	}
	if cfg.MaxPending < cfg.MaxBatch {
		errs = append(errs, fmt.Errorf("settle: Config.MaxPending is %d, want at least MaxBatch (%d)", cfg.MaxPending, cfg.MaxBatch))
	}
	if cfg.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("settle: Config.MaxInFlight is %d, want >= 1", cfg.MaxInFlight))
	}
	if cfg.RetryDelay < 0 {
		errs = append(errs, fmt.Errorf("settle: Config.RetryDelay is %v, want > 0", cfg.RetryDelay))
	}
	if cfg.MaxRetryDelay < cfg.RetryDelay {
		errs = append(errs, fmt.Errorf("settle: Config.MaxRetryDelay is %v, want at least RetryDelay (%v)", cfg.MaxRetryDelay, cfg.RetryDelay))
	}
	return errors.Join(errs...)
}

// Start launches the settler's loop and returns once it accepts verdicts.
// The loop keeps ctx's values but not its cancellation: only Stop ends it,
// so that no buffered verdict is stranded. Start fails with
// startstop.ErrAlreadyStarted while a previous run is still winding down.
func (s *Settler) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("settle: start: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := context.WithoutCancel(ctx)
	flushCtx, abort := context.WithCancelCause(parent)
	// The loop takes s.mu before it looks at the buffer, so it sees the
	// fields set below.
	run := func(ctx context.Context) { s.run(ctx, flushCtx, abort) }
	if err := s.base.Start(parent, run); err != nil {
		abort(nil)
		return err
	}
	s.abort, s.accepting = abort, true
	return nil
}

// Stop refuses new verdicts, flushes every buffered one and waits until all
// are settled or reported, or until ctx ends. In the latter case it cancels
// the Settle calls still running, reports every unflushed verdict to
// OnResult with an error matching ErrStopped (from the settler's goroutines,
// which end promptly when the store honours cancellation), and returns an
// error wrapping ctx's. Stop is idempotent: a later call waits again.
func (s *Settler) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.accepting = false
	s.wakeSubmittersLocked()
	abort := s.abort
	s.mu.Unlock()
	err := s.base.Stop(ctx)
	if err != nil && abort != nil {
		abort(fmt.Errorf("%w: stopped before the verdict was flushed: %w", ErrStopped, err))
	}
	return err
}

// Submit hands a verdict to the settler and returns without waiting for it
// to be written. lockedUntil is when the job's lock ends, on Config.Clock: a
// worker measures it on its own clock from when it sent the claim or last
// renewal, never from the store's timestamps, so clock skew between the two
// cannot make a deadline late. The verdict is flushed well before it (see
// Config.Margin). A zero lockedUntil sets no deadline.
//
// The verdict's outcome is reported to Config.OnResult. Submit returns an
// error, and the verdict is not accepted, when the verdict is invalid
// (store.Verdict.Check), when the settler is not running (ErrStopped), or
// when ctx ends while Submit waits for room in a full buffer. Submit blocks
// only while the buffer is full.
func (s *Settler) Submit(ctx context.Context, v store.Verdict, lockedUntil time.Time) error {
	return s.submit(ctx, v, lockedUntil, nil, nil)
}

// SubmitTag is Submit with a tag that OnResult receives with the verdict's
// result: what the caller needs to account for it (a pointer does not
// allocate).
func (s *Settler) SubmitTag(ctx context.Context, v store.Verdict, lockedUntil time.Time, tag any) error {
	return s.submit(ctx, v, lockedUntil, nil, tag)
}

// SubmitWait is Submit followed by waiting until the verdict was written: it
// returns nil when the store applied it, the per-item error when the store
// refused it (such as store.ErrLockLost), or the error it was abandoned
// with. If ctx ends first, SubmitWait returns ctx's error but the verdict
// stays accepted: it is still flushed and reported to OnResult.
func (s *Settler) SubmitWait(ctx context.Context, v store.Verdict, lockedUntil time.Time) error {
	wait := make(chan error, 1)
	if err := s.submit(ctx, v, lockedUntil, wait, nil); err != nil {
		return err
	}
	select {
	case err := <-wait:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (s *Settler) submit(ctx context.Context, v store.Verdict, lockedUntil time.Time, wait chan error, tag any) error {
	if err := v.Check(); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	s.mu.Lock()
	for {
		if !s.accepting {
			s.mu.Unlock()
			return ErrStopped
		}
		if len(s.pending) < s.cfg.MaxPending {
			break
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		space := s.space
		s.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return fmt.Errorf("settle: waiting for room in the buffer: %w", context.Cause(ctx))
		}
		s.mu.Lock()
	}
	now := s.cfg.Clock.Now()
	it := item{v: v, added: now, flushBy: s.flushBy(now, lockedUntil), wait: wait, tag: tag}
	// Wake the loop only when its plan changes: the buffer was empty (start
	// the MaxDelay timer), the batch just filled, or this deadline is the
	// earliest. Otherwise the loop's timer already covers this verdict.
	wake := len(s.pending) == 0 || len(s.pending)+1 == s.cfg.MaxBatch
	if !it.flushBy.IsZero() && (s.minFlushBy.IsZero() || it.flushBy.Before(s.minFlushBy)) {
		s.minFlushBy = it.flushBy
		wake = true
	}
	s.pending = append(s.pending, it)
	s.stats.Submitted++
	s.mu.Unlock()
	if wake {
		s.wake()
	}
	return nil
}

// flushBy returns when a verdict for a lock held until lockedUntil must be
// flushed at the latest; zero when lockedUntil is zero.
func (s *Settler) flushBy(now, lockedUntil time.Time) time.Time {
	if lockedUntil.IsZero() {
		return time.Time{}
	}
	margin := s.cfg.Margin
	if margin == 0 {
		margin = max(lockedUntil.Sub(now)/10, 0)
	}
	return lockedUntil.Add(-margin)
}

// Nudge asks for the pending verdicts to be flushed now rather than after
// MaxDelay, without waiting. A caller about to make its own store call (a
// worker about to claim) nudges first, so that both calls reach the store
// together and can share one commit. Batches cut by a nudge count as
// BatchesIdle.
func (s *Settler) Nudge() {
	s.mu.Lock()
	pending := len(s.pending) > 0
	s.nudged = pending
	s.mu.Unlock()
	if pending {
		s.wake()
	}
}

// Stats returns a snapshot of the counters.
func (s *Settler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Pending = len(s.pending)
	st.InFlight = s.inFlightItems
	return st
}

// wake nudges the loop to look at the buffer again. It never blocks.
func (s *Settler) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// wakeSubmittersLocked releases Submits blocked on a full buffer.
func (s *Settler) wakeSubmittersLocked() {
	if s.space != nil {
		close(s.space)
		s.space = nil
	}
}

var _ startstop.Service = (*Settler)(nil)

// Running reports whether the settler's loop is running.
func (s *Settler) Running() bool { return s.base.Running() }

// PendingSince returns when the oldest verdict still waiting for a batch
// was submitted, on Config.Clock; zero when none waits.
func (s *Settler) PendingSince() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return time.Time{}
	}
	return s.pending[0].added
}
