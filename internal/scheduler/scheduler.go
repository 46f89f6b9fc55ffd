// Package scheduler runs schedule firing: a service that calls
// store.ScheduleStore.FireDue whenever a schedule is due (DESIGN §8).
//
// The service holds no schedules. Each pass asks the store to fire what is
// due, in batches, until a batch comes back short; the store's answer says
// when the next schedule is due, and the service sleeps until then, or for
// MaxWait at most, so that schedules written by other processes are noticed.
// Any number of processes may run it against one store: the store fires each
// slot once, whoever asks.
package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

// Defaults.
const (
	// DefaultBatch is how many due schedules one FireDue call takes.
	DefaultBatch = 1000
	// DefaultMaxWait is the longest the service sleeps between passes, and
	// so how late a schedule written by another process can be noticed.
	DefaultMaxWait = time.Second
	// DefaultConcurrency is how many FireDue calls run at once while a
	// backlog lasts.
	DefaultConcurrency = 2
	// maxBackoff caps the wait after failed calls.
	maxBackoff = 5 * time.Second
)

// Config configures a Scheduler. Zero fields take the documented defaults.
type Config struct {
	// Store fires schedules. Required.
	Store store.ScheduleStore
	// Batch is the Limit of each FireDue call. Default DefaultBatch.
	Batch int
	// Concurrency is how many FireDue calls run at once when a call comes
	// back full (more is due than one batch): on PostgreSQL the calls take
	// disjoint batches and use separate server processes, so a burst of due
	// schedules is fired on several cores. Default DefaultConcurrency (2).
	Concurrency int
	// MaxWait bounds each sleep. Default DefaultMaxWait (1s).
	MaxWait time.Duration
	// Now is the clock that NextDue is compared with. Default time.Now.
	Now func() time.Time
	// Logger receives a warning per failed call and a debug record per
	// pass. Default: discard.
	Logger *slog.Logger
	// OnFire, when set, is called with every FireDue result that took a
	// schedule, from the service's goroutines (several at once while a
	// backlog is shared).
	OnFire func(*store.FireResult)
}

// Scheduler is the firing service. Start it, Stop it; Wake it when a
// schedule was written in this process so it looks at once.
type Scheduler struct {
	cfg  Config
	base startstop.Base
	wake chan struct{}
}

// New checks cfg and returns a Scheduler that is not yet started.
func New(cfg Config) (*Scheduler, error) {
	cfg.Batch = cmp.Or(cfg.Batch, DefaultBatch)
	cfg.MaxWait = cmp.Or(cfg.MaxWait, DefaultMaxWait)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("scheduler: Config.Store is required"))
	}
	if cfg.Batch < 1 || cfg.Batch > store.MaxFireBatch {
		errs = append(errs, fmt.Errorf("scheduler: Config.Batch is %d, want 1..%d", cfg.Batch, store.MaxFireBatch))
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("scheduler: Config.Concurrency is %d, want 1..64", cfg.Concurrency))
	}
	if cfg.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("scheduler: Config.MaxWait is %v, want > 0", cfg.MaxWait))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Scheduler{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Start runs the loop until Stop or ctx ends.
func (s *Scheduler) Start(ctx context.Context) error { return s.base.Start(ctx, s.run) }

// Stop ends the loop, cancelling a call in progress, and waits within ctx.
func (s *Scheduler) Stop(ctx context.Context) error { return s.base.Stop(ctx) }

// Wake makes a sleeping loop look for due schedules at once.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
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
			wait = min(wait, max(next.Sub(s.cfg.Now()), 0))
		default:
			failures = 0
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// pass fires until a batch comes back short, and returns when the next
// schedule is due (zero: none has a next slot). When the first call comes
// back full, Concurrency loops share the backlog.
func (s *Scheduler) pass(ctx context.Context) (time.Time, error) {
	res, err := s.fire(ctx)
	if err != nil || res.Schedules < s.cfg.Batch {
		if err != nil {
			return time.Time{}, err
		}
		return res.NextDue, nil
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
				res, err := s.fire(ctx)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if res.Schedules < s.cfg.Batch && !res.NextDue.IsZero() && (next.IsZero() || res.NextDue.Before(next)) {
					next = res.NextDue
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

// fire makes one FireDue call and reports what it fired.
func (s *Scheduler) fire(ctx context.Context) (*store.FireResult, error) {
	res, err := s.cfg.Store.FireDue(ctx, store.FireParams{Limit: s.cfg.Batch})
	if err != nil {
		return nil, err
	}
	if res.Schedules > 0 {
		s.cfg.Logger.Debug("scheduler: fired", slog.Int("schedules", res.Schedules), slog.Int("runs", len(res.Runs)),
			slog.Int("skipped", res.Skipped), slog.Int("dropped", res.Dropped))
		if s.cfg.OnFire != nil {
			s.cfg.OnFire(res)
		}
	}
	return res, nil
}

var _ startstop.Service = (*Scheduler)(nil)
