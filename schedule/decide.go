package schedule

import (
	"sync"
	"time"

	"github.com/spoolrun/spool/store"
)

// Decision is what FireDue does with one due schedule: Decide computes it and
// every store applies it the same way, in the transaction that took the
// schedule.
type Decision struct {
	// Jobs are the runs to enqueue, oldest slot first, each with a fresh ID
	// and its run key as unique key. Slots[i] is Jobs[i]'s slot, in UTC.
	Jobs  []store.EnqueueParams
	Slots []time.Time
	// Next is the schedule's new next_run_at; zero stores none: a
	// fixed-delay schedule then waits for its live run to finish, which sets
	// it (see ReleaseNext).
	Next time.Time
	// Skipped counts slots not run because a run was live; Dropped, missed
	// slots the misfire policy did not run.
	Skipped, Dropped int
}

// Decide computes what firing s at now does, given the state of its live run
// (live is the state of s.LiveJobID's job; empty when it has none or the job
// is gone). It is a pure function of its input, so every store and every
// racing scheduler decides the same thing.
//
// Due slots come from Plan, counted from s.NextRunAt. Overlap then decides
// slot by slot, oldest first:
//
//   - OverlapSkip: a slot is skipped while a run is live;
//   - OverlapQueueOne: a slot is skipped while a run is live and not yet
//     running (one already waits);
//   - OverlapAllow: every slot runs.
//
// Under OverlapSkip and OverlapQueueOne the runs share an ordering key
// (LineKey), so a queued run starts only after the live one settles.
func Decide(s *store.Schedule, live store.State, now time.Time) (Decision, error) {
	var d Decision
	if s.NextRunAt.IsZero() {
		return d, nil
	}
	spec, loc, err := specZone(s)
	if err != nil {
		return d, err
	}
	f := Plan(Input{
		Spec: spec, Loc: loc, Last: lastBefore(spec, s.NextRunAt), Now: now,
		Misfire: s.Misfire, CatchUpMax: s.CatchUpMax,
	})
	d.Dropped = f.Dropped
	isLive, running := live.Live(), live == store.StateRunning
	for _, slot := range f.Fire {
		if isLive && (s.Overlap == store.OverlapSkip || s.Overlap == store.OverlapQueueOne && !running) {
			d.Skipped++
			continue
		}
		d.Jobs = append(d.Jobs, RunJob(s, slot))
		d.Slots = append(d.Slots, slot.UTC())
		isLive, running = true, false
	}
	d.Next = f.Next.UTC()
	if s.Mode == store.ModeFixedDelay && isLive {
		d.Next = time.Time{} // counted from the live run's completion
	}
	return d, nil
}

// RunJob returns the job a schedule enqueues for a slot: the schedule's
// template, with a fresh ID, the run key as unique key and, under OverlapSkip
// and OverlapQueueOne, the schedule's LineKey as ordering key.
func RunJob(s *store.Schedule, slot time.Time) store.EnqueueParams {
	p := store.EnqueueParams{
		ID:          store.NewID(),
		Queue:       s.Queue,
		Kind:        s.Kind,
		Payload:     s.Payload,
		Priority:    s.Priority,
		Tenant:      s.Tenant,
		UniqueKey:   RunKey(s.ID, s.Tenant, slot),
		MaxAttempts: s.MaxAttempts,
	}
	if s.Overlap != store.OverlapAllow {
		p.OrderingKey = LineKey(s.ID, s.Tenant)
	}
	return p
}

// LineKey is the ordering key of a schedule's runs under OverlapSkip and
// OverlapQueueOne: runs sharing it start one at a time, in enqueue order.
func LineKey(scheduleID, tenant string) string {
	// A run key for the zero slot has the schedule's unique prefix; cut the
	// slot off so the key names the schedule alone.
	k := RunKey(scheduleID, tenant, time.Time{})
	return k[:len(k)-len(slotLayout)-1]
}

// FirstSlot returns the first slot of s after now: its next_run_at when it is
// created, resumed, or its spec, zone or mode change. s must be valid.
func FirstSlot(s *store.Schedule, now time.Time) (time.Time, error) {
	spec, loc, err := specZone(s)
	if err != nil {
		return time.Time{}, err
	}
	return spec.Next(now, loc).UTC(), nil
}

// KeepsSlot reports whether an update of a stored schedule keeps its
// next_run_at: it does when the spec, zone and mode are unchanged;
// otherwise the schedule starts again from FirstSlot.
func KeepsSlot(stored, update *store.Schedule) bool {
	return stored.Spec == update.Spec && stored.Zone == update.Zone && stored.Mode == update.Mode
}

