package maint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

// Retention defaults.
const (
	// DefaultRetentionInterval is how often Retention prunes.
	DefaultRetentionInterval = time.Minute
	// DefaultCompletedRetention is how long completed jobs are kept.
	DefaultCompletedRetention = 24 * time.Hour
	// DefaultCancelledRetention is how long cancelled jobs are kept.
	DefaultCancelledRetention = 24 * time.Hour
	// DefaultPruneLimit is how many jobs one store.Prune call may delete.
	DefaultPruneLimit = 10_000
	// DefaultInboxRetention is how long inbox entries are kept.
	DefaultInboxRetention = 7 * 24 * time.Hour
)

// KeepForever is the retention that keeps jobs of that state until deleted
// by hand (dead letters: requeued or purged). It is the default for dead jobs.
const KeepForever time.Duration = -1

// RetentionConfig configures Retention. Zero fields take the documented
// defaults. A retention is how long after it finished a job of that state is
// deleted; KeepForever keeps it.
type RetentionConfig struct {
	// Store is pruned. Required.
	Store store.Store
	// Interval is the time between passes. Default DefaultRetentionInterval (1m).
	Interval time.Duration
	// CompletedRetention applies to completed jobs. Default
	// DefaultCompletedRetention (24h); KeepForever keeps them. To delete
	// them at the next pass, use a tiny positive duration such as 1ns.
	CompletedRetention time.Duration
	// CancelledRetention applies to cancelled jobs. Default
	// DefaultCancelledRetention (24h); KeepForever keeps them.
	CancelledRetention time.Duration
	// DeadRetention applies to dead-lettered jobs. Default (zero) and
	// KeepForever keep them: dead letters wait to be inspected, requeued or
	// purged.
	DeadRetention time.Duration
	// InboxRetention keeps inbox entries (store.EventSQLTx.MarkSeenTx) this
	// long after they were recorded. Default DefaultInboxRetention (7 days);
	// KeepForever keeps them. It should outlast every redelivery: a
	// delivery's lock times its max deliveries, plus its retries.
	InboxRetention time.Duration
	// Limit is the most jobs one store.Prune call deletes; a call that
	// deletes this many is followed at once by another. Default
	// DefaultPruneLimit (10,000).
	Limit int
	// Clock tells the time the cutoffs are counted back from and runs the
	// timer between passes. Default: the real clock. The cutoffs are
	// compared with the store's finished_at, so a clock that is off moves
	// them by as much: harmless for retentions of hours.
	Clock clockwork.Clock
	// Logger receives a record per pass that pruned something (info), per
	// failed call (warning), and per empty pass (debug). Default: discard.
	Logger *slog.Logger
	// OnPass, when set, is called with the totals of each pass, from the
	// service's goroutine.
	OnPass func(PrunePass)
}

// PrunePass is what one Retention pass did.
type PrunePass struct {
	Pruned int               // jobs deleted
	Events int               // events deleted (topics past their retention)
	Calls  int               // store.Prune calls made (zero when every state is kept forever)
	Params store.PruneParams // the cutoffs and limit the pass used
	Err    error             // the error that ended the pass early; nil when it ran to the end
}

// Retention deletes finished jobs whose retention has passed, by calling
// store.Prune on a timer.
type Retention struct {
	cfg  RetentionConfig
	base startstop.Base
}

// NewRetention fills cfg's defaults and returns a Retention service that
// is not yet started. cfg must be valid: NewRetention panics with every
// mistake otherwise (its caller validates its own public configuration
// first).
func NewRetention(cfg RetentionConfig) *Retention {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	return &Retention{cfg: cfg}
}

