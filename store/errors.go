package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test with errors.Is; the typed errors below wrap them.
var (
	ErrNotFound   = errors.New("spool: job not found")
	ErrLockLost   = errors.New("spool: lock lost: the job is no longer held by this delivery")
	ErrInvalid    = errors.New("spool: invalid input")
	ErrTooLarge   = errors.New("spool: over a limit")
	ErrWrongState = errors.New("spool: job is in the wrong state for this operation")
	ErrDuplicate  = errors.New("spool: a live job already holds this unique key")
	ErrClosed     = errors.New("spool: store is closed")
	ErrSchema     = errors.New("spool: database schema is newer than this build of spool")
	ErrConflict   = errors.New("spool: version conflict: the record changed since it was read")
)

// Code returns a stable, machine-readable code for an error from the store,
// for APIs and exit codes: "not_found", "lock_lost", "invalid", "too_large",
// "wrong_state", "duplicate", "conflict", "closed", "schema", or "internal".
func Code(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrLockLost):
		return "lock_lost"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrWrongState):
		return "wrong_state"
	case errors.Is(err, ErrDuplicate):
		return "duplicate"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, ErrSchema):
		return "schema"
	}
	return "internal"
}

// ValidationError says which input field is wrong and why. It matches ErrInvalid.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("spool: invalid %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// LimitError says an input exceeds one of the documented limits. It matches
// ErrTooLarge and ErrInvalid.
type LimitError struct {
	Field string
	Limit int
	Got   int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("spool: %s is %d, over the limit of %d", e.Field, e.Got, e.Limit)
}

// Unwrap makes errors.Is match both ErrTooLarge and ErrInvalid.
func (e *LimitError) Unwrap() []error { return []error{ErrTooLarge, ErrInvalid} }

// StateError says an operation does not apply to a job in its current state.
// It matches ErrWrongState.
type StateError struct {
	ID    ID
	State State
	Op    string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("spool: cannot %s job %s: it is %s", e.Op, e.ID, e.State)
}

// Unwrap makes errors.Is(err, ErrWrongState) true.
func (e *StateError) Unwrap() error { return ErrWrongState }
