package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// TestPlanAfterDowntime: an every-15-minutes schedule last fired at 09:00 and
// no scheduler ran for three hours.
func TestPlanAfterDowntime(t *testing.T) {
	t.Parallel()
	last := utc(2026, 5, 1, 9, 0, 0)
	at := func(h, m int) time.Time { return utc(2026, 5, 1, h, m, 0) }
	tests := []struct {
		name    string
		now     time.Time
		misfire store.Misfire
		max     int
		fire    []time.Time
		dropped int
		next    time.Time
	}{
		{"run once, a slot on time", at(12, 0).Add(30 * time.Second), store.MisfireRunOnce, 0, []time.Time{at(12, 0)}, 11, at(12, 15)},
		{"run once, nothing on time", at(12, 5), store.MisfireRunOnce, 0, []time.Time{at(12, 0)}, 11, at(12, 15)},
		{"skip, a slot on time", at(12, 0).Add(30 * time.Second), store.MisfireSkip, 0, []time.Time{at(12, 0)}, 11, at(12, 15)},
		{"skip, nothing on time", at(12, 5), store.MisfireSkip, 0, nil, 12, at(12, 15)},
		{"catch up 4", at(12, 5), store.MisfireCatchUp, 4, []time.Time{at(11, 15), at(11, 30), at(11, 45), at(12, 0)}, 8, at(12, 15)},
		{"catch up 4, a slot on time", at(12, 0).Add(30 * time.Second), store.MisfireCatchUp, 4, []time.Time{at(11, 0), at(11, 15), at(11, 30), at(11, 45), at(12, 0)}, 7, at(12, 15)},
		{"catch up default cap", at(12, 5), store.MisfireCatchUp, 0, []time.Time{at(9, 45), at(10, 0), at(10, 15), at(10, 30), at(10, 45), at(11, 0), at(11, 15), at(11, 30), at(11, 45), at(12, 0)}, 2, at(12, 15)},
		{"catch up everything", at(12, 5), store.MisfireCatchUp, 100, slots15(last, 12), 0, at(12, 15)},
		{"no downtime", at(9, 15), store.MisfireSkip, 0, []time.Time{at(9, 15)}, 0, at(9, 30)},
		{"nothing due", at(9, 14), store.MisfireRunOnce, 0, nil, 0, at(9, 15)},
	}
	for _, tt := range tests {
		for _, spec := range []string{"*/15 * * * *", "@every 15m"} {
			t.Run(tt.name+"/"+spec, func(t *testing.T) {
				t.Parallel()
				f := Plan(Input{Spec: MustParseSpec(spec), Last: last, Now: tt.now, Misfire: tt.misfire, CatchUpMax: tt.max})
				assertTimes(t, "Fire", f.Fire, tt.fire)
				if f.Dropped != tt.dropped || f.DroppedCapped {
					t.Errorf("Dropped = %d (capped %v), want %d", f.Dropped, f.DroppedCapped, tt.dropped)
				}
				if !f.Next.Equal(tt.next) {
					t.Errorf("Next = %v, want %v", f.Next, tt.next)
				}
			})
		}
	}
}

// slots15 returns n slots 15 minutes apart after from.
func slots15(from time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = from.Add(time.Duration(i+1) * 15 * time.Minute)
	}
	return out
}

