package schedule

import (
	"testing"
	"time"
)

// The 2026 transitions used below:
//
//	America/New_York  8 Mar 02:00 EST -> 03:00 EDT (07:00Z); 1 Nov 02:00 EDT -> 01:00 EST (06:00Z)
//	Europe/Berlin    29 Mar 02:00 CET -> 03:00 CEST (01:00Z); 25 Oct 03:00 CEST -> 02:00 CET (01:00Z)
func TestDST(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, zone, spec string
		from, to         time.Time
		want             []time.Time
	}{
		{
			name: "New York gap: daily 02:30 fires at 03:00 EDT",
			zone: "America/New_York", spec: "30 2 * * *",
			from: utc(2026, 3, 7, 0, 0, 0), to: utc(2026, 3, 9, 12, 0, 0),
			want: []time.Time{utc(2026, 3, 7, 7, 30, 0), utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 9, 6, 30, 0)},
		},
		{
			name: "New York overlap: daily 01:30 fires once, at 01:30 EDT",
			zone: "America/New_York", spec: "30 1 * * *",
			from: utc(2026, 10, 31, 0, 0, 0), to: utc(2026, 11, 2, 12, 0, 0),
			want: []time.Time{utc(2026, 10, 31, 5, 30, 0), utc(2026, 11, 1, 5, 30, 0), utc(2026, 11, 2, 6, 30, 0)},
		},
		{
			name: "New York gap: hourly fires at 01:00 EST, then 03:00 EDT once",
			zone: "America/New_York", spec: "0 * * * *",
			from: utc(2026, 3, 8, 5, 30, 0), to: utc(2026, 3, 8, 8, 30, 0),
			want: []time.Time{utc(2026, 3, 8, 6, 0, 0), utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 8, 8, 0, 0)},
		},
		{
			name: "New York gap: half past every hour, 02:30 moves to 03:00",
			zone: "America/New_York", spec: "30 * * * *",
			from: utc(2026, 3, 8, 6, 0, 0), to: utc(2026, 3, 8, 8, 0, 0),
			want: []time.Time{utc(2026, 3, 8, 6, 30, 0), utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 8, 7, 30, 0)},
		},
		{
			name: "New York gap: every 15 minutes, the gap's slots fire once at 03:00",
			zone: "America/New_York", spec: "*/15 * * * *",
			from: utc(2026, 3, 8, 6, 40, 0), to: utc(2026, 3, 8, 7, 20, 0),
			want: []time.Time{utc(2026, 3, 8, 6, 45, 0), utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 8, 7, 15, 0)},
		},
		{
			name: "New York overlap: hourly skips the repeated 01:00 EST",
			zone: "America/New_York", spec: "0 * * * *",
			from: utc(2026, 11, 1, 4, 30, 0), to: utc(2026, 11, 1, 8, 30, 0),
			want: []time.Time{utc(2026, 11, 1, 5, 0, 0), utc(2026, 11, 1, 7, 0, 0), utc(2026, 11, 1, 8, 0, 0)},
		},
		{
			name: "Berlin gap: daily 02:30 fires at 03:00 CEST",
			zone: "Europe/Berlin", spec: "30 2 * * *",
			from: utc(2026, 3, 28, 0, 0, 0), to: utc(2026, 3, 30, 12, 0, 0),
			want: []time.Time{utc(2026, 3, 28, 1, 30, 0), utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 30, 0, 30, 0)},
		},
		{
			name: "Berlin overlap: daily 02:30 fires once, at 02:30 CEST",
			zone: "Europe/Berlin", spec: "30 2 * * *",
			from: utc(2026, 10, 24, 0, 0, 0), to: utc(2026, 10, 26, 12, 0, 0),
			want: []time.Time{utc(2026, 10, 24, 0, 30, 0), utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 26, 1, 30, 0)},
		},
		{
			name: "Berlin gap: hourly",
			zone: "Europe/Berlin", spec: "@hourly",
			from: utc(2026, 3, 28, 23, 30, 0), to: utc(2026, 3, 29, 2, 30, 0),
			want: []time.Time{utc(2026, 3, 29, 0, 0, 0), utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 29, 2, 0, 0)},
		},
		{
			name: "Berlin overlap: hourly skips the repeated 02:00 CET",
			zone: "Europe/Berlin", spec: "0 * * * *",
			from: utc(2026, 10, 24, 23, 30, 0), to: utc(2026, 10, 25, 2, 30, 0),
			want: []time.Time{utc(2026, 10, 25, 0, 0, 0), utc(2026, 10, 25, 2, 0, 0)},
		},
		{
			name: "New York: @every 1h is absolute through the gap",
			zone: "America/New_York", spec: "@every 1h",
			from: utc(2026, 3, 8, 5, 0, 0), to: utc(2026, 3, 8, 8, 0, 0),
			want: []time.Time{utc(2026, 3, 8, 6, 0, 0), utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 8, 8, 0, 0)},
		},
		{
			name: "Berlin: @every 1h is absolute through the overlap",
			zone: "Europe/Berlin", spec: "@every 1h",
			from: utc(2026, 10, 24, 23, 0, 0), to: utc(2026, 10, 25, 2, 0, 0),
			want: []time.Time{utc(2026, 10, 25, 0, 0, 0), utc(2026, 10, 25, 1, 0, 0), utc(2026, 10, 25, 2, 0, 0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			loc := zone(t, tt.zone)
			got := MustParseSpec(tt.spec).Slots(tt.from, tt.to, loc, 0)
			assertTimes(t, tt.name, got, tt.want)
			for _, s := range got {
				if s.Location() != loc {
					t.Errorf("slot %v is not in %s", s, tt.zone)
				}
			}
		})
	}
}

// TestNextFromInsideOverlap starts from an instant in the repeated hour: the
// slots already fired in its first occurrence must not fire again.
func TestNextFromInsideOverlap(t *testing.T) {
	t.Parallel()
	loc := zone(t, "America/New_York")
	after := utc(2026, 11, 1, 6, 10, 0) // 01:10 EST, the second 01:10
	got := MustParseSpec("*/20 * * * *").Next(after, loc)
	if want := utc(2026, 11, 1, 7, 0, 0); !got.Equal(want) { // 02:00 EST
		t.Errorf("Next(%v) = %v, want %v", after, got.UTC(), want)
	}
}

// TestResolveAllZones walks a year of hourly slots in zones with unusual
// transitions and checks slots are strictly increasing and land on the slot's
// wall clock, or on the end of a gap.
func TestResolveAllZones(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Sao_Paulo", "Asia/Tehran", "Pacific/Apia", "Africa/Cairo"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			loc := zone(t, name)
			spec := MustParseSpec("30 * * * *")
			prev := time.Date(2011, 1, 1, 0, 0, 0, 0, loc)
			for range 366 * 24 * 2 {
				next := spec.Next(prev, loc)
				if !next.After(prev) {
					t.Fatalf("Next(%v) = %v, not after", prev, next)
				}
				if m := next.Minute(); m != 30 && m != 0 && m != 15 && m != 45 {
					t.Fatalf("Next(%v) = %v, neither a slot nor the end of a gap", prev, next)
				}
				prev = next
			}
		})
	}
}
