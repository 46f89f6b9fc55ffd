// Package scheduler runs schedule firing: a service that calls
// store.ScheduleStore.FireDue whenever a schedule is due (docs/schedules.md).
//
// The service holds no schedules. Each pass asks the store to fire what is
// due, in batches, until a batch comes back short; the store's answer says
// when the next schedule is due, and the service sleeps until then, or for
// MaxWait at most, so that schedules written by other processes are noticed.
// Any number of processes may run it against one store: the store fires each
// slot once, whoever asks.
//
// # Time
//
// Which schedules are due is decided by the store's clock (the database's on
// PostgreSQL). The service never compares the store's times with its own
// clock: it sleeps for NextDue minus the store's time of the same call
// (store.FireResult.Now), measured on its own clock. A process whose clock
// is off therefore fires neither early nor late.
package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

// Defaults.
const (
	// DefaultMaxWait is the longest the service sleeps between passes, and
	// so how late a schedule written by another process can be noticed.
	DefaultMaxWait = time.Second
	// DefaultConcurrency is how many FireDue calls run at once while a
	// backlog lasts.
	DefaultConcurrency = 2
	// MaxConcurrency is the most FireDue calls that may run at once.
	MaxConcurrency = 64
	// maxBackoff caps the wait after failed calls.
	maxBackoff = 5 * time.Second
)

// Config configures a Scheduler. Zero fields take the documented defaults.
type Config struct {
	// Store fires schedules. Required.
	Store store.ScheduleStore
	// Batch is the Limit of each FireDue call, 1..store.MaxFireBatch.
	// Default store.DefaultFireBatch.
	Batch int
	// Concurrency is how many FireDue calls run at once when a call comes
	// back full (more is due than one batch): on PostgreSQL the calls take
	// disjoint batches and use separate server processes, so a burst of due
	// schedules is fired on several cores. Default DefaultConcurrency (2);
	// at most MaxConcurrency.
	Concurrency int
	// MaxWait bounds each sleep. Default DefaultMaxWait (1s).
	MaxWait time.Duration
	// Clock runs the service's sleeps. Default: the real clock. It is never
	// compared with the store's times (see the package doc).
	Clock clockwork.Clock
	// Logger receives a warning per failed call and a debug record per
	// pass. Default: discard.
	Logger *slog.Logger
	// OnFire, when set, is called with every FireDue result that took a
	// schedule, from the service's goroutines (several at once while a
	// backlog is shared).
	OnFire func(*store.FireResult)
}

// Scheduler is the firing service. Start it, Stop it.
type Scheduler struct {
	cfg  Config
	base startstop.Base
}

// New fills cfg's defaults and returns a Scheduler that is not yet started.
// cfg must be valid: New panics with every mistake otherwise (its caller
// validates its own public configuration first).
func New(cfg Config) *Scheduler {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	return &Scheduler{cfg: cfg}
}

func (cfg Config) withDefaults() Config {
	cfg.Batch = cmp.Or(cfg.Batch, store.DefaultFireBatch)
	cfg.MaxWait = cmp.Or(cfg.MaxWait, DefaultMaxWait)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

func (cfg Config) validate() error {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("scheduler: Config.Store is required"))
	}
	if cfg.Batch < 1 || cfg.Batch > store.MaxFireBatch {
		errs = append(errs, fmt.Errorf("scheduler: Config.Batch is %d, want 1..%d", cfg.Batch, store.MaxFireBatch))
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency {
		errs = append(errs, fmt.Errorf("scheduler: Config.Concurrency is %d, want 1..%d", cfg.Concurrency, MaxConcurrency))
	}
	if cfg.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("scheduler: Config.MaxWait is %v, want > 0", cfg.MaxWait))
	}
	return errors.Join(errs...)
}

// Start runs the loop until Stop or ctx ends.
func (s *Scheduler) Start(ctx context.Context) error { return s.base.Start(ctx, s.run) }

// Stop ends the loop, cancelling a call in progress, and waits within ctx.
func (s *Scheduler) Stop(ctx context.Context) error { return s.base.Stop(ctx) }

func (s *Scheduler) run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		wait := s.cfg.MaxWait
		next, err := s.pass(ctx)
		switch {
		case err != nil:
			failures++
			wait = min(time.Duration(1<<min(failures, 10))*50*time.Millisecond, maxBackoff)
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("scheduler: firing due schedules failed", slog.Any("err", err), slog.Duration("retry_in", wait))
			}
		case !next.IsZero():
			failures = 0
			wait = min(wait, max(next.Sub(s.cfg.Clock.Now()), 0))
		default:
			failures = 0
		}
		timer := s.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.Chan():
		}
	}
}

// pass fires until a batch comes back short, and returns when, on the
// scheduler's own clock, the next schedule is due (zero: none has a next
// slot). When the first call comes back full, Concurrency loops share the
// backlog.
func (s *Scheduler) pass(ctx context.Context) (time.Time, error) {
	res, asked, err := s.fire(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if res.Schedules < s.cfg.Batch {
		return nextAt(res, asked), nil
	}
	var (
		mu   sync.Mutex
		next time.Time
		errs []error
		wg   sync.WaitGroup
	)
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				res, asked, err := s.fire(ctx)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if at := nextAt(res, asked); res.Schedules < s.cfg.Batch && !at.IsZero() && (next.IsZero() || at.Before(next)) {
					next = at
				}
				mu.Unlock()
				if err != nil || res.Schedules < s.cfg.Batch {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return time.Time{}, err
	}
	return next, nil
}

// nextAt turns the store's answer into a time on the scheduler's clock: the
// next schedule is due NextDue-Now after the store's time of the answer,
// which came no sooner than asked, when the call was made on the
// scheduler's clock. So the scheduler never compares the store's times with
// its own clock, and the time the call took does not delay the next pass.
// Zero when no schedule has a next slot.
func nextAt(res *store.FireResult, asked time.Time) time.Time {
	if res.NextDue.IsZero() {
		return time.Time{}
	}
	return asked.Add(max(res.NextDue.Sub(res.Now), 0))
}

// fire makes one FireDue call and reports what it fired, and when, on the
// scheduler's clock, it was asked.
func (s *Scheduler) fire(ctx context.Context) (*store.FireResult, time.Time, error) {
	asked := s.cfg.Clock.Now()
	res, err := s.cfg.Store.FireDue(ctx, store.FireParams{Limit: s.cfg.Batch})
	if err != nil {
		return nil, asked, err
	}
	if res.Schedules > 0 {
		s.cfg.Logger.Debug("scheduler: fired", slog.Int("schedules", res.Schedules), slog.Int("runs", len(res.Runs)),
			slog.Int("skipped", res.Skipped), slog.Int("dropped", res.Dropped))
		if s.cfg.OnFire != nil {
			s.cfg.OnFire(res)
		}
	}
	return res, asked, nil
}

var _ startstop.Service = (*Scheduler)(nil)
