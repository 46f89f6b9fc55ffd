package store

import (
	"fmt"
	"time"
)

// Schedule is a durable recurring job: a spec read in a time zone, the job
// each slot enqueues, and the policies that decide what happens when runs
// overlap or slots are missed. Zero fields mean their defaults. Package
// schedule parses specs and zones and holds the rules that fire schedules.
type Schedule struct {
	// ID names the schedule, unique per tenant: 1..MaxNameLen bytes of
	// letters, digits and . _ : / -
	ID string
	// Tenant owns the schedule and its runs; empty is the default tenant.
	Tenant string
	// Spec is a cron expression, a descriptor or "@every d" (see
	// schedule.ParseSpec).
	Spec string
	// Zone is the IANA time zone the spec is read in (see
	// schedule.LoadZone); empty means UTC.
	Zone string

	// The job each slot enqueues.

	// Queue is the run's queue; empty means DefaultQueue.
	Queue string
	// Kind names the handler; required.
	Kind string
	// Payload is the run's payload, at most MaxPayloadBytes.
	Payload []byte
	// Priority is between MinPriority and MaxPriority; default 0.
	Priority int
	// MaxAttempts is at most MaxAttemptsLimit; zero means
	// DefaultMaxAttempts.
	MaxAttempts int

	// Overlap is what happens to a slot while a run is live; default OverlapSkip.
	Overlap Overlap
	// Misfire is what happens to missed slots; default MisfireRunOnce.
	Misfire Misfire
	// CatchUpMax caps MisfireCatchUp, 1..MaxCatchUpMax; zero means
	// DefaultCatchUpMax.
	CatchUpMax int
	// Mode is fixed rate or fixed delay; default ModeFixedRate.
	Mode ScheduleMode
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
	LiveJobID ID
	// Fired counts runs enqueued, Skipped slots skipped because a run was
	// live, Dropped missed slots the misfire policy did not run.
	Fired, Skipped, Dropped int64
	// Recent lists the newest runs, newest first, at most MaxRecentRuns.
	Recent []ScheduleRun
	// CreatedAt and UpdatedAt are when the schedule was created and its
	// definition last changed.
	CreatedAt, UpdatedAt time.Time
}

// Limits and defaults of schedules.
const (
	// MaxRecentRuns is how many runs Schedule.Recent keeps.
	MaxRecentRuns = 10
	// DefaultCatchUpMax is how many missed slots MisfireCatchUp fires when
	// the schedule sets no CatchUpMax.
	DefaultCatchUpMax = 10
	// MaxCatchUpMax is the largest CatchUpMax a schedule may set.
	MaxCatchUpMax = 1000
)

// ScheduleRun is one enqueued run of a schedule.
type ScheduleRun struct {
	// Slot is the slot the run is for; for a run from Trigger, the instant
	// of the trigger, to the second.
	Slot time.Time `json:"slot"`
	// JobID is the run's job.
	JobID ID `json:"job_id"`
	// Triggered marks a run enqueued by Trigger rather than by its slot.
	Triggered bool `json:"triggered,omitempty"`
}

// ScheduleRef names one schedule.
type ScheduleRef struct {
	Tenant string
	ID     string
}

// Ref returns the schedule's ScheduleRef.
func (s *Schedule) Ref() ScheduleRef { return ScheduleRef{Tenant: s.Tenant, ID: s.ID} }

// String returns the ID, followed by " (tenant T)" for a named tenant.
func (r ScheduleRef) String() string {
	if r.Tenant == "" {
		return r.ID
	}
	return r.ID + " (tenant " + r.Tenant + ")"
}

