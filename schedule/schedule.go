package schedule

import (
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool/store"
)

// Schedule is a durable recurring job: a spec read in a time zone, the job
// each slot enqueues, and the policies that decide what happens when runs
// overlap or slots are missed. Zero fields mean their defaults.
type Schedule struct {
	// ID names the schedule, unique per tenant: 1..store.MaxNameLen bytes of
	// letters, digits and . _ : / -
	ID string
	// Tenant owns the schedule and its runs; empty is the default tenant.
	Tenant string
	// Spec is a cron expression, a descriptor or "@every d" (see ParseSpec).
	Spec string
	// Zone is the IANA time zone the spec is read in (see LoadZone);
	// empty means UTC.
	Zone string

	// The job each slot enqueues.

	// Queue is the run's queue; empty means store.DefaultQueue.
	Queue string
	// Kind names the handler; required.
	Kind string
	// Payload is the run's payload, at most store.MaxPayloadBytes.
	Payload []byte
	// Priority is between store.MinPriority and store.MaxPriority; default 0.
	Priority int
	// MaxAttempts is at most store.MaxAttemptsLimit; zero means
	// store.DefaultMaxAttempts.
	MaxAttempts int

	// Overlap is what happens to a slot while a run is live; default OverlapSkip.
	Overlap Overlap
	// Misfire is what happens to missed slots; default MisfireRunOnce.
	Misfire Misfire
	// CatchUpMax caps MisfireCatchUp, 1..MaxCatchUpMax; zero means
	// DefaultCatchUpMax.
	CatchUpMax int
	// Mode is fixed rate or fixed delay; default ModeFixedRate.
	Mode Mode
	// Paused schedules fire nothing until resumed.
	Paused bool

	// Version counts the schedule's definition changes, for optimistic
	// concurrency. Upsert with Version zero creates the schedule or replaces
	// it whatever its version; with a non-zero Version it updates only a
	// schedule still at that version, and otherwise fails with a
	// *ConflictError. Firing does not change the version.
	Version int64

	// The fields below are kept by the store; Upsert ignores them.

	// NextRunAt is the next slot to fire. It is zero while a fixed-delay
	// schedule waits for its live run to finish, and when the spec has no
	// more slots.
	NextRunAt time.Time
	// LastRunAt is the newest slot that was enqueued; zero until the first.
	LastRunAt time.Time
	// LiveJobID is the newest run while it is live (queued, running or
	// awaiting a retry); zero otherwise. Its settlement releases the schedule.
	LiveJobID store.ID
	// Fired counts runs enqueued, Skipped slots skipped because a run was
	// live, Dropped missed slots the misfire policy did not run.
	Fired, Skipped, Dropped int64
	// Recent lists the newest runs, newest first, at most MaxRecent.
	Recent []Run
	// CreatedAt and UpdatedAt are when the schedule was created and its
	// definition last changed.
	CreatedAt, UpdatedAt time.Time
}

// MaxRecent is how many runs Schedule.Recent keeps.
const MaxRecent = 10

// Run is one enqueued run of a schedule.
type Run struct {
	// Slot is the slot the run is for; for a run from Trigger, the instant
	// of the trigger, to the second.
	Slot time.Time `json:"slot"`
	// JobID is the run's job.
	JobID store.ID `json:"job_id"`
	// Triggered marks a run enqueued by Trigger rather than by its slot.
	Triggered bool `json:"triggered,omitempty"`
}

// Ref names one schedule.
type Ref struct {
	Tenant string
	ID     string
}

// Ref returns the schedule's Ref.
func (s *Schedule) Ref() Ref { return Ref{Tenant: s.Tenant, ID: s.ID} }

// String returns the ID, followed by " (tenant T)" for a named tenant.
func (r Ref) String() string {
	if r.Tenant == "" {
		return r.ID
	}
	return r.ID + " (tenant " + r.Tenant + ")"
}

