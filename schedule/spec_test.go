package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

func utc(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParseSpecValid(t *testing.T) {
	t.Parallel()
	after := utc(2026, time.January, 14, 10, 7, 30) // a Wednesday
	tests := []struct {
		spec string
		next time.Time
	}{
		{"*/15 * * * *", utc(2026, time.January, 14, 10, 15, 0)},
		{"  30 2 * * *  ", utc(2026, time.January, 15, 2, 30, 0)},
		{"0 9-17 * * MON-FRI", utc(2026, time.January, 14, 11, 0, 0)},
		{"0 0 1,15 * *", utc(2026, time.January, 15, 0, 0, 0)},
		{"0 0 13 * FRI", utc(2026, time.January, 16, 0, 0, 0)}, // POSIX: day 13 OR a Friday
		{"45 * * * * *", utc(2026, time.January, 14, 10, 7, 45)},
		{"*/20 * * * * *", utc(2026, time.January, 14, 10, 7, 40)},
		{"0 30 2 * * *", utc(2026, time.January, 15, 2, 30, 0)},
		{"@yearly", utc(2027, time.January, 1, 0, 0, 0)},
		{"@annually", utc(2027, time.January, 1, 0, 0, 0)},
		{"@monthly", utc(2026, time.February, 1, 0, 0, 0)},
		{"@weekly", utc(2026, time.January, 18, 0, 0, 0)},
		{"@daily", utc(2026, time.January, 15, 0, 0, 0)},
		{"@midnight", utc(2026, time.January, 15, 0, 0, 0)},
		{"@hourly", utc(2026, time.January, 14, 11, 0, 0)},
		{"@every 90s", utc(2026, time.January, 14, 10, 9, 0)},
		{"@every 1h30m", utc(2026, time.January, 14, 11, 37, 30)},
		{"@every 1s", utc(2026, time.January, 14, 10, 7, 31)},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSpec(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != strings.TrimSpace(tt.spec) {
				t.Errorf("String() = %q", s.String())
			}
			if got := s.Next(after, nil); !got.Equal(tt.next) {
				t.Errorf("Next(%v) = %v, want %v", after, got, tt.next)
			}
		})
	}
}

func TestParseSpecInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct{ spec, reason string }{
		{"", "empty"},
		{"   ", "empty"},
		{"* * * *", "fields"},
		{"* * * * * * *", "fields"},
		{"60 * * * *", "60"},
		{"* 24 * * *", "24"},
		{"0 0 32 * *", "32"},
		{"0 0 * 13 *", "13"},
		{"0 0 * * 8", "8"},
		{"a b c d e", ""},
		{"0 0 30 2 *", "never fires"},
		{"0 0 31 4 *", "never fires"},
		{"H * * * *", ""},
		{"@every", "needs a duration"},
		{"@every ", "needs a duration"},
		{"@every90s", "needs a duration"},
		{"@every soon", "needs a duration"},
		{"@every 500ms", "shorter than 1s"},
		{"@every 0s", "shorter than 1s"},
		{"@every -5m", "shorter than 1s"},
		{"@every 1.5s", "whole number of seconds"},
		{"@everyday", "needs a duration"},
		{"@fortnightly", "unknown descriptor"},
		{"@reboot", "unknown descriptor"},
		{"TZ=UTC * * * * *", "time zone prefix"},
		{"CRON_TZ=Europe/Berlin 0 0 * * *", "time zone prefix"},
		{"cron_tz=Europe/Berlin 0 0 * * *", "time zone prefix"},
		{strings.Repeat("1,", 200) + "1 * * * *", "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSpec(tt.spec)
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("ParseSpec(%q) = %v, want a *SpecError", tt.spec, err)
			}
			if se.Spec != tt.spec {
				t.Errorf("SpecError.Spec = %q, want the input %q", se.Spec, tt.spec)
			}
			if !errors.Is(err, ErrInvalidSpec) || !errors.Is(err, store.ErrInvalid) {
				t.Errorf("%v does not match ErrInvalidSpec and store.ErrInvalid", err)
			}
			if !strings.Contains(se.Reason, tt.reason) {
				t.Errorf("reason %q does not mention %q", se.Reason, tt.reason)
			}
		})
	}
}

func TestZeroSpecNeverFires(t *testing.T) {
	t.Parallel()
	var s Spec
	if !s.IsZero() || !s.Next(utc(2026, 1, 1, 0, 0, 0), nil).IsZero() || len(s.Slots(utc(2026, 1, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0), nil, 0)) != 0 {
		t.Error("the zero Spec fires")
	}
}

func TestLoadZone(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"} {
		if _, err := LoadZone(name); err != nil {
			t.Errorf("LoadZone(%q): %v", name, err)
		}
	}
	for _, name := range []string{"Local", "Mars/Olympus_Mons", "america/new_york", "../etc/passwd", "Europe/Berlin ", strings.Repeat("x", 200)} {
		_, err := LoadZone(name)
		var ze *ZoneError
		if !errors.As(err, &ze) || ze.Zone != name || !errors.Is(err, ErrUnknownZone) || !errors.Is(err, store.ErrInvalid) {
			t.Errorf("LoadZone(%q) = %v, want a *ZoneError matching ErrUnknownZone", name, err)
		}
	}
}