// Normalize fills in the defaults that are stored with a schedule, so that
// reading it back shows what applies: the queue (DefaultQueue), max
// attempts (DefaultMaxAttempts) and, under MisfireCatchUp, the catch-up cap
// (DefaultCatchUpMax). schedule.Validate checks the result.
func (s *Schedule) Normalize() {
	if s.Queue == "" {
		s.Queue = DefaultQueue
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.Misfire == MisfireCatchUp && s.CatchUpMax == 0 {
		s.CatchUpMax = DefaultCatchUpMax
	}
}

// Overlap says what happens when a slot arrives while the schedule's previous
// run is still live (queued, running or awaiting retry). The zero value is
// OverlapSkip.
type Overlap int

const (
	// OverlapSkip (the default) never starts a run while the previous one is
	// live: the slot is skipped and counted, and the previous run's
	// settlement, matched by job id, releases the schedule.
	OverlapSkip Overlap = iota
	// OverlapQueueOne keeps at most one run waiting behind the live one: the
	// first slot that arrives while a run is live is enqueued, later ones are
	// skipped and counted until the live run settles.
	OverlapQueueOne
	// OverlapAllow enqueues every slot, however many runs are live.
	OverlapAllow
)

// Misfire says what a scheduler does with slots it missed, for instance
// because no scheduler ran for a while. A slot is missed when the scheduler
// reaches it more than the grace period late. The zero value is
// MisfireRunOnce.
type Misfire int

const (
	// MisfireRunOnce (the default) fires one run, for the newest missed slot,
	// then continues from the next future slot.
	MisfireRunOnce Misfire = iota
	// MisfireSkip fires nothing for missed slots and continues from the next
	// future slot.
	MisfireSkip
	// MisfireCatchUp fires the missed slots, oldest first, up to the
	// schedule's CatchUpMax newest of them; older ones are dropped and counted.
	MisfireCatchUp
)

// ScheduleMode says how a schedule's next slot is counted. The zero value is
// ModeFixedRate.
type ScheduleMode int

const (
	// ModeFixedRate (the default) puts slots on the clock: a cron spec's
	// matches, or "@every d" at fixed steps of d from the first slot, whatever
	// the runs' durations.
	ModeFixedRate ScheduleMode = iota
	// ModeFixedDelay counts the next slot from the previous run's
	// completion: d after it, rounded up to the second.
	ModeFixedDelay
)

var (
	overlapNames = []string{"skip", "queue_one", "allow"}
	misfireNames = []string{"run_once", "skip", "catch_up"}
	modeNames    = []string{"fixed_rate", "fixed_delay"}
)

func enumString(names []string, v int, typ string) string {
	if v >= 0 && v < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, v)
}

func enumParse(names []string, s, field string) (int, error) {
	for i, n := range names {
		if s == n {
			return i, nil
		}
	}
	return 0, &ValidationError{Field: field, Reason: fmt.Sprintf("%q is not one of %v", s, names)}
}

// String returns "skip", "queue_one" or "allow".
func (o Overlap) String() string { return enumString(overlapNames, int(o), "Overlap") }

// String returns "run_once", "skip" or "catch_up".
func (m Misfire) String() string { return enumString(misfireNames, int(m), "Misfire") }

// String returns "fixed_rate" or "fixed_delay".
func (m ScheduleMode) String() string { return enumString(modeNames, int(m), "Mode") }

// ParseOverlap parses "skip", "queue_one" or "allow"; "" means OverlapSkip.
// Errors are *ValidationError.
func ParseOverlap(s string) (Overlap, error) {
	if s == "" {
		return OverlapSkip, nil
	}
	v, err := enumParse(overlapNames, s, "overlap policy")
	return Overlap(v), err
}

// ParseMisfire parses "run_once", "skip" or "catch_up"; "" means MisfireRunOnce.
// Errors are *ValidationError.
func ParseMisfire(s string) (Misfire, error) {
	if s == "" {
		return MisfireRunOnce, nil
	}
	v, err := enumParse(misfireNames, s, "misfire policy")
	return Misfire(v), err
}

// ParseScheduleMode parses "fixed_rate" or "fixed_delay"; "" means
// ModeFixedRate. Errors are *ValidationError.
func ParseScheduleMode(s string) (ScheduleMode, error) {
	if s == "" {
		return ModeFixedRate, nil
	}
	v, err := enumParse(modeNames, s, "mode")
	return ScheduleMode(v), err
}

// MarshalText implements encoding.TextMarshaler.
func (o Overlap) MarshalText() ([]byte, error) {
	return marshalEnum(overlapNames, int(o), "overlap policy")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Overlap) UnmarshalText(b []byte) error {
	v, err := ParseOverlap(string(b))
	if err == nil {
		*o = v
	}
	return err
}

// MarshalText implements encoding.TextMarshaler.
func (m Misfire) MarshalText() ([]byte, error) {
	return marshalEnum(misfireNames, int(m), "misfire policy")
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Misfire) UnmarshalText(b []byte) error {
	v, err := ParseMisfire(string(b))
	if err == nil {
		*m = v
	}
	return err
}

// MarshalText implements encoding.TextMarshaler.
func (m ScheduleMode) MarshalText() ([]byte, error) { return marshalEnum(modeNames, int(m), "mode") }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *ScheduleMode) UnmarshalText(b []byte) error {
	v, err := ParseScheduleMode(string(b))
	if err == nil {
		*m = v
	}
	return err
}

func marshalEnum(names []string, v int, field string) ([]byte, error) {
	if v < 0 || v >= len(names) {
		return nil, &ValidationError{Field: field, Reason: fmt.Sprintf("%d is out of range", v)}
	}
	return []byte(names[v]), nil
}
