package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/spoolrun/spool/store"
)

// Task is one delivery of a job to a handler: the job as stored and its
// decoded payload.
type Task[T any] struct {
	*Job
	Payload T

	result []byte
}

// SetResult records v (JSON-encoded) as the job's result when the handler
// returns nil. Waiters read it with DecodeResult. At most 1 MiB.
func (t *Task[T]) SetResult(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("spool: encode result: %w", err)
	}
	if len(b) > store.MaxResultBytes {
		return &store.LimitError{Field: "result size", Limit: store.MaxResultBytes, Got: len(b)}
	}
	t.result = b
	return nil
}

// HandlerOptions tune one kind's handler. Zero fields take the Worker's.
type HandlerOptions struct {
	// Timeout bounds one execution through its context. Default:
	// WorkerConfig.JobTimeout. Negative: no timeout.
	Timeout time.Duration
	// Retry decides when a failed job runs again. Default: WorkerConfig.Retry.
	Retry RetryPolicy
}

// handler is a registered handler with its payload decoding erased.
type handler struct {
	run  func(ctx context.Context, job *Job) (result []byte, err error)
	opts HandlerOptions
}

// Handle registers fn as the handler for kind k on w. Register every kind
// before Start; registering a kind twice replaces the earlier handler.
//
// fn's error decides the job's fate: nil completes it (with the result set by
// Task.SetResult, if any); Cancel, Snooze and DeadLetter say what they say;
// any other error fails the attempt, which is retried per the retry policy
// until MaxAttempts, then dead-lettered. A panic is recovered and counts as a
// failed attempt with its stack recorded. A payload that does not decode
// into T is dead-lettered at once: retrying cannot fix it.
func Handle[T any](w *Worker, k Kind[T], fn func(ctx context.Context, t *Task[T]) error, opts *HandlerOptions) {
	h := handler{run: func(ctx context.Context, job *Job) ([]byte, error) {
		t := &Task[T]{Job: job}
		if len(job.Payload) > 0 {
			if err := json.Unmarshal(job.Payload, &t.Payload); err != nil {
				return nil, DeadLetter(fmt.Errorf("decode %s payload: %w", job.Kind, err))
			}
		}
		err := fn(ctx, t)
		return t.result, err
	}}
	if opts != nil {
		h.opts = *opts
	}
	w.register(k.Name(), h)
}

// HandleRaw registers a handler that takes the job as stored, payload bytes
// included. Its result, when not nil, becomes the job's result as is.
func HandleRaw(w *Worker, kind string, fn func(ctx context.Context, job *Job) (result []byte, err error), opts *HandlerOptions) {
	h := handler{run: fn}
	if opts != nil {
		h.opts = *opts
	}
	w.register(kind, h)
}

// outcomeError carries a handler's explicit verdict through its error return.
type outcomeError struct {
	outcome store.Outcome
	err     error
	delay   time.Duration
}

func (e *outcomeError) Error() string {
	switch e.outcome {
	case store.Snooze:
		return fmt.Sprintf("spool: snooze %v", e.delay)
	case store.Cancel:
		return "spool: cancel: " + errText(e.err)
	default:
		return "spool: dead letter: " + errText(e.err)
	}
}

func (e *outcomeError) Unwrap() error { return e.err }

func errText(err error) string {
	if err == nil {
		return "no reason given"
	}
	return err.Error()
}

// Cancel returns an error that, returned by a handler, finishes the job as
// cancelled: it will not run again. err (may be nil) is recorded.
func Cancel(err error) error { return &outcomeError{outcome: store.Cancel, err: err} }

// DeadLetter returns an error that, returned by a handler, dead-letters the
// job now, without further retries. err (may be nil) is recorded.
func DeadLetter(err error) error { return &outcomeError{outcome: store.DeadLetter, err: err} }

// Snooze returns an error that, returned by a handler, runs the job again
// after d without spending an attempt. Negative d counts as zero.
func Snooze(d time.Duration) error {
	return &outcomeError{outcome: store.Snooze, delay: max(d, 0)}
}

// PanicError is how a handler's panic is reported: the value and the stack.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// call runs a handler, turning a panic into a *PanicError.
func (h handler) call(ctx context.Context, job *Job) (result []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			result, err = nil, &PanicError{Value: v, Stack: string(debug.Stack())}
		}
	}()
	return h.run(ctx, job)
}

// RetryPolicy decides how long a job waits after a failed attempt.
type RetryPolicy interface {
	// RetryDelay returns the wait before the next attempt. attempt counts
	// failed attempts so far, including this one (1 after the first failure).
	RetryDelay(job *Job, attempt int, err error) time.Duration
}

// Backoff is the default RetryPolicy: exponential backoff with jitter. The
// n-th retry waits Base·Factor^(n−1), capped at Max, then moved randomly by
// up to ±Jitter of itself so that jobs failing together do not retry together.
// With the defaults: about 1s, 2s, 4s, ... up to 1h, for 25 attempts in all
// spread over roughly 14 hours.
type Backoff struct {
	Base   time.Duration // default 1s
	Factor float64       // default 2
	Max    time.Duration // default 1h
	Jitter float64       // fraction, 0..1; default 0.2
}

// DefaultRetry is the policy used when none is configured.
var DefaultRetry RetryPolicy = Backoff{}

// RetryDelay implements RetryPolicy.
func (b Backoff) RetryDelay(_ *Job, attempt int, _ error) time.Duration {
	base := b.Base
	if base <= 0 {
		base = time.Second
	}
	factor := b.Factor
	if factor < 1 {
		factor = 2
	}
	limit := b.Max
	if limit <= 0 {
		limit = time.Hour
	}
	jitter := b.Jitter
	if jitter <= 0 || jitter > 1 {
		jitter = 0.2
	}
	d := float64(base)
	for i := 1; i < attempt && d < float64(limit); i++ {
		d *= factor
	}
	d = min(d, float64(limit))
	d *= 1 + jitter*(2*rand.Float64()-1)
	return time.Duration(d)
}

// verdictFor turns a handler's return into the verdict for its delivery.
// Retries and snoozes carry a relative Delay, never a time: the store adds
// it to its own clock (the database's on PostgreSQL), so a worker whose
// clock is off makes nothing run early or late.
func verdictFor(job *Job, result []byte, err error, retry RetryPolicy) store.Verdict {
	v := store.Verdict{ID: job.ID, Token: job.LockToken}
	if err == nil {
		v.Outcome, v.Result = store.Complete, result
		return v
	}
	var oe *outcomeError
	if errors.As(err, &oe) {
		v.Outcome = oe.outcome
		switch oe.outcome {
		case store.Snooze:
			v.Delay = oe.delay
		default:
			v.Error = &store.AttemptError{Message: errText(oe.err)}
		}
		return v
	}
	v.Outcome = store.Fail
	v.Error = &store.AttemptError{Message: err.Error()}
	var pe *PanicError
	if errors.As(err, &pe) {
		v.Error.Stack = pe.Stack
	}
	v.Delay = max(retry.RetryDelay(job, job.Attempts+1, err), 0)
	return v
}
