// Package testhook is the one way into the Worker's executor from outside
// package spool: package spooltest works jobs synchronously through it, with
// the Worker's real semantics, without the root package exporting a method
// that only tests should call.
//
// Package spool sets WorkOne in its init; spooltest imports spool, so the
// hook is set before spooltest can call it. Nothing outside this module can
// import the package, so the hook is not part of Spool's API and may change
// with spooltest.
package testhook

import (
	"context"

	"github.com/spoolrun/spool/store"
)

// Attempt is what one synchronous execution did.
type Attempt struct {
	// Job is the job as claimed and given to the handler; nil when the
	// queue had no job available.
	Job *store.Job
	// Err is the attempt's error as the worker recorded it: the handler's
	// error with why its context ended (a timeout), a panic as a
	// *spool.PanicError, "no handler registered"; nil when it completed.
	Err error
	// Verdict is the verdict the worker wrote for the attempt.
	Verdict store.Verdict
	// Refused is the store's refusal of the verdict, such as ErrLockLost
	// when the job was cancelled while its handler ran; nil when applied.
	Refused error
	// Settled is the job as the store holds it after the verdict.
	Settled *store.Job
}

// WorkOne claims one available job of queue for worker (a *spool.Worker),
// runs its handler in the calling goroutine as the Worker's executors do,
// and writes the verdict before it returns. A queue with nothing available
// gives a zero Attempt and no error. It refuses a worker that is running,
// and a queue the worker is not configured for.
//
// Set by package spool's init.
var WorkOne func(ctx context.Context, worker any, queue string) (Attempt, error)

// Store returns the store of worker (a *spool.Worker).
//
// Set by package spool's init.
var Store func(worker any) (store.Store, error)
