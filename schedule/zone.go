package schedule

import (
	"fmt"
	"sync"
	"time"
	_ "time/tzdata" // zones work on machines without a zoneinfo database

	"github.com/spoolrun/spool/store"
)

// ErrUnknownZone matches every error LoadZone returns. It wraps
// store.ErrInvalid, so store.Code reports such errors as "invalid".
var ErrUnknownZone = fmt.Errorf("spool: unknown time zone: %w", store.ErrInvalid)

// ZoneError says why a time zone name was refused. It matches ErrUnknownZone.
type ZoneError struct {
	Zone   string // the name, as given
	Reason string
}

func (e *ZoneError) Error() string {
	return fmt.Sprintf("spool: unknown time zone %q: %s", e.Zone, e.Reason)
}

// Unwrap makes errors.Is(err, ErrUnknownZone) and errors.Is(err, store.ErrInvalid) true.
func (e *ZoneError) Unwrap() error { return ErrUnknownZone }

// zones caches loaded locations by name: a scheduler resolves the same few
// hundred IANA names for millions of schedules. Only valid names are stored,
// so the cache is bounded by the size of the IANA database.
var zones sync.Map // string -> *time.Location

// LoadZone returns the location for an IANA time zone name such as
// "America/New_York" or "Europe/Berlin". The empty name and "UTC" mean UTC.
// "Local" is refused: a schedule must not change meaning with the machine that
// fires it. The IANA database is embedded (time/tzdata), so every zone works
// even where the system has none. Errors are *ZoneError.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil //nolint:errcheck // only *time.Location is stored
	}
	if name == "Local" {
		return nil, &ZoneError{Zone: name, Reason: "the machine's local zone is not allowed; name an IANA zone such as \"Europe/Berlin\""}
	}
	if len(name) > store.MaxNameLen {
		return nil, &ZoneError{Zone: name, Reason: fmt.Sprintf("longer than %d bytes", store.MaxNameLen)}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, &ZoneError{Zone: name, Reason: "not in the IANA time zone database (use a name such as \"America/New_York\")"}
	}
	zones.Store(name, loc)
	return loc, nil
}

// zoneWindow bounds the offsets any zone has used (+14h to -12h today, a little
// more in local mean time) with room to spare.
const zoneWindow = 26 * time.Hour

// resolve maps a wall-clock time c (its fields read as civil time; c is in
// UTC) to an instant in loc:
//
//   - a civil time that occurs once maps to that instant;
//   - one that occurs twice (a fall-back overlap) maps to its first occurrence;
//   - one that does not occur (a spring-forward gap) maps to the first instant
//     after the gap, the transition itself.
//
// The mapping is monotonic: a later civil time never maps to an earlier instant.
func resolve(c time.Time, loc *time.Location) time.Time {
	if loc == time.UTC {
		return c
	}
	u := c.Unix()
	t := time.Unix(u-int64(zoneWindow/time.Second), 0).In(loc)
	hi := u + int64(zoneWindow/time.Second)
	for first := true; ; first = false {
		_, offset := t.Zone()
		start, end := t.ZoneBounds()
		at := u - int64(offset)
		if (start.IsZero() || at >= start.Unix()) && (end.IsZero() || at < end.Unix()) {
			return time.Unix(at, 0).In(loc)
		}
		if !first && start.Unix()+int64(offset) > u {
			// The previous period ends before c on the clock and this one
			// starts after it: c falls in the gap between them.
			return start.In(loc)
		}
		if end.IsZero() || end.Unix() > hi {
			break
		}
		t = end.In(loc)
	}
	// Unreachable for real zone data; fall back to the standard library's choice.
	return time.Date(c.Year(), c.Month(), c.Day(), c.Hour(), c.Minute(), c.Second(), 0, loc)
}
