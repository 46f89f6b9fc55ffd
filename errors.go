package spool

import (
	"errors"
	"fmt"

	"github.com/spoolrun/spool/store"
)

// Sentinel errors. They are the store's own values, so errors.Is works the
// same whether an error came from the Client or straight from a store.
var (
	// ErrNotFound: the job or schedule does not exist (a job may have been
	// pruned).
	ErrNotFound = store.ErrNotFound
	// ErrLockLost: a settle or renew presented a stale lock token.
	ErrLockLost = store.ErrLockLost
	// ErrInvalid: an input was refused; a *store.ValidationError or
	// *store.LimitError says which field and why.
	ErrInvalid = store.ErrInvalid
	// ErrTooLarge: an input is over one of the documented limits (it also
	// matches ErrInvalid).
	ErrTooLarge = store.ErrTooLarge
	// ErrWrongState: the operation does not apply to the job in its current
	// state, such as cancelling a completed job.
	ErrWrongState = store.ErrWrongState
	// ErrDuplicate: another job already holds the unique key, a live one or
	// a finished one within its UniqueFor window (returned by Requeue;
	// Enqueue reports duplicates in EnqueueResult.Duplicate instead).
	ErrDuplicate = store.ErrDuplicate
	// ErrClosed: the store has been closed.
	ErrClosed = store.ErrClosed
	// ErrConflict: an update carried a stale version (a
	// *store.ConflictError says which).
	ErrConflict = store.ErrConflict
	// ErrUnauthorized, ErrForbidden and ErrRateLimited come from a store
	// reached over spool serve (store/remote): the API key is missing or
	// unusable, may not do what was asked, or is over its rate limit.
	ErrUnauthorized = store.ErrUnauthorized
	ErrForbidden    = store.ErrForbidden
	ErrRateLimited  = store.ErrRateLimited
)

// ErrUnsupported is returned when the store lacks a capability the call
// needs (see store.Capabilities). ErrTxUnsupported and
// ErrSchedulesUnsupported match it.
var ErrUnsupported = store.ErrUnsupported

// ErrStoreFull is returned while the store refuses enqueues, until workers
// drain it or space is freed; claims and settles go on.
var ErrStoreFull = store.ErrStoreFull

// ErrTxUnsupported is returned by the transactional enqueue methods when the
// Client's store cannot enqueue inside a caller's *sql.Tx (its Capabilities
// have no SQLTx). It matches ErrUnsupported.
var ErrTxUnsupported = fmt.Errorf("%w: enqueueing in a caller's transaction", store.ErrUnsupported)

// ErrWorkersUnsupported is returned by Client.Workers when the store keeps
// no workers online (its Capabilities have no Workers). It matches
// ErrUnsupported.
var ErrWorkersUnsupported = fmt.Errorf("%w: workers online", store.ErrUnsupported)

// JobError says which job of a Cancel or Requeue call was refused and why.
// Unwrap returns the reason, so errors.Is(err, ErrNotFound) and
// errors.Is(err, ErrWrongState) see through it.
type JobError struct {
	ID  ID
	Err error
}

func (e *JobError) Error() string {
	var se *store.StateError
	if errors.As(e.Err, &se) && se.ID == e.ID {
		return e.Err.Error() // already names the job
	}
	return "spool: job " + e.ID.String() + ": " + e.Err.Error()
}

// Unwrap returns the reason the job was refused.
func (e *JobError) Unwrap() error { return e.Err }
