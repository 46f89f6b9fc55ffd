package schedule

import (
	"fmt"

	"github.com/spoolrun/spool/store"
)

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
// reaches it more than the grace period (Input.Grace) late. The zero value is
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

// Mode says how the next slot is counted. The zero value is ModeFixedRate.
type Mode int

const (
	// ModeFixedRate (the default) puts slots on the clock: a cron spec's
	// matches, or "@every d" at fixed steps of d from the first slot, whatever
	// the runs' durations.
	ModeFixedRate Mode = iota
	// ModeFixedDelay counts the next slot from the previous run's completion:
	// see Spec.NextAfterCompletion.
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
	return 0, &store.ValidationError{Field: field, Reason: fmt.Sprintf("%q is not one of %v", s, names)}
}

// String returns "skip", "queue_one" or "allow".
func (o Overlap) String() string { return enumString(overlapNames, int(o), "Overlap") }

// String returns "run_once", "skip" or "catch_up".
func (m Misfire) String() string { return enumString(misfireNames, int(m), "Misfire") }

// String returns "fixed_rate" or "fixed_delay".
func (m Mode) String() string { return enumString(modeNames, int(m), "Mode") }

// ParseOverlap parses "skip", "queue_one" or "allow"; "" means OverlapSkip.
// Errors are *store.ValidationError.
func ParseOverlap(s string) (Overlap, error) {
	if s == "" {
		return OverlapSkip, nil
	}
	v, err := enumParse(overlapNames, s, "overlap policy")
	return Overlap(v), err
}

// ParseMisfire parses "run_once", "skip" or "catch_up"; "" means MisfireRunOnce.
// Errors are *store.ValidationError.
func ParseMisfire(s string) (Misfire, error) {
	if s == "" {
		return MisfireRunOnce, nil
	}
	v, err := enumParse(misfireNames, s, "misfire policy")
	return Misfire(v), err
}

// ParseMode parses "fixed_rate" or "fixed_delay"; "" means ModeFixedRate.
// Errors are *store.ValidationError.
func ParseMode(s string) (Mode, error) {
	if s == "" {
		return ModeFixedRate, nil
	}
	v, err := enumParse(modeNames, s, "mode")
	return Mode(v), err
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
func (m Mode) MarshalText() ([]byte, error) { return marshalEnum(modeNames, int(m), "mode") }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err == nil {
		*m = v
	}
	return err
}

func marshalEnum(names []string, v int, field string) ([]byte, error) {
	if v < 0 || v >= len(names) {
		return nil, &store.ValidationError{Field: field, Reason: fmt.Sprintf("%d is out of range", v)}
	}
	return []byte(names[v]), nil
}
