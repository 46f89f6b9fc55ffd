package schedule

import (
	"time"

	"github.com/spoolrun/spool/store"
)

// Defaults and limits for misfire handling.
const (
	// DefaultGrace is how late a slot may be reached and still count as on
	// time rather than missed.
	DefaultGrace = time.Minute
	// maxCount bounds how many missed cron slots Plan enumerates to count
	// them; past it, Dropped is a lower bound (see Plan.DroppedCapped).
	maxCount = 100_000
)

// Input is what Plan needs to know about one schedule at one instant.
type Input struct {
	Spec Spec
	Loc  *time.Location // the schedule's zone; nil means UTC
	// Last is the last slot fired, or the schedule's creation time if it has
	// never fired. Slots after Last and at or before Now are due. An "@every"
	// spec's slots are anchored at Last.
	Last time.Time
	Now  time.Time
	// Misfire is the policy for missed slots.
	Misfire store.Misfire
	// CatchUpMax caps MisfireCatchUp. Zero means DefaultCatchUpMax.
	CatchUpMax int
	// Grace is how late a due slot may be and still be on time. On-time slots
	// always fire; the policy applies to the older, missed ones. Zero means
	// DefaultGrace.
	Grace time.Duration
}

// Firing is Plan's decision.
type Firing struct {
	// Fire holds the slots to enqueue now, oldest first: each becomes a run
	// whose key is RunKey(id, tenant, slot).
	Fire []time.Time
	// Dropped counts missed slots that are not fired.
	Dropped int
	// DroppedCapped reports that more than maxCount cron slots were missed
	// and Dropped counts only the first of them.
	DroppedCapped bool
	// Next is the schedule's new next_run_at: the first slot after Now.
	// It is zero if the spec has no slot after Now.
	Next time.Time
}

// Plan decides what a scheduler does with a schedule at in.Now: which due
// slots to enqueue and what the next slot is. It is a pure function of its
// input, so racing schedulers that read the same row decide the same thing,
// and the run keys make the enqueues idempotent.
//
// Due slots are those after in.Last and at or before in.Now. A due slot at
// most in.Grace old is on time and always fires. Older, missed slots follow
// in.Misfire:
//
//   - MisfireRunOnce: if no slot is on time, the newest missed slot fires;
//     every other missed slot is dropped.
//   - MisfireSkip: every missed slot is dropped.
//   - MisfireCatchUp: the newest CatchUpMax missed slots fire, oldest first;
//     older ones are dropped.
func Plan(in Input) Firing {
	loc := inLoc(in.Loc)
	grace := in.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	keep := in.CatchUpMax
	if keep <= 0 {
		keep = store.DefaultCatchUpMax
	}
	switch in.Misfire {
	case store.MisfireSkip:
		keep = 0
	case store.MisfireCatchUp:
	default:
		keep = 1
	}
	var f Firing
	if in.Spec.IsZero() {
		return f
	}
	cut := in.Now.Add(-grace) // slots after cut are on time
	if in.Spec.every > 0 {
		return planInterval(in, loc, cut, keep)
	}

	// Missed slots: after Last, at or before cut. Keep the newest `keep`
	// in a ring while counting all of them.
	ring := make([]time.Time, 0, keep)
	missed, head := 0, 0
	t := in.Spec.Next(in.Last, loc)
	for ; !t.IsZero() && !t.After(cut); t = in.Spec.Next(t, loc) {
		if missed == maxCount {
			// Too many to count one by one: jump to the on-time window.
			// The ring holds old slots; take the newest from a window
			// that ends at cut instead.
			f.DroppedCapped = true
			ring, head = newest(in.Spec, loc, t, cut, keep), 0
			t = in.Spec.Next(cut, loc)
			break
		}
		missed++
		if len(ring) < keep {
			ring = append(ring, t)
		} else if keep > 0 {
			ring[head] = t
			head = (head + 1) % keep
		}
	}
	// On-time slots: after cut (and after Last), at or before Now.
	var onTime []time.Time
	for ; !t.IsZero() && !t.After(in.Now); t = in.Spec.Next(t, loc) {
		onTime = append(onTime, t)
	}
	f.Next = t
	fired := make([]time.Time, 0, len(ring))
	fired = append(fired, ring[head:]...)
	fired = append(fired, ring[:head]...)
	if in.Misfire == store.MisfireRunOnce && len(onTime) > 0 {
		fired = fired[:0]
	}
	f.Dropped = missed - len(fired)
	fired = append(fired, onTime...)
	f.Fire = fired
	return f
}

// planInterval is Plan for "@every d": slots are Last+d, Last+2d, …, so
// everything is arithmetic and nothing is enumerated but what fires.
func planInterval(in Input, loc *time.Location, cut time.Time, keep int) Firing {
	var f Firing
	d := in.Spec.every
	anchor := in.Last.Truncate(time.Second)
	slot := func(k int64) time.Time { return anchor.Add(time.Duration(k) * d).In(loc) }
	// count(x) is the number of slots after anchor and at or before x.
	count := func(x time.Time) int64 {
		if x.Before(anchor) {
			return 0
		}
		return int64(x.Sub(anchor) / d)
	}
	missed := count(cut)
	due := count(in.Now)
	first := max(missed-int64(keep), 0) + 1 // first missed slot that fires
	var onTime []time.Time
	for k := missed + 1; k <= due; k++ {
		onTime = append(onTime, slot(k))
	}
	if in.Misfire == store.MisfireRunOnce && len(onTime) > 0 {
		first = missed + 1
	}
	for k := first; k <= missed; k++ {
		f.Fire = append(f.Fire, slot(k))
	}
	f.Dropped = int(missed - int64(len(f.Fire)))
	f.Fire = append(f.Fire, onTime...)
	f.Next = slot(due + 1)
	return f
}

// newest returns the newest keep slots after from and at or before cut,
// oldest first, looking back from cut over a window that grows until it holds
// keep slots or reaches from.
func newest(spec Spec, loc *time.Location, from, cut time.Time, keep int) []time.Time {
	if keep == 0 {
		return nil
	}
	for w := time.Minute; ; w *= 4 {
		start := cut.Add(-w)
		if !start.After(from) {
			start = from
		}
		s := spec.Slots(start, cut, loc, maxCount)
		if len(s) >= keep || start.Equal(from) || len(s) == maxCount {
			return s[max(len(s)-keep, 0):]
		}
	}
}