// ResumeSlot returns a resumed schedule's next_run_at: none for a
// fixed-delay schedule with a live run (its completion sets it); its stored
// slot if that is still ahead, which keeps an "@every" schedule's phase;
// else the first slot after now, so slots that passed while it was paused
// are neither run nor counted.
func ResumeSlot(s *store.Schedule, now time.Time) (time.Time, error) {
	if s.Mode == store.ModeFixedDelay && !s.LiveJobID.IsZero() {
		return time.Time{}, nil
	}
	if s.NextRunAt.After(now) {
		return s.NextRunAt, nil
	}
	return FirstSlot(s, now)
}

// ReleaseDelay returns how long after its live run finishes a fixed-delay
// schedule fires next, or zero for a fixed-rate one. Stores keep it with
// the schedule, so that the run's settlement, matched by job id, can set
// next_run_at to the completion rounded up to the second plus this delay
// in the same statement that settles the job.
func ReleaseDelay(s *store.Schedule) time.Duration {
	if s.Mode != store.ModeFixedDelay {
		return 0
	}
	spec, err := parseCached(s.Spec)
	if err != nil {
		return 0
	}
	return spec.Interval()
}

// ReleaseNext is next_run_at of a fixed-delay schedule whose live run
// finished at finished: delay after it, rounded up to the second. Stores
// compute the same in SQL; this is its reference.
func ReleaseNext(finished time.Time, delay time.Duration) time.Time {
	finished = finished.Truncate(time.Microsecond) // as stored
	t := finished.Truncate(time.Second)
	if t.Before(finished) {
		t = t.Add(time.Second)
	}
	return t.Add(delay)
}

// PushRecent returns recent with runs added in front, newest first, keeping
// at most MaxRecent. runs are oldest first.
func PushRecent(recent []store.ScheduleRun, runs ...store.ScheduleRun) []store.ScheduleRun {
	out := make([]store.ScheduleRun, 0, min(len(recent)+len(runs), store.MaxRecentRuns))
	for i := len(runs) - 1; i >= 0 && len(out) < store.MaxRecentRuns; i-- {
		out = append(out, runs[i])
	}
	for i := 0; i < len(recent) && len(out) < store.MaxRecentRuns; i++ {
		out = append(out, recent[i])
	}
	return out
}

// specZone returns the schedule's parsed spec and its zone.
func specZone(s *store.Schedule) (Spec, *time.Location, error) {
	spec, err := parseCached(s.Spec)
	if err != nil {
		return spec, nil, err
	}
	loc, err := LoadZone(s.Zone)
	return spec, loc, err
}

// lastBefore returns the instant Plan counts due slots from, so that next is
// the first of them: slots are whole seconds, and "@every d" is anchored d
// before its next slot.
func lastBefore(spec Spec, next time.Time) time.Time {
	if d := spec.Interval(); d > 0 {
		return next.Add(-d)
	}
	return next.Add(-time.Nanosecond)
}

// specs caches parsed specs by their text: a million schedules share few
// distinct specs. It stops growing at maxCachedSpecs; later specs are parsed
// each time.
var (
	specsMu sync.RWMutex
	specs   = map[string]Spec{}
)

const maxCachedSpecs = 10_000

func parseCached(s string) (Spec, error) {
	specsMu.RLock()
	spec, ok := specs[s]
	specsMu.RUnlock()
	if ok {
		return spec, nil
	}
	spec, err := ParseSpec(s)
	if err != nil {
		return spec, err
	}
	specsMu.Lock()
	if len(specs) < maxCachedSpecs {
		specs[s] = spec
	}
	specsMu.Unlock()
	return spec, nil
}

// Upcoming returns up to n of the schedule's next slots, from NextRunAt on,
// in UTC. A fixed-delay schedule knows only its next slot (the ones after it
// depend on when runs finish); a schedule with no NextRunAt has none.
func Upcoming(s *store.Schedule, n int) ([]time.Time, error) {
	if s.NextRunAt.IsZero() || n <= 0 {
		return nil, nil
	}
	out := []time.Time{s.NextRunAt.UTC()}
	if s.Mode == store.ModeFixedDelay {
		return out, nil
	}
	spec, loc, err := specZone(s)
	if err != nil {
		return nil, err
	}
	for t := s.NextRunAt; len(out) < n; {
		if d := spec.Interval(); d > 0 {
			t = t.Add(d)
		} else if t = spec.Next(t, loc); t.IsZero() {
			break
		}
		out = append(out, t.UTC())
	}
	return out, nil
}