// TestNextCalendar checks Next across month and year boundaries and leap days.
func TestNextCalendar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec        string
		after, want time.Time
	}{
		{"0 0 29 2 *", utc(2025, 3, 1, 0, 0, 0), utc(2028, 2, 29, 0, 0, 0)},
		{"0 0 29 2 *", utc(2096, 3, 1, 0, 0, 0), utc(2104, 2, 29, 0, 0, 0)}, // 2100 is not a leap year
		{"0 0 29 2 *", utc(2024, 2, 28, 23, 59, 59), utc(2024, 2, 29, 0, 0, 0)},
		{"0 12 28-31 2 *", utc(2027, 2, 28, 12, 0, 0), utc(2028, 2, 28, 12, 0, 0)},
		{"59 23 31 12 *", utc(2026, 12, 31, 23, 59, 0), utc(2027, 12, 31, 23, 59, 0)},
		{"@yearly", utc(2026, 12, 31, 23, 59, 59), utc(2027, 1, 1, 0, 0, 0)},
		{"0 0 1 * *", utc(2026, 1, 31, 8, 0, 0), utc(2026, 2, 1, 0, 0, 0)},
		{"0 12 31 * *", utc(2026, 4, 1, 0, 0, 0), utc(2026, 5, 31, 12, 0, 0)},
		{"0 0 30 * *", utc(2026, 1, 30, 0, 0, 0), utc(2026, 3, 30, 0, 0, 0)},
		{"*/15 * * * *", utc(2026, 12, 31, 23, 59, 0), utc(2027, 1, 1, 0, 0, 0)},
		{"*/15 * * * *", utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 15, 0)}, // strictly after
		{"*/15 * * * *", utc(2026, 1, 1, 0, 14, 59).Add(999 * time.Millisecond), utc(2026, 1, 1, 0, 15, 0)},
		{"@every 1h", utc(2026, 12, 31, 23, 30, 0).Add(time.Millisecond), utc(2027, 1, 1, 0, 30, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.spec+"/"+tt.after.Format(time.RFC3339), func(t *testing.T) {
			t.Parallel()
			if got := MustParseSpec(tt.spec).Next(tt.after, time.UTC); !got.Equal(tt.want) {
				t.Errorf("Next(%v) = %v, want %v", tt.after, got, tt.want)
			}
		})
	}
}

func TestSlots(t *testing.T) {
	t.Parallel()
	from, to := utc(2026, 5, 1, 9, 0, 0), utc(2026, 5, 1, 10, 0, 0)
	for _, spec := range []string{"*/15 * * * *", "@every 15m"} {
		s := MustParseSpec(spec)
		got := s.Slots(from, to, nil, 0)
		want := []time.Time{utc(2026, 5, 1, 9, 15, 0), utc(2026, 5, 1, 9, 30, 0), utc(2026, 5, 1, 9, 45, 0), utc(2026, 5, 1, 10, 0, 0)}
		assertTimes(t, spec, got, want)
		assertTimes(t, spec+" limit 2", s.Slots(from, to, nil, 2), want[:2])
		assertTimes(t, spec+" empty range", s.Slots(to, from, nil, 0), nil)
	}
}

func TestNextAfterCompletion(t *testing.T) {
	t.Parallel()
	done := utc(2026, 5, 1, 12, 0, 0)
	tests := []struct {
		spec      string
		completed time.Time
		want      time.Time
	}{
		{"@every 90s", done, utc(2026, 5, 1, 12, 1, 30)},
		{"@every 90s", done.Add(300 * time.Millisecond), utc(2026, 5, 1, 12, 1, 31)}, // never less than d after
		{"@every 24h", utc(2026, 3, 7, 23, 0, 0), utc(2026, 3, 8, 23, 0, 0)},
		{"*/15 * * * *", done.Add(20 * time.Minute), utc(2026, 5, 1, 12, 30, 0)},
	}
	for _, tt := range tests {
		got := MustParseSpec(tt.spec).NextAfterCompletion(tt.completed, nil)
		if !got.Equal(tt.want) {
			t.Errorf("%s: NextAfterCompletion(%v) = %v, want %v", tt.spec, tt.completed, got, tt.want)
		}
	}
}

func assertTimes(t *testing.T, name string, got, want []time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d slots %v, want %d %v", name, len(got), got, len(want), want)
		return
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			t.Errorf("%s: slot %d = %v, want %v", name, i, got[i].UTC(), want[i])
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"* * * * *", "0 30 2 * * *", "@every 90s", "@daily", "0 0 29 2 *", "*/7 1-5 */3 JAN-MAR SUN,SAT", "TZ=UTC * * * * *", "@every 1h1s"} {
		f.Add(s, int64(1_772_900_000))
	}
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"}
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		spec, err := ParseSpec(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("ParseSpec(%q) error %v does not match ErrInvalidSpec", s, err)
			}
			return
		}
		// Keep the instant in years 1970..2200.
		const span = 230 * 365 * 24 * 3600
		after := time.Unix((unix%span+span)%span, int64(uint64(unix)%1e9))
		for _, name := range zones {
			loc := zone(t, name)
			next := spec.Next(after, loc)
			if !next.After(after) {
				t.Fatalf("ParseSpec(%q).Next(%v, %s) = %v, not after its input", s, after, name, next)
			}
			if next.Nanosecond() != 0 {
				t.Fatalf("ParseSpec(%q).Next(%v, %s) = %v, not a whole second", s, after, name, next)
			}
		}
	})
}
