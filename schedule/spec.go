package schedule

import (
	"fmt"
	"strings"
	"time"

	cron "github.com/netresearch/go-cron"

	"github.com/spoolrun/spool/store"
)

// MaxSpecLen is the longest spec ParseSpec accepts, in bytes.
const MaxSpecLen = 256

// MinInterval is the shortest "@every" interval.
const MinInterval = time.Second

// ErrInvalidSpec matches every error ParseSpec returns. It wraps
// store.ErrInvalid, so store.Code reports such errors as "invalid".
var ErrInvalidSpec = fmt.Errorf("spool: invalid schedule spec: %w", store.ErrInvalid)

// SpecError says why a spec was refused. It matches ErrInvalidSpec.
type SpecError struct {
	Spec   string // the input, as given
	Reason string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("spool: invalid schedule spec %q: %s", e.Spec, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidSpec) and errors.Is(err, store.ErrInvalid) true.
func (e *SpecError) Unwrap() error { return ErrInvalidSpec }

// parser reads 5- or 6-field cron (a leading seconds field is optional) and the
// descriptors. Day of month and day of week combine as in POSIX cron: when both
// are restricted a day matching either fires. Searching 10 years ahead finds
// every spec that can fire at all (29 February recurs within 8 years).
var parser = cron.MustNewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow |
	cron.Descriptor | cron.DowOrDom).WithSecondOptional().WithMaxSearchYears(10)

// Spec is a parsed schedule: either a cron expression matched against the wall
// clock of a time zone, or a fixed interval ("@every 90s") measured in absolute
// time. The zero Spec never fires: Next returns the zero time.
type Spec struct {
	raw   string
	every time.Duration      // > 0 for "@every"
	cron  *cron.SpecSchedule // matched against civil time; Location is UTC
}

// ParseSpec parses a schedule spec:
//
//   - standard 5-field cron: "minute hour day-of-month month day-of-week",
//     e.g. "30 2 * * *" or "*/15 9-17 * * MON-FRI";
//   - 6 fields with a leading seconds field: "0 30 2 * * *";
//   - a descriptor: @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly;
//   - a fixed interval of whole seconds, at least MinInterval: "@every 90s", "@every 1h30m".
//
// The time zone is not part of the spec: a "TZ=" or "CRON_TZ=" prefix is
// refused (set the schedule's Zone instead). Errors are *SpecError.
func ParseSpec(s string) (Spec, error) {
	fail := func(format string, args ...any) (Spec, error) {
		return Spec{}, &SpecError{Spec: s, Reason: fmt.Sprintf(format, args...)}
	}
	spec := strings.TrimSpace(s)
	switch {
	case spec == "":
		return fail("is empty")
	case len(s) > MaxSpecLen:
		return fail("is %d bytes long; the limit is %d", len(s), MaxSpecLen)
	case hasZonePrefix(spec):
		return fail("has a time zone prefix; the zone is a separate field of the schedule (Zone), not part of the spec")
	}
	if rest, ok := strings.CutPrefix(spec, "@every"); ok {
		if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			return fail("@every needs a duration, e.g. \"@every 90s\"")
		}
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		switch {
		case err != nil:
			return fail("@every needs a duration such as 90s or 1h30m: %v", err)
		case d < MinInterval:
			return fail("@every interval %v is shorter than %v", d, MinInterval)
		case d%time.Second != 0:
			return fail("@every interval %v is not a whole number of seconds", d)
		}
		return Spec{raw: spec, every: d}, nil
	}
	if strings.HasPrefix(spec, "@") {
		switch spec {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		default:
			return fail("unknown descriptor; use @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>")
		}
	}
	parsed, err := parser.Parse(spec)
	if err != nil {
		return fail("%v", err)
	}
	sched, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return fail("unsupported form (%T)", parsed)
	}
	civil := *sched
	civil.Location = time.UTC
	out := Spec{raw: spec, cron: &civil}
	// A spec that can never match (30 February) would never fire: refuse it now
	// rather than store a schedule that silently does nothing.
	if civil.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return fail("never fires (no date matches it)")
	}
	return out, nil
}