func (cfg RetentionConfig) withDefaults() RetentionConfig {
	cfg.Interval = cmp.Or(cfg.Interval, DefaultRetentionInterval)
	cfg.CompletedRetention = cmp.Or(cfg.CompletedRetention, DefaultCompletedRetention)
	cfg.CancelledRetention = cmp.Or(cfg.CancelledRetention, DefaultCancelledRetention)
	cfg.DeadRetention = cmp.Or(cfg.DeadRetention, KeepForever)
	cfg.Limit = cmp.Or(cfg.Limit, DefaultPruneLimit)
	cfg.InboxRetention = cmp.Or(cfg.InboxRetention, DefaultInboxRetention)
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

func (cfg RetentionConfig) validate() error {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("maint: RetentionConfig.Store is required"))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("maint: RetentionConfig.Interval is %v, want > 0", cfg.Interval))
	}
	for _, r := range []struct {
		name string
		d    time.Duration
	}{
		{"CompletedRetention", cfg.CompletedRetention},
		{"CancelledRetention", cfg.CancelledRetention},
		{"DeadRetention", cfg.DeadRetention},
	} {
		if r.d < 0 && r.d != KeepForever {
			errs = append(errs, fmt.Errorf("maint: RetentionConfig.%s is %v, want > 0 or KeepForever", r.name, r.d))
		}
	}
	if cfg.Limit < 0 || cfg.Limit > store.MaxPruneLimit {
		errs = append(errs, fmt.Errorf("maint: RetentionConfig.Limit is %d, want 1..%d", cfg.Limit, store.MaxPruneLimit))
	}
	return errors.Join(errs...)
}

// Start runs a first pass at once and then one every Interval, until Stop is
// called or ctx ends. It fails with startstop.ErrAlreadyStarted while the
// service runs.
func (r *Retention) Start(ctx context.Context) error {
	return r.base.Start(ctx, func(ctx context.Context) { every(ctx, r.cfg.Clock, r.cfg.Interval, r.pass) })
}

// Stop ends the loop, cancelling a call in progress, and waits for it within
// ctx. It is idempotent.
func (r *Retention) Stop(ctx context.Context) error { return r.base.Stop(ctx) }

// params returns the pruning cutoffs as of now; a zero cutoff keeps that state.
func (r *Retention) params(now time.Time) store.PruneParams {
	cutoff := func(d time.Duration) time.Time {
		if d == KeepForever {
			return time.Time{}
		}
		return now.Add(-d)
	}
	return store.PruneParams{
		CompletedBefore: cutoff(r.cfg.CompletedRetention),
		CancelledBefore: cutoff(r.cfg.CancelledRetention),
		DeadBefore:      cutoff(r.cfg.DeadRetention),
		Limit:           r.cfg.Limit,
	}
}

// pass calls Prune until a call deletes fewer than Limit jobs or fails. The
// cutoffs are fixed at the start of the pass.
func (r *Retention) pass(ctx context.Context) {
	p := PrunePass{Params: r.params(r.cfg.Clock.Now())}
	keepAll := p.Params.CompletedBefore.IsZero() && p.Params.CancelledBefore.IsZero() && p.Params.DeadBefore.IsZero()
	for !keepAll && ctx.Err() == nil {
		n, err := r.cfg.Store.Prune(ctx, p.Params)
		p.Calls++
		if err != nil {
			p.Err = err
			break
		}
		p.Pruned += n
		if n < r.cfg.Limit {
			break
		}
	}
	if es := r.cfg.Store.Capabilities().Events; es != nil && p.Err == nil {
		ep := store.PruneEventsParams{Limit: r.cfg.Limit}
		if r.cfg.InboxRetention != KeepForever {
			ep.InboxBefore = r.cfg.Clock.Now().Add(-r.cfg.InboxRetention)
		}
		for ctx.Err() == nil {
			n, err := es.PruneEvents(ctx, ep)
			p.Calls++
			if err != nil {
				p.Err = err
				break
			}
			p.Events += n
			ep.InboxBefore = time.Time{} // once per pass
			if n < r.cfg.Limit {
				break
			}
		}
	}
	log := r.cfg.Logger
	switch {
	case p.Err != nil && ctx.Err() == nil:
		log.Warn("maint: pruning finished jobs failed", slog.Any("err", p.Err), slog.Int("pruned", p.Pruned))
	case p.Pruned > 0 || p.Events > 0:
		log.Info("maint: pruned finished jobs and old events", slog.Int("pruned", p.Pruned), slog.Int("events", p.Events), slog.Int("calls", p.Calls))
	default:
		log.Debug("maint: nothing to prune")
	}
	if r.cfg.OnPass != nil {
		r.cfg.OnPass(p)
	}
}

var _ startstop.Service = (*Retention)(nil)