func TestPlanCapsCounting(t *testing.T) {
	t.Parallel()
	last := utc(2026, 5, 1, 0, 0, 0)
	now := last.Add(48 * time.Hour) // 172,800 one-second slots
	f := Plan(Input{Spec: MustParseSpec("* * * * * *"), Last: last, Now: now, Misfire: store.MisfireCatchUp, CatchUpMax: 3})
	if !f.DroppedCapped || f.Dropped < maxCount-3 {
		t.Errorf("Dropped = %d, capped %v; want at least %d, capped", f.Dropped, f.DroppedCapped, maxCount-3)
	}
	// The newest missed slots fire, then the on-time ones (the last minute).
	if len(f.Fire) != 3+60 || !f.Fire[2].Equal(now.Add(-time.Minute)) || !f.Fire[len(f.Fire)-1].Equal(now) {
		t.Errorf("Fire = %d slots from %v to %v", len(f.Fire), f.Fire[0], f.Fire[len(f.Fire)-1])
	}
	if !f.Next.Equal(now.Add(time.Second)) {
		t.Errorf("Next = %v", f.Next)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := store.Schedule{ID: "nightly-report", Tenant: "acme", Spec: "30 2 * * *", Zone: "Europe/Berlin", Kind: "report"}
	if err := Validate(&ok); err != nil {
		t.Fatalf("a valid schedule: %v", err)
	}
	bad := store.Schedule{
		ID: "", Tenant: "ac me", Spec: "CRON_TZ=UTC * * * * *", Zone: "Mars/Base", Queue: "q!", Kind: "",
		Payload: make([]byte, store.MaxPayloadBytes+1), Priority: 101, MaxAttempts: -1,
		Overlap: 7, Misfire: store.MisfireSkip, CatchUpMax: 5, Mode: 9, Version: -1,
	}
	err := Validate(&bad)
	var se *SpecError
	var ze *ZoneError
	if !errors.As(err, &se) || !errors.As(err, &ze) || !errors.Is(err, store.ErrTooLarge) || !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Validate() = %v, missing a typed error", err)
	}
	for _, want := range []string{"schedule id", "tenant", "queue", "kind", "time zone prefix", "Mars/Base", "payload size", "priority", "max attempts", "overlap policy", "catch-up max", "mode", "version"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() does not report %q:\n%v", want, err)
		}
	}
	delay := ok
	delay.Mode = store.ModeFixedDelay
	if err := Validate(&delay); err == nil || !strings.Contains(err.Error(), "fixed_delay needs") {
		t.Errorf("fixed delay with a cron spec: %v", err)
	}
	delay.Spec = "@every 10m"
	if err := Validate(&delay); err != nil {
		t.Errorf("fixed delay with @every: %v", err)
	}
}

func TestPolicyText(t *testing.T) {
	t.Parallel()
	for _, o := range []store.Overlap{store.OverlapSkip, store.OverlapQueueOne, store.OverlapAllow} {
		if p, err := store.ParseOverlap(o.String()); err != nil || p != o {
			t.Errorf("store.ParseOverlap(%q) = %v, %v", o, p, err)
		}
	}
	for _, m := range []store.Misfire{store.MisfireRunOnce, store.MisfireSkip, store.MisfireCatchUp} {
		if p, err := store.ParseMisfire(m.String()); err != nil || p != m {
			t.Errorf("store.ParseMisfire(%q) = %v, %v", m, p, err)
		}
	}
	for _, m := range []store.ScheduleMode{store.ModeFixedRate, store.ModeFixedDelay} {
		var p store.ScheduleMode
		b, err := m.MarshalText()
		if err != nil || p.UnmarshalText(b) != nil || p != m {
			t.Errorf("Mode %v does not round-trip as text", m)
		}
	}
	if o, err := store.ParseOverlap(""); err != nil || o != store.OverlapSkip {
		t.Error("empty overlap is not skip")
	}
	if _, err := store.ParseMisfire("sometimes"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("store.ParseMisfire(sometimes) = %v", err)
	}
	if s := store.Overlap(9).String(); s != "Overlap(9)" {
		t.Errorf("String() = %q", s)
	}
}

func TestRunKey(t *testing.T) {
	t.Parallel()
	slot := utc(2026, 3, 8, 7, 0, 0)
	if got, want := RunKey("nightly-report", "acme", slot), "sched:acme:nightly-report:2026-03-08T07:00:00Z"; got != want {
		t.Errorf("RunKey = %q, want %q", got, want)
	}
	ny := zone(t, "America/New_York")
	if RunKey("a", "t", slot) != RunKey("a", "t", slot.In(ny)) {
		t.Error("the key depends on the slot's location")
	}
	distinct := map[string]bool{}
	for _, k := range []string{
		RunKey("b:c", "a", slot), RunKey("c", "a:b", slot), RunKey("c", "a%3Ab", slot), RunKey("a", "", slot),
		RunKey("a", "t", slot), RunKey("a", "t", slot.Add(time.Second)),
	} {
		if distinct[k] {
			t.Errorf("key %q repeats", k)
		}
		distinct[k] = true
	}
	long := strings.Repeat(":", store.MaxNameLen)
	k1, k2 := RunKey(long, long, slot), RunKey(long, long[1:], slot)
	if len(k1) > store.MaxKeyLen || !strings.HasPrefix(k1, "sched#") || k1 == k2 || k1 != RunKey(long, long, slot) {
		t.Errorf("long keys %q, %q", k1, k2)
	}
}