func hasZonePrefix(s string) bool {
	u := strings.ToUpper(s)
	return strings.HasPrefix(u, "TZ=") || strings.HasPrefix(u, "CRON_TZ=")
}

// MustParseSpec is ParseSpec for specs known to be valid, such as constants in
// tests and examples. It panics on an error.
func MustParseSpec(s string) Spec {
	spec, err := ParseSpec(s)
	if err != nil {
		panic(err)
	}
	return spec
}

// String returns the spec as parsed (surrounding space trimmed).
func (s Spec) String() string { return s.raw }

// IsZero reports whether s is the zero Spec, which never fires.
func (s Spec) IsZero() bool { return s.every == 0 && s.cron == nil }

// Interval returns the duration of an "@every" spec, or 0 for a cron spec.
func (s Spec) Interval() time.Duration { return s.every }

// Next returns the first slot strictly after after, in loc (nil means UTC).
//
// A cron spec is matched against the wall clock of loc, with the DST rules in
// the package documentation. An "@every d" spec is anchored at after: Next
// returns after, truncated to the second, plus d. Slots are always whole
// seconds. Next returns the zero time for the zero Spec.
func (s Spec) Next(after time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	switch {
	case s.every > 0:
		return after.Truncate(time.Second).Add(s.every).In(loc)
	case s.cron != nil:
		return s.nextCron(after, loc)
	}
	return time.Time{}
}

// maxCandidates bounds the civil candidates nextCron examines; only the
// repeated hour of a fall-back transition makes it look at more than one.
const maxCandidates = 1 << 20

// nextCron returns the first instant after after whose wall-clock slot in loc
// matches the spec. Civil (wall-clock) slots are enumerated in a zone without
// DST and each is resolved to an instant; resolution is monotonic in the civil
// time, so the first slot resolving strictly after after is the answer, and
// two slots resolving to the same instant (the gap rule) fire once.
func (s Spec) nextCron(after time.Time, loc *time.Location) time.Time {
	la := after.In(loc)
	c := time.Date(la.Year(), la.Month(), la.Day(), la.Hour(), la.Minute(), la.Second(), 0, time.UTC)
	for range maxCandidates {
		c = s.cron.Next(c)
		if c.IsZero() {
			return time.Time{}
		}
		if t := resolve(c, loc); t.After(after) {
			return t
		}
	}
	return time.Time{}
}

// Slots returns the slots s with from < s <= to, oldest first, at most limit of
// them (limit <= 0 means no limit). For an "@every" spec the slots are anchored
// at from: from+d, from+2d, … (from truncated to the second).
func (s Spec) Slots(from, to time.Time, loc *time.Location, limit int) []time.Time {
	var out []time.Time
	if s.IsZero() {
		return out
	}
	if s.every > 0 {
		anchor := from.Truncate(time.Second)
		for k := int64(1); limit <= 0 || len(out) < limit; k++ {
			t := anchor.Add(time.Duration(k) * s.every)
			if t.After(to) {
				break
			}
			out = append(out, t.In(inLoc(loc)))
		}
		return out
	}
	for t := s.Next(from, loc); !t.IsZero() && !t.After(to) && (limit <= 0 || len(out) < limit); t = s.Next(t, loc) {
		out = append(out, t)
	}
	return out
}

// NextAfterCompletion returns when a fixed-delay schedule runs next, given the
// instant its previous run completed. For "@every d" that is d after the
// completion (rounded up to the whole second); for a cron spec it is the first
// slot after the completion, so slots that passed while the run was live are
// not run.
func (s Spec) NextAfterCompletion(completed time.Time, loc *time.Location) time.Time {
	if s.every > 0 {
		start := completed.Truncate(time.Second)
		if start.Before(completed) {
			start = start.Add(time.Second)
		}
		return start.Add(s.every).In(inLoc(loc))
	}
	return s.Next(completed, loc)
}

func inLoc(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}
