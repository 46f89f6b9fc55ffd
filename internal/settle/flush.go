package settle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/otel/trace"

	"github.com/spoolrun/spool/internal/tracing"
	"github.com/spoolrun/spool/store"
)

// reason says why a batch was cut.
type reason uint8

const (
	notDue reason = iota
	dueFull
	dueDelay
	dueDeadline
	dueIdle
	dueStop
)

var reasonNames = [...]string{"not_due", "full", "delay", "deadline", "idle", "stop"}

func (r reason) String() string { return reasonNames[r] }

// errBadResults marks a Settle call that answered with the wrong number of
// per-item results: a broken store, so the call is not retried.
var errBadResults = errors.New("settle: store returned a wrong number of results")

// run is the loop goroutine. It cuts batches from the buffer and starts one
// flush goroutine per batch, at most MaxInFlight at once, and owns them: it
// waits for all of them before returning. ctx ending means Stop was called:
// the loop then flushes everything and returns once nothing is pending or
// in flight. flushCtx, the context of the run's Settle calls, is derived
// from Start's ctx like ctx but not from ctx, so that stopping does not
// cancel the final flushes; abort cancels it when Stop runs out of time, and
// the loop then reports what is still buffered as abandoned.
func (s *Settler) run(ctx, flushCtx context.Context, abort context.CancelCauseFunc) {
	defer abort(nil) // release the run's flush context
	defer s.wg.Wait()

	timer := s.cfg.Clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	stopping, aborted := ctx.Done(), flushCtx.Done()
	draining := false
	for {
		s.mu.Lock()
		var dropped []item
		if flushCtx.Err() != nil && len(s.pending) > 0 {
			dropped = s.pending
			s.pending, s.minFlushBy = nil, time.Time{}
			s.stats.Abandoned += int64(len(dropped))
			s.wakeSubmittersLocked()
		}
		now := s.cfg.Clock.Now()
		wait := time.Duration(-1) // no timer: wait for a kick
		for len(s.pending) > 0 && s.inFlight < s.cfg.MaxInFlight {
			why, due := s.dueLocked(now, draining)
			if why == notDue {
				wait = due.Sub(now)
				break
			}
			batch, flushBy := s.takeLocked(why)
			s.inFlight++
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.flush(flushCtx, batch, flushBy)
			}()
		}
		finished := draining && len(s.pending) == 0 && s.inFlight == 0
		if finished {
			// Normally Stop already did this; it matters when a Start raced
			// with the Stop that is ending this run. No verdict may be
			// accepted once the loop is gone.
			s.accepting = false
		}
		s.mu.Unlock()

		if len(dropped) > 0 {
			s.deliver(dropped, nil, context.Cause(flushCtx))
		}
		if finished {
			return
		}
		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-s.kick:
		case <-timer.Chan():
		case <-stopping:
			stopping, draining = nil, true
		case <-aborted:
			aborted = nil
		}
	}
}

// dueLocked says whether a batch should be cut now, and if not, when.
func (s *Settler) dueLocked(now time.Time, draining bool) (reason, time.Time) {
	switch {
	case draining:
		return dueStop, now
	case len(s.pending) >= s.cfg.MaxBatch:
		return dueFull, now
	case s.cfg.FlushWhenIdle, s.nudged:
		return dueIdle, now
	}
	due, why := s.pending[0].added.Add(s.cfg.MaxDelay), dueDelay
	if !s.minFlushBy.IsZero() && s.minFlushBy.Before(due) {
		due, why = s.minFlushBy, dueDeadline
	}
	if now.Before(due) {
		return notDue, due
	}
	return why, due
}

// takeLocked cuts the next batch from the head of the buffer and returns it
// with its earliest flush deadline (zero if none).
func (s *Settler) takeLocked(why reason) ([]item, time.Time) {
	s.nudged = false
	n := min(len(s.pending), s.cfg.MaxBatch)
	batch := s.pending[:n:n]
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil // let the old array go once the batches using it are done
	}
	batchBy := earliestFlushBy(batch)
	s.minFlushBy = earliestFlushBy(s.pending)
	if len(s.pending) < s.cfg.MaxPending {
		s.wakeSubmittersLocked()
	}

	s.inFlightItems += n
	s.stats.Batches++
	s.stats.LargestBatch = max(s.stats.LargestBatch, n)
	switch why {
	case dueFull:
		s.stats.BatchesFull++
	case dueDelay:
		s.stats.BatchesDelay++
	case dueDeadline:
		s.stats.BatchesDeadline++
	case dueIdle:
		s.stats.BatchesIdle++
	case dueStop:
		s.stats.BatchesStop++
	}
	return batch, batchBy
}

func earliestFlushBy(items []item) time.Time {
	var t time.Time
	for i := range items {
		if by := items[i].flushBy; !by.IsZero() && (t.IsZero() || by.Before(t)) {
			t = by
		}
	}
	return t
}