// Normalize fills in the defaults that are stored with a schedule, so that
// reading it back shows what applies: the queue (store.DefaultQueue), max
// attempts (store.DefaultMaxAttempts) and, under MisfireCatchUp, the
// catch-up cap (DefaultCatchUpMax). Stores call it before Validate.
func (s *Schedule) Normalize() {
	if s.Queue == "" {
		s.Queue = store.DefaultQueue
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = store.DefaultMaxAttempts
	}
	if s.Misfire == MisfireCatchUp && s.CatchUpMax == 0 {
		s.CatchUpMax = DefaultCatchUpMax
	}
}

// Validate checks s and returns every mistake at once (errors.Join): a
// *SpecError for the spec, a *ZoneError for the zone, and *store.ValidationError
// or *store.LimitError for the rest. All of them match store.ErrInvalid.
func (s *Schedule) Validate() error {
	errs := []error{
		store.ValidName("schedule id", s.ID, false),
		store.ValidName("tenant", s.Tenant, true),
		store.ValidName("queue", s.Queue, true),
		store.ValidName("kind", s.Kind, false),
	}
	spec, err := ParseSpec(s.Spec)
	errs = append(errs, err)
	if _, err := LoadZone(s.Zone); err != nil {
		errs = append(errs, err)
	}
	if len(s.Payload) > store.MaxPayloadBytes {
		errs = append(errs, &store.LimitError{Field: "payload size", Limit: store.MaxPayloadBytes, Got: len(s.Payload)})
	}
	if s.Priority < store.MinPriority || s.Priority > store.MaxPriority {
		errs = append(errs, &store.ValidationError{Field: "priority", Reason: fmt.Sprintf("%d is outside %d..%d", s.Priority, store.MinPriority, store.MaxPriority)})
	}
	if s.MaxAttempts < 0 {
		errs = append(errs, &store.ValidationError{Field: "max attempts", Reason: fmt.Sprintf("%d is negative", s.MaxAttempts)})
	} else if s.MaxAttempts > store.MaxAttemptsLimit {
		errs = append(errs, &store.LimitError{Field: "max attempts", Limit: store.MaxAttemptsLimit, Got: s.MaxAttempts})
	}
	if s.Overlap < OverlapSkip || s.Overlap > OverlapAllow {
		errs = append(errs, &store.ValidationError{Field: "overlap policy", Reason: fmt.Sprintf("%d is not a known policy", s.Overlap)})
	}
	if s.Misfire < MisfireRunOnce || s.Misfire > MisfireCatchUp {
		errs = append(errs, &store.ValidationError{Field: "misfire policy", Reason: fmt.Sprintf("%d is not a known policy", s.Misfire)})
	}
	if s.CatchUpMax < 0 {
		errs = append(errs, &store.ValidationError{Field: "catch-up max", Reason: fmt.Sprintf("%d is negative", s.CatchUpMax)})
	} else if s.CatchUpMax > MaxCatchUpMax {
		errs = append(errs, &store.LimitError{Field: "catch-up max", Limit: MaxCatchUpMax, Got: s.CatchUpMax})
	}
	if s.CatchUpMax != 0 && s.Misfire != MisfireCatchUp {
		errs = append(errs, &store.ValidationError{Field: "catch-up max", Reason: "is set but the misfire policy is " + s.Misfire.String() + ", not catch_up"})
	}
	switch {
	case s.Mode < ModeFixedRate || s.Mode > ModeFixedDelay:
		errs = append(errs, &store.ValidationError{Field: "mode", Reason: fmt.Sprintf("%d is not a known mode", s.Mode)})
	case s.Mode == ModeFixedDelay && err == nil && spec.Interval() == 0:
		errs = append(errs, &store.ValidationError{Field: "mode", Reason: "fixed_delay needs an \"@every <duration>\" spec; a cron spec is fixed_rate"})
	}
	if s.Version < 0 {
		errs = append(errs, &store.ValidationError{Field: "version", Reason: fmt.Sprintf("%d is negative", s.Version)})
	}
	return errors.Join(errs...)
}
