// Package startstop is the one lifecycle contract every background component
// of Spool follows (the fetcher, the settler, the reaper, retention, ...).
//
// # Contract
//
// A Service is started once with Start and stopped with Stop:
//
//   - Start returns once the service is running, or an error. Starting a
//     service that is still running returns ErrAlreadyStarted.
//   - Stop is idempotent and safe to call at any time, from any goroutine,
//     even on a service that never started. It asks the service to stop and
//     waits for its goroutines to exit, for at most as long as its ctx
//     allows; when ctx ends first it returns ctx's error and the goroutines
//     finish on their own (a later Stop waits for them again).
//   - A service whose goroutines have exited may be started again.
//
// # Ownership
//
// Every goroutine has an owner that waits for it. Base owns exactly one loop
// goroutine per run; a service that needs more goroutines starts them from
// its loop and waits for them before the loop returns, so that Stop waiting
// for the loop waits for all of them.
package startstop

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Service is a background component with a lifecycle.
type Service interface {
	// Start launches the service and returns once it is running.
	Start(ctx context.Context) error
	// Stop stops the service and waits, bounded by ctx, for its goroutines.
	Stop(ctx context.Context) error
}

// Errors returned by Base and the helpers.
var (
	// ErrAlreadyStarted is returned by Start while an earlier run's goroutine
	// is still running (including one that is stopping but has not exited).
	ErrAlreadyStarted = errors.New("startstop: already started")
	// ErrStopped is the cancellation cause a loop's context carries after
	// Stop: context.Cause(ctx) matches it.
	ErrStopped = errors.New("startstop: stopped")
)

// Base implements the Service lifecycle for a component whose work is one
// loop goroutine. Embed it as a named field (not anonymously, so its
// Start(ctx, run) does not clash with Service.Start) and forward:
//
//	func (r *Reaper) Start(ctx context.Context) error { return r.base.Start(ctx, r.run) }
//	func (r *Reaper) Stop(ctx context.Context) error  { return r.base.Stop(ctx) }
//
// The zero value is ready to use. A Base must not be copied after first use.
type Base struct {
	mu sync.Mutex // guards cancel and done
	// cancel cancels the current run's loop context; nil before the first Start.
	cancel context.CancelCauseFunc
	// done is closed when the current run's loop goroutine has returned; nil
	// before the first Start.
	done chan struct{}
}

// Start runs run(loopCtx) in a new goroutine owned by b and returns at once.
// loopCtx is derived from ctx (it keeps ctx's values and ends when ctx ends)
// and is also cancelled by Stop, with cause ErrStopped. run should return
// promptly once loopCtx is done; a service that must outlive ctx's
// cancellation (one that drains on Stop) passes context.WithoutCancel(ctx).
//
// Start fails with ErrAlreadyStarted while a previous run's goroutine is
// still running, and with ctx's error when ctx is already done.
func (b *Base) Start(ctx context.Context, run func(ctx context.Context)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("startstop: start: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done != nil && !isClosed(b.done) {
		return ErrAlreadyStarted
	}
	loopCtx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	b.cancel, b.done = cancel, done
	go func() {
		defer close(done)
		defer cancel(nil) // release the context's resources once the loop is over
		run(loopCtx)
	}()
	return nil
}

// Stop cancels the current run's loop context (cause ErrStopped) and waits
// for its goroutine to return, or for ctx to end, whichever comes first. It
// returns nil once the goroutine has returned (also when it never started or
// already exited), and an error wrapping ctx's cause otherwise. Stop is
// idempotent: calling it again cancels nothing new and waits again.
func (b *Base) Stop(ctx context.Context) error {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel(ErrStopped)
	select {
	case <-done:
		return nil
	default:
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("startstop: stop: %w", context.Cause(ctx))
	}
}

// Running reports whether a run's goroutine is running (it may be stopping).
func (b *Base) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done != nil && !isClosed(b.done)
}

// Done returns a channel that is closed when the current run's goroutine has
// returned. Before the first Start it returns a closed channel. A later
// Start makes a new channel; the old one stays closed.
func (b *Base) Done() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done == nil {
		return closedChan
	}
	return b.done
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// StartAll starts services in order. If one fails to start, the ones already
// started are stopped in reverse order (bounded by ctx) and the start error
// is returned, joined with any stop errors.
func StartAll(ctx context.Context, services ...Service) error {
	for i, s := range services {
		if err := s.Start(ctx); err != nil {
			errs := []error{fmt.Errorf("startstop: start service %d: %w", i, err)}
			for j := i - 1; j >= 0; j-- {
				if serr := services[j].Stop(ctx); serr != nil {
					errs = append(errs, fmt.Errorf("startstop: stop service %d: %w", j, serr))
				}
			}
			return errors.Join(errs...)
		}
	}
	return nil
}

// StopAll stops services one after another in the order given, all within
// the same ctx, and returns their errors joined. Every service is asked to
// stop even when an earlier one failed to stop in time. Order matters for
// graceful shutdown (stop fetching before flushing verdicts), so it is the
// caller's to choose.
func StopAll(ctx context.Context, services ...Service) error {
	var errs []error
	for i, s := range services {
		if err := s.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("startstop: stop service %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