// flush writes one batch, retrying whole-call failures until they succeed,
// turn out permanent, or ctx (the run's flush context) ends.
func (s *Settler) flush(ctx context.Context, batch []item, flushBy time.Time) {
	verdicts := make([]store.Verdict, len(batch))
	for i := range batch {
		verdicts[i] = batch[i].v
	}
	var timer clockwork.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for attempt := 0; ; attempt++ {
		var start time.Time
		if s.cfg.OnFlush != nil {
			start = time.Now()
		}
		errs, err := s.settle(ctx, verdicts)
		if err == nil {
			if s.cfg.OnFlush != nil {
				s.cfg.OnFlush(len(verdicts), time.Since(start))
			}
			if attempt > 0 {
				s.log.Info("settle: settle call succeeded after retrying",
					slog.Int("verdicts", len(batch)), slog.Int("attempts", attempt+1))
			}
			s.finish(batch, errs, nil)
			return
		}
		if ctx.Err() != nil { // Stop ran out of time
			s.finish(batch, nil, context.Cause(ctx))
			return
		}
		s.mu.Lock()
		s.stats.FlushErrors++
		s.mu.Unlock()
		if permanent(err) {
			s.log.Error("settle: settle call failed for good; verdicts not applied",
				slog.Int("verdicts", len(batch)), slog.Any("err", err))
			s.finish(batch, nil, fmt.Errorf("settle: %w", err))
			return
		}
		delay := s.backoff(attempt)
		if until := flushBy.Sub(s.cfg.Clock.Now()); !flushBy.IsZero() && until > 0 && until < delay {
			delay = until // one more try before the locks' deadline
		}
		s.log.Warn("settle: settle call failed; retrying",
			slog.Int("verdicts", len(batch)), slog.Int("attempt", attempt+1),
			slog.Duration("retry_in", delay), slog.Any("err", err))
		if timer == nil {
			timer = s.cfg.Clock.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-timer.Chan():
		case <-ctx.Done():
			s.finish(batch, nil, context.Cause(ctx))
			return
		}
	}
}

// settle makes one Settle call, inside a settle span when tracing is on.
func (s *Settler) settle(ctx context.Context, verdicts []store.Verdict) ([]error, error) {
	var span trace.Span
	if s.cfg.Tracer != nil {
		if tr := s.cfg.Tracer(); tr != nil {
			ctx, span = tracing.StartSettle(ctx, tr, len(verdicts))
		}
	}
	errs, err := s.cfg.Store.Settle(ctx, verdicts)
	if err == nil && len(errs) != len(verdicts) {
		err = fmt.Errorf("%w: %d results for %d verdicts", errBadResults, len(errs), len(verdicts))
	}
	if span != nil {
		refused := 0
		for _, e := range errs {
			if e != nil {
				refused++
			}
		}
		tracing.EndSettle(span, refused, err)
	}
	return errs, err
}

// permanent reports whether a whole-call error cannot be cured by retrying.
func permanent(err error) bool {
	return errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrInvalid) ||
		errors.Is(err, store.ErrSchema) || errors.Is(err, errBadResults)
}

// backoff returns the wait before retry number attempt+1: RetryDelay doubled
// per earlier failure, capped at MaxRetryDelay, with "equal jitter" (half
// fixed, half random) so that settlers restarting together spread out.
func (s *Settler) backoff(attempt int) time.Duration {
	d := s.cfg.RetryDelay
	for range attempt {
		if d >= s.cfg.MaxRetryDelay/2 {
			d = s.cfg.MaxRetryDelay
			break
		}
		d *= 2
	}
	d = min(d, s.cfg.MaxRetryDelay)
	half := d / 2
	return half + rand.N(d-half+1)
}

// finish ends a flush: it frees the flush slot, counts the outcome and
// reports each verdict. errs holds per-item results when whole is nil.
func (s *Settler) finish(batch []item, errs []error, whole error) {
	s.mu.Lock()
	s.inFlight--
	s.inFlightItems -= len(batch)
	if whole != nil {
		s.stats.Abandoned += int64(len(batch))
	} else {
		s.stats.Flushes++
		for _, err := range errs {
			switch {
			case err == nil:
				s.stats.Settled++
			case errors.Is(err, store.ErrLockLost):
				s.stats.LockLost++
				s.stats.Refused++
			default:
				s.stats.Refused++
			}
		}
	}
	s.mu.Unlock()
	s.wake() // a flush slot is free
	s.deliver(batch, errs, whole)
}

// deliver reports each verdict's result to its waiter and OnResult, and
// logs refusals. errs holds per-item results when whole is nil.
func (s *Settler) deliver(batch []item, errs []error, whole error) {
	for i := range batch {
		err := whole
		if err == nil {
			err = errs[i]
			if err != nil {
				s.log.Warn("settle: verdict refused",
					slog.String("job", batch[i].v.ID.String()),
					slog.String("outcome", batch[i].v.Outcome.String()),
					slog.Any("err", err))
			}
		}
		if s.cfg.OnResult != nil {
			s.cfg.OnResult(batch[i].v, batch[i].tag, err)
		}
		if batch[i].wait != nil {
			batch[i].wait <- err
		}
	}
}
