package spool

import "github.com/spoolrun/spool/store"

// Job is one unit of work as the store keeps it: its queue, kind, payload,
// state, counters, error history and result. Read the payload with
// Kind.Decode and the result with DecodeResult.
type Job = store.Job

// ID identifies a job. IDs are UUIDv7 and sort by creation time.
type ID = store.ID

// State is where a job is in its lifecycle.
type State = store.State

// The job states. Scheduled, available and running jobs are live; completed,
// cancelled and dead jobs are finished.
const (
	StateScheduled = store.StateScheduled // waiting for its run-at time
	StateAvailable = store.StateAvailable // may be claimed now
	StateRunning   = store.StateRunning   // claimed and held by a lock
	StateCompleted = store.StateCompleted // finished successfully
	StateCancelled = store.StateCancelled // finished by cancellation
	StateDead      = store.StateDead      // failed for good; kept until requeued or purged
)

// AttemptError records why one delivery of a job did not complete.
type AttemptError = store.AttemptError

// ListParams filters Client.List. Zero fields do not filter.
type ListParams = store.ListParams

// ListPage is one page of Client.List, with a cursor for the next.
type ListPage = store.ListPage

// EnqueueResult reports what happened to one enqueued item: the job's ID,
// whether the job holding the same unique key (a live one, or a finished
// one within its UniqueFor window) was returned instead (Duplicate), and
// that job's state.
type EnqueueResult = store.EnqueueResult

// QueueStats describes one queue: its counts by state, whether it is paused
// and the age of its oldest available job.
type QueueStats = store.QueueStats

// ParseID parses the canonical text form of an ID, such as
// 019371b4-7c1d-7a3e-9f1c-0a1b2c3d4e5f. Bad input gives a
// *store.ValidationError, which matches ErrInvalid.
func ParseID(s string) (ID, error) { return store.ParseID(s) }
