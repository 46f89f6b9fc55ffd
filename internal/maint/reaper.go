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

// Reaper defaults.
const (
	// DefaultReapInterval is how often the Reaper looks for expired locks. A
	// job whose lock expires is available again within about this long.
	DefaultReapInterval = time.Second
	// DefaultReapLimit is how many jobs one ReapExpired call may return.
	DefaultReapLimit = 1000
)

// ReaperConfig configures a Reaper. Zero fields take the documented defaults.
type ReaperConfig struct {
	// Store is reaped. Required.
	Store store.Store
	// Interval is the time between passes. Default DefaultReapInterval (1s).
	Interval time.Duration
	// Limit is the most jobs one store.ReapExpired call handles; a call that
	// returns this many is followed at once by another. Default
	// DefaultReapLimit (1000).
	Limit int
	// Clock runs the timer between passes. Default: the real clock. (Which
	// locks expired is decided by the store's clock.)
	Clock clockwork.Clock
	// Logger receives a record per pass that reaped something (info), per
	// failed call (warning), and per empty pass (debug). Default: discard.
	Logger *slog.Logger
	// OnPass, when set, is called with the totals of each pass, from the
	// Reaper's goroutine.
	OnPass func(ReapPass)
}

// ReapPass is what one Reaper pass did.
type ReapPass struct {
	Returned     int   // jobs made available again
	DeadLettered int   // jobs dead-lettered because they reached max deliveries
	Calls        int   // store.ReapExpired calls made
	Err          error // the error that ended the pass early; nil when it ran to the end
}

// Reaper returns jobs whose locks expired to the queue, or dead-letters them
// at their max deliveries, by calling store.ReapExpired on a timer.
type Reaper struct {
	cfg  ReaperConfig
	base startstop.Base
}

// NewReaper fills cfg's defaults and returns a Reaper that is not yet
// started. cfg must be valid: NewReaper panics with every mistake otherwise
// (its caller validates its own public configuration first).
func NewReaper(cfg ReaperConfig) *Reaper {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	return &Reaper{cfg: cfg}
}

func (cfg ReaperConfig) withDefaults() ReaperConfig {
	cfg.Interval = cmp.Or(cfg.Interval, DefaultReapInterval)
	cfg.Limit = cmp.Or(cfg.Limit, DefaultReapLimit)
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

func (cfg ReaperConfig) validate() error {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("maint: ReaperConfig.Store is required"))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("maint: ReaperConfig.Interval is %v, want > 0", cfg.Interval))
	}
	if cfg.Limit < 0 || cfg.Limit > store.MaxReapLimit {
		errs = append(errs, fmt.Errorf("maint: ReaperConfig.Limit is %d, want 1..%d", cfg.Limit, store.MaxReapLimit))
	}
	return errors.Join(errs...)
}

// Start runs a first pass at once and then one every Interval, until Stop is
// called or ctx ends. It fails with startstop.ErrAlreadyStarted while the
// Reaper runs.
func (r *Reaper) Start(ctx context.Context) error {
	return r.base.Start(ctx, func(ctx context.Context) { every(ctx, r.cfg.Clock, r.cfg.Interval, r.pass) })
}

// Stop ends the loop, cancelling a call in progress, and waits for it within
// ctx. It is idempotent.
func (r *Reaper) Stop(ctx context.Context) error { return r.base.Stop(ctx) }

// pass calls ReapExpired until a call comes back short of Limit or fails.
func (r *Reaper) pass(ctx context.Context) {
	var p ReapPass
	for ctx.Err() == nil {
		res, err := r.cfg.Store.ReapExpired(ctx, r.cfg.Limit)
		p.Calls++
		if err != nil {
			p.Err = err
			break
		}
		p.Returned += res.Returned
		p.DeadLettered += res.DeadLettered
		if res.Returned+res.DeadLettered < r.cfg.Limit {
			break
		}
	}
	log := r.cfg.Logger
	switch {
	case p.Err != nil && ctx.Err() == nil:
		log.Warn("maint: reaping expired locks failed", slog.Any("err", p.Err),
			slog.Int("returned", p.Returned), slog.Int("dead_lettered", p.DeadLettered))
	case p.Returned+p.DeadLettered > 0:
		log.Info("maint: reaped expired locks",
			slog.Int("returned", p.Returned), slog.Int("dead_lettered", p.DeadLettered), slog.Int("calls", p.Calls))
	default:
		log.Debug("maint: no expired locks")
	}
	if r.cfg.OnPass != nil {
		r.cfg.OnPass(p)
	}
}

var _ startstop.Service = (*Reaper)(nil)
