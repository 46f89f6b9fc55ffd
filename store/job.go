package store

import (
	"time"
)

// State is where a job is in its lifecycle (docs/ARCHITECTURE.md has the diagram).
type State string

// The job states. Scheduled, available and running jobs are live; completed,
// cancelled and dead jobs are finished.
const (
	StateScheduled State = "scheduled" // waiting for run_at
	StateAvailable State = "available" // may be claimed now
	StateRunning   State = "running"   // claimed; held by a lock until locked_until
	StateCompleted State = "completed" // finished successfully
	StateCancelled State = "cancelled" // finished by cancellation
	StateDead      State = "dead"      // dead letter: failed for good, kept until requeued or purged
)

// States lists every state in lifecycle order.
var States = []State{StateScheduled, StateAvailable, StateRunning, StateCompleted, StateCancelled, StateDead}

// Live reports whether a job in this state still has work ahead of it.
func (s State) Live() bool {
	return s == StateScheduled || s == StateAvailable || s == StateRunning
}

// Finished reports whether a job in this state is done (completed, cancelled or dead).
func (s State) Finished() bool { return s == StateCompleted || s == StateCancelled || s == StateDead }

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool { return s.Live() || s.Finished() }

// Job is one unit of work as the store keeps it.
type Job struct {
	ID          ID        `json:"id"`
	Queue       string    `json:"queue"`
	Kind        string    `json:"kind"`
	Payload     []byte    `json:"payload,omitempty"`
	Priority    int       `json:"priority"` // lower runs first
	RunAt       time.Time `json:"run_at"`
	State       State     `json:"state"`
	Tenant      string    `json:"tenant,omitempty"`
	UniqueKey   string    `json:"unique_key,omitempty"`
	OrderingKey string    `json:"ordering_key,omitempty"`

	// Attempts counts executions that ended in failure; MaxAttempts is where
	// failures stop retrying and the job is dead-lettered.
	Attempts    int `json:"attempts"`
	MaxAttempts int `json:"max_attempts"`
	// Deliveries counts claims, including those lost to crashes; a job whose
	// lock expires at MaxDeliveries is dead-lettered (poison-message guard).
	Deliveries    int `json:"deliveries"`
	MaxDeliveries int `json:"max_deliveries"`

	// LockToken fences the current delivery; zero unless running.
	LockToken   LockToken `json:"lock_token,omitempty"`
	LockedUntil time.Time `json:"locked_until,omitzero"`

	Errors     []AttemptError `json:"errors,omitempty"` // oldest first, at most MaxErrorHistory
	Result     []byte         `json:"result,omitempty"`
	DeadReason string         `json:"dead_reason,omitempty"`
	// HoldKeyWhenDead: once dead, the job keeps its ordering key's line
	// blocked until it is requeued or purged (EnqueueParams.HoldKeyWhenDead).
	HoldKeyWhenDead bool `json:"hold_key_when_dead,omitempty"`

	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// UniqueUntil is when the job stops holding its unique key once it has
	// finished: created_at plus EnqueueParams.UniqueFor. Zero when it was
	// enqueued without UniqueFor.
	UniqueUntil time.Time `json:"unique_until,omitzero"`

	// Metadata is the small string map the job was enqueued with
	// (EnqueueParams.Metadata): the producer's trace context under
	// MetadataTraceparent, and whatever else the producer attached.
	Metadata map[string]string `json:"metadata,omitempty"`
	// AttemptedAt is when the job's current (or, once settled, latest)
	// delivery began: its last claim, by the store's clock. Zero until
	// the job is first claimed.
	AttemptedAt time.Time `json:"attempted_at,omitzero"`
	// LastAttemptDuration is how long the latest settled delivery took,
	// from its claim to its verdict, by the store's clock. Zero until a
	// delivery is settled; a release (shutdown) and a lost lock leave it
	// as it was.
	LastAttemptDuration time.Duration `json:"last_attempt_duration,omitempty"`
}

// AttemptError records why one delivery of a job did not complete.
type AttemptError struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Message string    `json:"message"`
	Stack   string    `json:"stack,omitempty"` // set for panics
}

// Reasons recorded in Job.DeadReason.
const (
	DeadMaxAttempts   = "max_attempts"   // the last allowed attempt failed
	DeadMaxDeliveries = "max_deliveries" // the lock expired on the last allowed delivery
	DeadByHandler     = "dead_lettered"  // the handler asked for it
)

// Defaults used when a field is left zero.
const (
	DefaultQueue         = "default"
	DefaultMaxAttempts   = 25
	DefaultMaxDeliveries = 10
)

// Limits on what a job may hold. Larger inputs are refused with a *LimitError;
// error messages and stacks from handlers are truncated instead.
const (
	MaxPayloadBytes   = 1 << 20 // 1 MiB
	MaxResultBytes    = 1 << 20 // 1 MiB
	MaxNameLen        = 128     // queue, kind, tenant
	MaxKeyLen         = 255     // unique key, ordering key
	MaxPriority       = 100
	MinPriority       = -100
	MaxAttemptsLimit  = 10_000
	MaxErrorMessage   = 4 << 10  // bytes kept of an error message
	MaxErrorStack     = 16 << 10 // bytes kept of a panic stack
	MaxErrorHistory   = 20       // newest entries kept
	MaxBatch          = 10_000   // items in one Enqueue, Settle, Renew, Cancel or Requeue call
	MaxClaim          = 1_000    // jobs in one Claim
	MinLockDuration   = 100 * time.Millisecond
	MaxLockDuration   = 24 * time.Hour
	MaxListLimit      = 1_000
	DefaultListLimit  = 100
	DefaultClaimLimit = 1
	DefaultPruneLimit = 10_000  // finished jobs one Prune call deletes
	MaxPruneLimit     = 100_000 // the most one Prune call may delete
	MaxReapLimit      = MaxBatch
)

// Limits on job metadata (EnqueueParams.Metadata): entries, and the bytes
// of their names and values together. Larger metadata is refused with a
// *LimitError; a name must be 1..MaxMetadataName bytes. Names and values
// are UTF-8 without NUL bytes.
const (
	MaxMetadata      = 16
	MaxMetadataBytes = 4 << 10
	MaxMetadataName  = 128
)

// Metadata names Spool itself sets: the W3C trace context of the span that
// enqueued a job (https://www.w3.org/TR/trace-context/), so the handler's
// span continues the producer's trace. Events carry the same names in
// their headers.
const (
	MetadataTraceparent = "traceparent"
	MetadataTracestate  = "tracestate"
)

// MaxUniqueFor is the longest EnqueueParams.UniqueFor: how long a job may
// keep its unique key after it was created.
const MaxUniqueFor = 30 * 24 * time.Hour
