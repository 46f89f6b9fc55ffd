package store

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. Test with errors.Is; the typed errors below wrap them.
var (
	ErrNotFound   = errors.New("spool: not found")
	ErrLockLost   = errors.New("spool: lock lost: the job is no longer held by this delivery")
	ErrInvalid    = errors.New("spool: invalid input")
	ErrTooLarge   = errors.New("spool: over a limit")
	ErrWrongState = errors.New("spool: job is in the wrong state for this operation")
	ErrDuplicate  = errors.New("spool: another job already holds this unique key")
	ErrClosed     = errors.New("spool: store is closed")
	ErrSchema     = errors.New("spool: database schema is newer than this build of spool")
	ErrConflict   = errors.New("spool: version conflict: the record changed since it was read")
	// ErrStoreFull refuses enqueues while the store is past its size limit
	// or its disk's free-space floor. Claims, settles, cancels, purges and
	// retention keep working, so workers drain the store and enqueues
	// resume by themselves.
	ErrStoreFull = errors.New("spool: store is full: enqueues are refused until workers drain it or space is freed")
	// ErrUnsupported is returned when a store lacks a capability an
	// operation needs (see Capabilities).
	ErrUnsupported = errors.New("spool: the store does not support this operation")
	// ErrDurability latches a store after a failed fsync: nothing written
	// since the last successful one is known to be on disk, so every write
	// is refused until the store is closed and reopened.
	ErrDurability = errors.New("spool: an fsync failed: writes are refused until the store is reopened")

	// ErrUnauthorized: a call to spool serve carried no API key, or one
	// that is unknown, revoked or expired.
	ErrUnauthorized = errors.New("spool: unauthorized: a valid API key is required")
	// ErrForbidden: the call's API key may not do this (its role, or the
	// queues it is limited to).
	ErrForbidden = errors.New("spool: forbidden: the API key may not do this")
	// ErrRateLimited: the call's API key is over its rate limit; retry
	// after a pause.
	ErrRateLimited = errors.New("spool: rate limited: too many requests for this API key")
)

// Code returns a stable, machine-readable code for an error from the store,
// for APIs and exit codes: "not_found", "lock_lost", "invalid", "too_large",
// "wrong_state", "duplicate", "conflict", "closed", "schema", "store_full",
// "unsupported", "durability", "unauthorized", "forbidden", "rate_limited",
// or "internal".
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
	case errors.Is(err, ErrStoreFull):
		return "store_full"
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	case errors.Is(err, ErrDurability):
		return "durability"
	case errors.Is(err, ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
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

// NotFoundError says which job, schedule or other resource does not exist.
// It matches ErrNotFound.
type NotFoundError struct {
	Resource string // "job", "schedule", ...
	Name     string // its ID, or its reference in text
}

func (e *NotFoundError) Error() string {
	return "spool: " + e.Resource + " " + e.Name + " not found"
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// JobNotFound returns the error for a job that does not exist: a
// *NotFoundError matching ErrNotFound.
func JobNotFound(id ID) error { return &NotFoundError{Resource: "job", Name: id.String()} }

// UniqueKeyNotFound returns the error for a unique key no job of tenant
// has: a *NotFoundError matching ErrNotFound.
func UniqueKeyNotFound(tenant, key string) error {
	name := "with unique key " + strconv.Quote(key)
	if tenant != "" {
		name += " of tenant " + strconv.Quote(tenant)
	}
	return &NotFoundError{Resource: "job", Name: name}
}

// ConflictError refuses an update whose version is not the stored one. It
// matches ErrConflict.
type ConflictError struct {
	Resource string // "schedule", ...
	Name     string // its reference in text
	Want     int64  // the version the update carried
	Current  int64  // the stored version
	// Reason replaces the version message when the conflict is not about
	// versions (a subscription created again with another definition).
	Reason string
}

func (e *ConflictError) Error() string {
	if e.Reason != "" {
		return "spool: " + e.Resource + " " + e.Name + " " + e.Reason
	}
	return fmt.Sprintf("spool: %s %s is at version %d, not %d: read it again and reapply the change", e.Resource, e.Name, e.Current, e.Want)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }
