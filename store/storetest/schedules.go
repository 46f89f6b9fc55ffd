package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// scheduleTests check a store's store.ScheduleStore. They run when the
// backend declares Features.Schedules.
var scheduleTests = []test{
	{"CreateAndGet", testScheduleCreateGet},
	{"InvalidItemsChangeNothing", testScheduleInvalid},
	{"VersionConflict", testScheduleConflict},
	{"UpdateKeepsOrResetsNextRun", testScheduleUpdateNext},
	{"ListByTenantPaginates", testScheduleList},
	{"FireEnqueuesOnceAndAdvances", testScheduleFire},
	{"OverlapSkip", testOverlapSkip},
	{"OverlapQueueOne", testOverlapQueueOne},
	{"OverlapAllow", testOverlapAllow},
	{"FixedDelay", testFixedDelay},
	{"MisfireAfterDowntime", testMisfire},
	{"DSTGapAndOverlap", testScheduleDST},
	{"RacingFireNoDuplicates", testScheduleRace},
	{"PauseResume", testSchedulePauseResume},
	{"Delete", testScheduleDelete},
	{"Trigger", testScheduleTrigger},
	{"CancelReleases", testScheduleCancelReleases},
	{"TriggerThenSlotSameSecond", testTriggerThenSlot},
	{"FireBatches", testScheduleFireBatches},
	{"BadArguments", testScheduleBadArgs},
	{"CannotFireIsSkipped", testScheduleCannotFire},
}

func (h *harness) sched() store.ScheduleStore {
	h.t.Helper()
	ss := h.s.Capabilities().Schedules
	if ss == nil {
		h.t.Fatal("the backend declares Features.Schedules, but Capabilities().Schedules is nil")
	}
	return ss
}

// upsert writes schedules and fails the test on any refusal.
func (h *harness) upsert(scs ...store.Schedule) []store.ScheduleUpsertResult {
	h.t.Helper()
	res, err := h.sched().UpsertSchedules(h.ctx, scs)
	if err != nil {
		h.t.Fatalf("UpsertSchedules: %v", err)
	}
	if len(res) != len(scs) {
		h.t.Fatalf("UpsertSchedules of %d returned %d results", len(scs), len(res))
	}
	for i, r := range res {
		if r.Err != nil {
			h.t.Fatalf("UpsertSchedules item %d (%s): %v", i, scs[i].Ref(), r.Err)
		}
	}
	return res
}

func (h *harness) getSched(tenant, id string) *store.Schedule {
	h.t.Helper()
	sc, err := h.sched().GetSchedule(h.ctx, store.ScheduleRef{Tenant: tenant, ID: id})
	if err != nil {
		h.t.Fatalf("GetSchedule(%s/%s): %v", tenant, id, err)
	}
	return sc
}

func (h *harness) fire(limit int) *store.FireResult {
	h.t.Helper()
	res, err := h.sched().FireDue(h.ctx, store.FireParams{Limit: limit})
	if err != nil {
		h.t.Fatalf("FireDue: %v", err)
	}
	return res
}

// fireRuns fires and fails the test unless exactly want runs were enqueued.
func (h *harness) fireRuns(want int) *store.FireResult {
	h.t.Helper()
	res := h.fire(0)
	if len(res.Runs) != want {
		h.t.Fatalf("FireDue at %s enqueued %d runs (%+v), want %d", h.now().Format(time.RFC3339), len(res.Runs), res.Runs, want)
	}
	return res
}

// complete claims job id from queue and completes it.
func (h *harness) complete(queue string, id store.ID) {
	h.t.Helper()
	j := h.claimID(queue, id)
	h.settleOK(verdict(j, store.Complete))
}

func hourly(id string) store.Schedule {
	return store.Schedule{ID: id, Spec: "0 * * * *", Queue: "sched", Kind: "report", Payload: []byte(`{"id":"` + id + `"}`)}
}

func everyMinute(id string) store.Schedule {
	return store.Schedule{ID: id, Spec: "* * * * *", Queue: "sched", Kind: "tick"}
}

// epochs: the harness clock starts at 2031-03-04 05:06:07 UTC.
var (
	nextHour   = time.Date(2031, time.March, 4, 6, 0, 0, 0, time.UTC)
	nextMinute = time.Date(2031, time.March, 4, 5, 7, 0, 0, time.UTC)
)

func testScheduleCreateGet(t *testing.T, h *harness) {
	sc := hourly("nightly")
	sc.Tenant, sc.Zone, sc.Queue, sc.Priority, sc.MaxAttempts = "acme", "Europe/Berlin", "", 3, 7
	sc.Overlap, sc.Misfire, sc.CatchUpMax = store.OverlapAllow, store.MisfireCatchUp, 4
	res := h.upsert(sc)[0]
	if !res.Created || res.Version != 1 || !res.NextRunAt.Equal(nextHour) {
		t.Fatalf("create = %+v, want created at version 1 with next run %s", res, nextHour)
	}
	got := h.getSched("acme", "nightly")
	if got.ID != "nightly" || got.Tenant != "acme" || got.Spec != sc.Spec || got.Zone != "Europe/Berlin" ||
		got.Queue != store.DefaultQueue || got.Kind != "report" || string(got.Payload) != string(sc.Payload) ||
		got.Priority != 3 || got.MaxAttempts != 7 || got.Overlap != store.OverlapAllow ||
		got.Misfire != store.MisfireCatchUp || got.CatchUpMax != 4 || got.Mode != store.ModeFixedRate ||
		got.Paused || got.Version != 1 {
		t.Errorf("GetSchedule = %+v, want the schedule as written (default queue filled in)", got)
	}
	if !got.NextRunAt.Equal(nextHour) || !got.LastRunAt.IsZero() || !got.LiveJobID.IsZero() ||
		got.Fired != 0 || got.Skipped != 0 || got.Dropped != 0 || len(got.Recent) != 0 {
		t.Errorf("new schedule state = next %s last %s live %s counts %d/%d/%d recent %v", got.NextRunAt, got.LastRunAt,
			got.LiveJobID, got.Fired, got.Skipped, got.Dropped, got.Recent)
	}
	if !got.CreatedAt.Equal(h.now()) || !got.UpdatedAt.Equal(h.now()) {
		t.Errorf("created %s updated %s, want both %s", got.CreatedAt, got.UpdatedAt, h.now())
	}
	if _, err := h.sched().GetSchedule(h.ctx, store.ScheduleRef{ID: "nightly"}); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSchedule in another tenant = %v, want ErrNotFound", err)
	}
	// Defaults are stored, so reading a schedule shows what applies.
	d := hourly("defaults")
	d.Misfire = store.MisfireCatchUp
	h.upsert(d)
	if got := h.getSched("", "defaults"); got.MaxAttempts != store.DefaultMaxAttempts || got.CatchUpMax != store.DefaultCatchUpMax {
		t.Errorf("defaults read back as max attempts %d, catch-up max %d", got.MaxAttempts, got.CatchUpMax)
	}
	// A paused schedule can be created.
	p := hourly("paused")
	p.Paused = true
	h.upsert(p)
	if !h.getSched("", "paused").Paused {
		t.Error("schedule created paused is not paused")
	}
}

func testScheduleInvalid(t *testing.T, h *harness) {
	bad := []store.Schedule{
		{ID: "spec", Spec: "61 * * * *", Kind: "k"},
		{ID: "zone", Spec: "@hourly", Zone: "Mars/Olympus", Kind: "k"},
		{ID: "", Spec: "@hourly", Kind: "k"},
		{ID: "delay", Spec: "0 * * * *", Kind: "k", Mode: store.ModeFixedDelay},
		{ID: "payload", Spec: "@hourly", Kind: "k", Payload: make([]byte, store.MaxPayloadBytes+1)},
	}
	good := hourly("good")
	res, err := h.sched().UpsertSchedules(h.ctx, append(bad, good))
	if err != nil {
		t.Fatalf("UpsertSchedules: %v", err)
	}
	wantIs := []error{schedule.ErrInvalidSpec, schedule.ErrUnknownZone, store.ErrInvalid, store.ErrInvalid, store.ErrTooLarge}
	for i, w := range wantIs {
		if !errors.Is(res[i].Err, w) || !errors.Is(res[i].Err, store.ErrInvalid) {
			t.Errorf("item %d (%s): %v, want %v", i, bad[i].ID, res[i].Err, w)
		}
		if store.Code(res[i].Err) != "invalid" && store.Code(res[i].Err) != "too_large" {
			t.Errorf("item %d: Code = %q", i, store.Code(res[i].Err))
		}
	}
	var se *schedule.SpecError
	if !errors.As(res[0].Err, &se) {
		t.Errorf("bad spec error %T, want *schedule.SpecError", res[0].Err)
	}
	var ze *schedule.ZoneError
	if !errors.As(res[1].Err, &ze) {
		t.Errorf("bad zone error %T, want *schedule.ZoneError", res[1].Err)
	}
	if res[len(bad)].Err != nil || !res[len(bad)].Created {
		t.Errorf("valid neighbour: %+v, want created", res[len(bad)])
	}
	page, err := h.sched().ListSchedules(h.ctx, store.ScheduleListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Schedules) != 1 || page.Schedules[0].ID != "good" {
		t.Errorf("schedules after a batch with bad items: %d, want only the good one", len(page.Schedules))
	}
	// An update refused as invalid leaves the stored schedule as it was.
	upd := good
	upd.Spec = "not a spec"
	res, err = h.sched().UpsertSchedules(h.ctx, []store.Schedule{upd})
	if err != nil || !errors.Is(res[0].Err, schedule.ErrInvalidSpec) {
		t.Fatalf("invalid update: %v / %+v", err, res)
	}
	if got := h.getSched("", "good"); got.Spec != good.Spec || got.Version != 1 {
		t.Errorf("after a refused update: spec %q version %d, want unchanged", got.Spec, got.Version)
	}
}

func testScheduleConflict(t *testing.T, h *harness) {
	sc := hourly("report")
	h.upsert(sc)
	v1 := h.getSched("", "report")
	v1.Kind = "report-v2"
	if r := h.upsert(*v1)[0]; r.Version != 2 || r.Created {
		t.Fatalf("update at the current version = %+v, want version 2", r)
	}
	stale := *v1 // still carries version 1
	stale.Kind = "stale"
	res, err := h.sched().UpsertSchedules(h.ctx, []store.Schedule{stale})
	if err != nil {
		t.Fatal(err)
	}
	var ce *store.ConflictError
	if !errors.As(res[0].Err, &ce) || ce.Want != 1 || ce.Current != 2 || !errors.Is(res[0].Err, store.ErrConflict) ||
		store.Code(res[0].Err) != "conflict" {
		t.Fatalf("stale update: %v, want *ConflictError{Want: 1, Current: 2}", res[0].Err)
	}
	if got := h.getSched("", "report"); got.Kind != "report-v2" || got.Version != 2 {
		t.Errorf("after a stale update: kind %q version %d, want report-v2 at 2", got.Kind, got.Version)
	}
	missing := hourly("missing")
	missing.Version = 3
	res, err = h.sched().UpsertSchedules(h.ctx, []store.Schedule{missing})
	if err != nil || !errors.Is(res[0].Err, store.ErrNotFound) {
		t.Errorf("versioned update of a missing schedule: %v / %v, want ErrNotFound", err, res[0].Err)
	}
	// Version zero overwrites whatever is there.
	blind := hourly("report")
	blind.Kind = "blind"
	if r := h.upsert(blind)[0]; r.Version != 3 {
		t.Errorf("unconditional upsert = %+v, want version 3", r)
	}
}

func testScheduleUpdateNext(t *testing.T, h *harness) {
	h.upsert(hourly("r"))
	h.clock.Advance(10 * time.Minute)
	sc := hourly("r")
	sc.Payload = []byte("new")
	if r := h.upsert(sc)[0]; !r.NextRunAt.Equal(nextHour) {
		t.Errorf("update keeping the spec: next %s, want %s kept", r.NextRunAt, nextHour)
	}
	sc.Spec = "30 * * * *"
	want := time.Date(2031, time.March, 4, 5, 30, 0, 0, time.UTC)
	if r := h.upsert(sc)[0]; !r.NextRunAt.Equal(want) {
		t.Errorf("update changing the spec: next %s, want %s", r.NextRunAt, want)
	}
	sc.Zone = "Asia/Kolkata" // +05:30: minute 30 of local hours is minute 0 of UTC hours
	if r := h.upsert(sc)[0]; !r.NextRunAt.Equal(nextHour) {
		t.Errorf("update changing the zone: next %s, want %s", r.NextRunAt, nextHour)
	}
	if got := h.getSched("", "r"); got.Version != 4 || string(got.Payload) != "new" || !got.NextRunAt.Equal(nextHour) {
		t.Errorf("after updates: version %d payload %q next %s", got.Version, got.Payload, got.NextRunAt)
	}
}

func testScheduleList(t *testing.T, h *harness) {
	var scs []store.Schedule
	for i := range 5 {
		sc := hourly(fmt.Sprintf("s%d", i))
		sc.Tenant = "a"
		scs = append(scs, sc)
	}
	b1, b2 := hourly("s1"), hourly("x")
	b1.Tenant, b2.Tenant = "b", "b"
	h.upsert(append(scs, b1, b2)...)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		page, err := h.sched().ListSchedules(h.ctx, store.ScheduleListParams{Tenant: "a", After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if pages > 3 || len(page.Schedules) > 2 {
			t.Fatalf("page %d has %d schedules", pages, len(page.Schedules))
		}
		for _, sc := range page.Schedules {
			if sc.Tenant != "a" {
				t.Errorf("tenant a's list has %s", sc.Ref())
			}
			got = append(got, sc.ID)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if fmt.Sprint(got) != "[s0 s1 s2 s3 s4]" {
		t.Errorf("tenant a lists %v, want [s0 s1 s2 s3 s4]", got)
	}
	page, err := h.sched().ListSchedules(h.ctx, store.ScheduleListParams{Tenant: "b"})
	if err != nil || len(page.Schedules) != 2 || page.Next != "" {
		t.Errorf("tenant b: %v, %d schedules, next %q", err, len(page.Schedules), page.Next)
	}
	page, err = h.sched().ListSchedules(h.ctx, store.ScheduleListParams{Tenant: "none"})
	if err != nil || len(page.Schedules) != 0 {
		t.Errorf("unknown tenant: %v, %d schedules", err, len(page.Schedules))
	}
}

func testScheduleFire(t *testing.T, h *harness) {
	sc := hourly("report")
	sc.Tenant, sc.Priority, sc.MaxAttempts = "acme", -5, 3
	sc.Overlap = store.OverlapAllow
	h.upsert(sc)
	if res := h.fire(0); res.Schedules != 0 || len(res.Runs) != 0 || !res.NextDue.Equal(nextHour) {
		t.Fatalf("FireDue before the slot = %+v, want nothing and next due %s", res, nextHour)
	}
	h.clock.Set(nextHour.Add(2 * time.Second))
	res := h.fireRuns(1)
	run := res.Runs[0]
	if run.Ref != sc.Ref() || !run.Slot.Equal(nextHour) || run.Duplicate {
		t.Errorf("run = %+v, want acme/report at %s", run, nextHour)
	}
	j := h.get(run.JobID)
	if j.Queue != "sched" || j.Kind != "report" || string(j.Payload) != string(sc.Payload) || j.Tenant != "acme" ||
		j.Priority != -5 || j.MaxAttempts != 3 || j.State != store.StateAvailable ||
		j.UniqueKey != schedule.RunKey("report", "acme", nextHour) {
		t.Errorf("run job = %+v, want the template with run key %s", j, schedule.RunKey("report", "acme", nextHour))
	}
	want := nextHour.Add(time.Hour)
	if !res.NextDue.Equal(want) {
		t.Errorf("NextDue = %s, want %s", res.NextDue, want)
	}
	got := h.getSched("acme", "report")
	if !got.NextRunAt.Equal(want) || !got.LastRunAt.Equal(nextHour) || got.LiveJobID != j.ID || got.Fired != 1 ||
		got.Version != 1 || len(got.Recent) != 1 || got.Recent[0].JobID != j.ID || !got.Recent[0].Slot.Equal(nextHour) {
		t.Errorf("after firing: next %s last %s live %s fired %d version %d recent %+v", got.NextRunAt, got.LastRunAt,
			got.LiveJobID, got.Fired, got.Version, got.Recent)
	}
	// Firing again at the same instant finds nothing due.
	if res := h.fire(0); res.Schedules != 0 || len(res.Runs) != 0 {
		t.Errorf("second FireDue = %+v, want nothing", res)
	}
	// The slot is never enqueued twice, even after its run finished and
	// the unique key is free again.
	h.complete("sched", j.ID)
	h.fireRuns(0)
	if n := len(h.all()); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}
}

func testOverlapSkip(t *testing.T, h *harness) {
	h.upsert(everyMinute("tick"))
	h.clock.Set(nextMinute)
	first := h.fireRuns(1).Runs[0].JobID
	// The run is still live at the next slot: skipped and counted.
	h.clock.Advance(time.Minute)
	if res := h.fireRuns(0); res.Skipped != 1 || res.Schedules != 1 {
		t.Errorf("slot while live = %+v, want 1 skipped", res)
	}
	got := h.getSched("", "tick")
	if got.Skipped != 1 || got.LiveJobID != first || !got.NextRunAt.Equal(nextMinute.Add(2*time.Minute)) {
		t.Errorf("after a skip: skipped %d live %s next %s", got.Skipped, got.LiveJobID, got.NextRunAt)
	}
	// Its settlement releases the schedule.
	h.complete("sched", first)
	if got := h.getSched("", "tick"); !got.LiveJobID.IsZero() {
		t.Errorf("after the run completed: live %s, want none", got.LiveJobID)
	}
	h.clock.Advance(time.Minute)
	second := h.fireRuns(1).Runs[0].JobID
	// A run that fails and awaits its retry is still live.
	j := h.claimID("sched", second)
	h.settleOK(failed(j, "boom", h.now().Add(time.Hour)))
	h.clock.Advance(time.Minute)
	if res := h.fireRuns(0); res.Skipped != 1 {
		t.Errorf("slot while the run awaits a retry = %+v, want skipped", res)
	}
	// Dead-lettered: finished, so released.
	j = h.get(second)
	h.clock.Set(j.RunAt)
	j = h.claimID("sched", second)
	h.settleOK(verdict(j, store.DeadLetter))
	h.clock.Advance(time.Minute)
	h.fireRuns(1)
	if got := h.getSched("", "tick"); got.Fired != 3 || got.Skipped < 2 {
		t.Errorf("fired %d skipped %d, want 3 and at least 2", got.Fired, got.Skipped)
	}
}

func testOverlapQueueOne(t *testing.T, h *harness) {
	sc := everyMinute("q1")
	sc.Overlap = store.OverlapQueueOne
	h.upsert(sc)
	h.clock.Set(nextMinute)
	a := h.fireRuns(1).Runs[0].JobID
	h.clock.Advance(time.Minute)
	if res := h.fireRuns(0); res.Skipped != 1 {
		t.Errorf("slot while a run waits = %+v, want skipped", res)
	}
	ja := h.claimID("sched", a) // a runs now, nothing waits
	h.clock.Advance(time.Minute)
	b := h.fireRuns(1).Runs[0].JobID // b waits behind a
	h.clock.Advance(time.Minute)
	if res := h.fireRuns(0); res.Skipped != 1 {
		t.Errorf("slot while one run waits behind a running one = %+v, want skipped", res)
	}
	// b does not start while a runs.
	h.claimNone("sched")
	h.settleOK(verdict(ja, store.Complete))
	if jb := h.claimOne("sched"); jb.ID != b {
		t.Errorf("claimed %s, want the queued run %s", jb.ID, b)
	}
}

func testOverlapAllow(t *testing.T, h *harness) {
	sc := everyMinute("all")
	sc.Overlap = store.OverlapAllow
	h.upsert(sc)
	for i := range 3 {
		h.clock.Set(nextMinute.Add(time.Duration(i) * time.Minute))
		h.fireRuns(1)
	}
	if jobs := h.claim("sched", 10); len(jobs) != 3 {
		t.Errorf("claimed %d runs at once, want 3 (allow runs them side by side)", len(jobs))
	}
}

func testFixedDelay(t *testing.T, h *harness) {
	sc := store.Schedule{ID: "poll", Spec: "@every 1m", Mode: store.ModeFixedDelay, Queue: "sched", Kind: "poll"}
	first := h.upsert(sc)[0].NextRunAt
	if want := epoch.Add(time.Minute); !first.Equal(want) {
		t.Fatalf("first slot %s, want %s", first, want)
	}
	h.clock.Set(first)
	run := h.fireRuns(1).Runs[0].JobID
	if got := h.getSched("", "poll"); !got.NextRunAt.IsZero() {
		t.Errorf("fixed delay with a live run: next %s, want none until it finishes", got.NextRunAt)
	}
	// Long after, nothing fires while the run is live.
	h.clock.Advance(10 * time.Minute)
	h.fireRuns(0)
	done := h.clock.Advance(1500 * time.Millisecond)
	h.complete("sched", run)
	want := schedule.ReleaseNext(done, time.Minute)
	if got := h.getSched("", "poll"); !got.NextRunAt.Equal(want) || !got.LiveJobID.IsZero() {
		t.Errorf("after completion at %s: next %s live %s, want next %s", done, got.NextRunAt, got.LiveJobID, want)
	}
	h.clock.Set(want.Add(-time.Second))
	h.fireRuns(0)
	h.clock.Set(want)
	if r := h.fireRuns(1).Runs[0]; !r.Slot.Equal(want) {
		t.Errorf("second run slot %s, want %s", r.Slot, want)
	}
}

func testMisfire(t *testing.T, h *harness) {
	mk := func(id string, m store.Misfire, max int) store.Schedule {
		sc := everyMinute(id)
		sc.Misfire, sc.CatchUpMax, sc.Overlap = m, max, store.OverlapAllow
		return sc
	}
	hr := hourly("hourly")
	hr.Overlap = store.OverlapAllow
	h.upsert(mk("once", store.MisfireRunOnce, 0), mk("skip", store.MisfireSkip, 0),
		mk("catch", store.MisfireCatchUp, 3), hr)
	// Every scheduler was down until 05:16:30: slots 05:07..05:16 are due,
	// 05:16 is within the grace minute, the rest are missed.
	h.clock.Set(time.Date(2031, time.March, 4, 5, 16, 30, 0, time.UTC))
	res := h.fire(0)
	slots := map[string][]string{}
	for _, r := range res.Runs {
		slots[r.Ref.ID] = append(slots[r.Ref.ID], r.Slot.Format("15:04"))
	}
	for id, want := range map[string]string{
		"once":  "[05:16]",
		"skip":  "[05:16]",
		"catch": "[05:13 05:14 05:15 05:16]",
	} {
		if got := fmt.Sprint(slots[id]); got != want {
			t.Errorf("%s fired %s, want %s", id, got, want)
		}
	}
	for id, want := range map[string]int64{"once": 9, "skip": 9, "catch": 6} {
		if got := h.getSched("", id); got.Dropped != want {
			t.Errorf("%s dropped %d, want %d", id, got.Dropped, want)
		}
	}
	// Down for five hours with no slot on time: run_once runs the newest missed slot.
	h.clock.Set(time.Date(2031, time.March, 4, 10, 30, 0, 0, time.UTC))
	res = h.fire(0)
	for _, r := range res.Runs {
		if r.Ref.ID == "hourly" && r.Slot.Format("15:04") != "10:00" {
			t.Errorf("hourly fired %s, want 10:00", r.Slot.Format("15:04"))
		}
	}
	if got := h.getSched("", "hourly"); got.Fired != 1 || got.Dropped != 4 || !got.NextRunAt.Equal(time.Date(2031, time.March, 4, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("hourly: fired %d dropped %d next %s, want 1, 4, 11:00", got.Fired, got.Dropped, got.NextRunAt)
	}
}

func testScheduleDST(t *testing.T, h *harness) {
	// 9 March 2031: New York springs forward at 02:00 EST to 03:00 EDT.
	h.clock.Set(time.Date(2031, time.March, 8, 12, 0, 0, 0, time.UTC))
	gap := store.Schedule{ID: "gap", Spec: "30 2 * * *", Zone: "America/New_York", Queue: "sched", Kind: "k", Overlap: store.OverlapAllow}
	// 2 November 2031: it falls back at 02:00 EDT to 01:00 EST.
	fall := store.Schedule{ID: "fall", Spec: "30 1 * * *", Zone: "America/New_York", Queue: "sched", Kind: "k", Overlap: store.OverlapAllow}
	gapSlot := time.Date(2031, time.March, 9, 7, 0, 0, 0, time.UTC) // 03:00 EDT, the first instant after the gap
	if r := h.upsert(gap)[0]; !r.NextRunAt.Equal(gapSlot) {
		t.Errorf("02:30 on the spring-forward day: next %s, want %s (03:00 EDT)", r.NextRunAt, gapSlot)
	}
	h.clock.Set(gapSlot)
	if r := h.fireRuns(1).Runs[0]; !r.Slot.Equal(gapSlot) {
		t.Errorf("gap run slot %s", r.Slot)
	}
	if got := h.getSched("", "gap"); !got.NextRunAt.Equal(time.Date(2031, time.March, 10, 6, 30, 0, 0, time.UTC)) {
		t.Errorf("after the gap: next %s, want 02:30 EDT the next day", got.NextRunAt)
	}

	if errs, err := h.sched().DeleteSchedules(h.ctx, []store.ScheduleRef{{ID: "gap"}}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	h.clock.Set(time.Date(2031, time.November, 1, 12, 0, 0, 0, time.UTC))
	first := time.Date(2031, time.November, 2, 5, 30, 0, 0, time.UTC) // 01:30 EDT
	if r := h.upsert(fall)[0]; !r.NextRunAt.Equal(first) {
		t.Errorf("01:30 on the fall-back day: next %s, want %s (first occurrence)", r.NextRunAt, first)
	}
	h.clock.Set(first)
	h.fireRuns(1)
	h.clock.Set(first.Add(time.Hour)) // 01:30 EST, the repeat
	h.fireRuns(0)
	if got := h.getSched("", "fall"); !got.NextRunAt.Equal(time.Date(2031, time.November, 3, 6, 30, 0, 0, time.UTC)) {
		t.Errorf("after the overlap: next %s, want 01:30 EST the next day", got.NextRunAt)
	}
}

func testScheduleRace(t *testing.T, h *harness) {
	const n = 300
	var scs []store.Schedule
	for i := range n {
		sc := everyMinute(fmt.Sprintf("s%03d", i))
		sc.Tenant = fmt.Sprintf("t%d", i%7)
		scs = append(scs, sc)
	}
	h.upsert(scs...)
	h.clock.Set(nextMinute)
	var (
		mu   sync.Mutex
		runs []store.FiredRun
		wg   sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				res, err := h.sched().FireDue(h.ctx, store.FireParams{Limit: 25})
				if err != nil {
					t.Errorf("FireDue: %v", err)
					return
				}
				mu.Lock()
				runs = append(runs, res.Runs...)
				mu.Unlock()
				if res.Schedules == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[store.ScheduleRef]int{}
	for _, r := range runs {
		if r.Duplicate {
			t.Errorf("run %+v hit a duplicate key: the slot was fired twice", r)
		}
		seen[r.Ref]++
	}
	if len(seen) != n || len(runs) != n {
		t.Fatalf("%d runs for %d schedules, want one each of %d", len(runs), len(seen), n)
	}
	if jobs := h.all(); len(jobs) != n {
		t.Errorf("%d jobs, want %d", len(jobs), n)
	}
}

func testSchedulePauseResume(t *testing.T, h *harness) {
	h.upsert(everyMinute("p"), everyMinute("q"))
	refs := []store.ScheduleRef{{ID: "p"}, {ID: "missing"}}
	errs, err := h.sched().PauseSchedules(h.ctx, refs)
	if err != nil || errs[0] != nil || !errors.Is(errs[1], store.ErrNotFound) {
		t.Fatalf("PauseSchedules: %v %v", err, errs)
	}
	if errs, _ := h.sched().PauseSchedules(h.ctx, refs[:1]); errs[0] != nil {
		t.Errorf("pausing a paused schedule: %v", errs[0])
	}
	h.clock.Set(nextMinute.Add(10 * time.Minute))
	res := h.fire(0)
	if len(res.Runs) != 1 || res.Runs[0].Ref.ID != "q" {
		t.Fatalf("with p paused, fired %+v, want only q", res.Runs)
	}
	if got := h.getSched("", "p"); !got.Paused || got.Fired != 0 {
		t.Errorf("paused schedule: paused %v fired %d", got.Paused, got.Fired)
	}
	h.clock.Advance(15 * time.Second)
	errs, err = h.sched().ResumeSchedules(h.ctx, refs)
	if err != nil || errs[0] != nil || !errors.Is(errs[1], store.ErrNotFound) {
		t.Fatalf("ResumeSchedules: %v %v", err, errs)
	}
	got := h.getSched("", "p")
	if want := nextMinute.Add(11 * time.Minute); got.Paused || !got.NextRunAt.Equal(want) {
		t.Errorf("resumed: paused %v next %s, want %s (slots passed while paused are not run)", got.Paused, got.NextRunAt, want)
	}
	if res := h.fire(0); len(res.Runs) != 0 || res.Dropped != 0 {
		t.Errorf("right after resume: %+v, want nothing fired or dropped", res)
	}
	if errs, _ := h.sched().ResumeSchedules(h.ctx, refs[:1]); errs[0] != nil {
		t.Errorf("resuming a running schedule: %v", errs[0])
	}
}

func testScheduleDelete(t *testing.T, h *harness) {
	h.upsert(everyMinute("d"), everyMinute("keep"))
	h.clock.Set(nextMinute)
	h.fireRuns(2)
	errs, err := h.sched().DeleteSchedules(h.ctx, []store.ScheduleRef{{ID: "d"}})
	if err != nil || errs[0] != nil {
		t.Fatalf("DeleteSchedules: %v %v", err, errs)
	}
	if _, err := h.sched().GetSchedule(h.ctx, store.ScheduleRef{ID: "d"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSchedule after delete = %v", err)
	}
	errs, _ = h.sched().DeleteSchedules(h.ctx, []store.ScheduleRef{{ID: "d"}})
	if !errors.Is(errs[0], store.ErrNotFound) {
		t.Errorf("second delete = %v, want ErrNotFound", errs[0])
	}
	// Its enqueued run is left to finish; the deleted schedule fires no more.
	for _, j := range h.claim("sched", 10) {
		h.settleOK(verdict(j, store.Complete))
	}
	h.clock.Advance(time.Minute)
	if res := h.fireRuns(1); res.Runs[0].Ref.ID != "keep" {
		t.Errorf("fired %+v", res.Runs)
	}
}

func testScheduleTrigger(t *testing.T, h *harness) {
	sc := hourly("t")
	sc.Paused = true
	h.upsert(sc)
	h.clock.Advance(500 * time.Millisecond)
	res, err := h.sched().TriggerSchedules(h.ctx, []store.ScheduleRef{{ID: "t"}, {ID: "missing"}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[1].Err, store.ErrNotFound) || res[0].Err != nil {
		t.Fatalf("TriggerSchedules: %+v", res)
	}
	run := res[0].Run
	if !run.Triggered || !run.Slot.Equal(h.now().Truncate(time.Second)) {
		t.Errorf("triggered run = %+v", run)
	}
	j := h.wantState(run.JobID, store.StateAvailable)
	if j.Kind != "report" || j.Queue != "sched" {
		t.Errorf("triggered job = %+v", j)
	}
	got := h.getSched("", "t")
	if got.LiveJobID != run.JobID || got.Fired != 1 || len(got.Recent) != 1 || !got.Recent[0].Triggered ||
		!got.NextRunAt.Equal(nextHour) || got.Version != 1 {
		t.Errorf("after trigger: live %s fired %d recent %+v next %s version %d", got.LiveJobID, got.Fired, got.Recent, got.NextRunAt, got.Version)
	}
	// A second trigger in the same second finds the first run live: a
	// duplicate, enqueued and counted once.
	again, err := h.sched().TriggerSchedules(h.ctx, []store.ScheduleRef{{ID: "t"}})
	if err != nil || again[0].Err != nil || !again[0].Duplicate || again[0].Run.JobID != run.JobID {
		t.Errorf("second trigger in the same second = %+v, %v; want a duplicate of %s", again, err, run.JobID)
	}
	if got := h.getSched("", "t"); got.Fired != 1 || len(got.Recent) != 1 {
		t.Errorf("after a duplicate trigger: fired %d, %d recent runs; want 1 and 1", got.Fired, len(got.Recent))
	}
	// Under the skip policy a second trigger's run waits for the first.
	h.clock.Advance(time.Second)
	res, _ = h.sched().TriggerSchedules(h.ctx, []store.ScheduleRef{{ID: "t"}})
	first := h.claimOne("sched")
	if first.ID != run.JobID {
		t.Errorf("claimed %s first, want %s", first.ID, run.JobID)
	}
	h.claimNone("sched")
	h.settleOK(verdict(first, store.Complete))
	if second := h.claimOne("sched"); second.ID != res[0].Run.JobID {
		t.Errorf("claimed %s, want the second trigger's run", second.ID)
	}
}

// testTriggerThenSlot triggers a run in the very second a slot comes due:
// the slot's run is the triggered one, so nothing is enqueued or counted twice.
func testTriggerThenSlot(t *testing.T, h *harness) {
	sc := everyMinute("ts")
	sc.Overlap = store.OverlapAllow // under skip the slot would be skipped, the trigger's run being live
	h.upsert(sc)
	h.clock.Set(nextMinute.Add(200 * time.Millisecond))
	tr, err := h.sched().TriggerSchedules(h.ctx, []store.ScheduleRef{{ID: "ts"}})
	if err != nil || tr[0].Err != nil {
		t.Fatal(err, tr)
	}
	res := h.fireRuns(1)
	if r := res.Runs[0]; !r.Duplicate || r.JobID != tr[0].Run.JobID {
		t.Errorf("slot run = %+v, want a duplicate of the triggered run %s", r, tr[0].Run.JobID)
	}
	got := h.getSched("", "ts")
	if got.Fired != 1 || len(got.Recent) != 1 || got.LiveJobID != tr[0].Run.JobID || !got.NextRunAt.Equal(nextMinute.Add(time.Minute)) {
		t.Errorf("after trigger and slot in one second: fired %d recent %d live %s next %s", got.Fired, len(got.Recent), got.LiveJobID, got.NextRunAt)
	}
	if n := len(h.all()); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}
}

func testScheduleCancelReleases(t *testing.T, h *harness) {
	h.upsert(everyMinute("c"))
	h.clock.Set(nextMinute)
	run := h.fireRuns(1).Runs[0].JobID
	h.cancelOK(run)
	if got := h.getSched("", "c"); !got.LiveJobID.IsZero() {
		t.Errorf("after cancelling the run: live %s, want released", got.LiveJobID)
	}
	h.clock.Advance(time.Minute)
	h.fireRuns(1)
}

func testScheduleFireBatches(t *testing.T, h *harness) {
	var scs []store.Schedule
	for i := range 25 {
		scs = append(scs, everyMinute(fmt.Sprintf("b%02d", i)))
	}
	h.upsert(scs...)
	h.clock.Set(nextMinute)
	total := 0
	for range 3 {
		res := h.fire(10)
		if res.Schedules > 10 {
			t.Fatalf("FireDue with limit 10 took %d", res.Schedules)
		}
		total += len(res.Runs)
	}
	if total != 25 {
		t.Errorf("three batches of 10 fired %d, want 25", total)
	}
	if res := h.fire(10); res.Schedules != 0 || !res.NextDue.Equal(nextMinute.Add(time.Minute)) {
		t.Errorf("after all fired: %+v", res)
	}
}

func testScheduleBadArgs(t *testing.T, h *harness) {
	ss := h.sched()
	if _, err := ss.FireDue(h.ctx, store.FireParams{Limit: store.MaxFireBatch + 1}); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("FireDue over the batch limit: %v", err)
	}
	if _, err := ss.FireDue(h.ctx, store.FireParams{Limit: -1}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("FireDue with a negative limit: %v", err)
	}
	if _, err := ss.ListSchedules(h.ctx, store.ScheduleListParams{Limit: store.MaxListLimit + 1}); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("ListSchedules over the limit: %v", err)
	}
	if _, err := ss.GetSchedule(h.ctx, store.ScheduleRef{ID: "bad id!"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("GetSchedule with a bad id: %v", err)
	}
	if _, err := ss.PauseSchedules(h.ctx, []store.ScheduleRef{{ID: ""}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("PauseSchedules with an empty id: %v", err)
	}
	if _, err := ss.UpsertSchedules(h.ctx, make([]store.Schedule, store.MaxBatch+1)); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("UpsertSchedules over the batch limit: %v", err)
	}
}

// testScheduleCannotFire: a schedule this build can no longer fire (its
// stored row was edited to a spec that does not parse, or a queue name that
// is refused) is skipped, counted and looked at again an hour later; every
// other schedule due with it fires. One rule, the same on every backend.
func testScheduleCannotFire(t *testing.T, h *harness) {
	for _, c := range []struct{ column, value string }{{"spec", "not a spec"}, {"queue", "not a queue!"}} {
		t.Run(c.column, func(t *testing.T) {
			h := newHarness(t, h.b)
			h.cannotFire(t, c.column, c.value)
		})
	}
}

func (h *harness) cannotFire(t *testing.T, column, value string) {
	h.upsert(everyMinute("bad"), everyMinute("good"), everyMinute("also-good"))
	h.b.CorruptSchedule(t, h.s, store.ScheduleRef{ID: "bad"}, column, value)
	h.clock.Set(nextMinute)
	res := h.fire(0)
	if res.Schedules != 3 || res.Failed != 1 || len(res.Runs) != 2 {
		t.Fatalf("FireDue = %d schedules, %d failed, %d runs; want 3, 1 and 2 (the good ones fire)", res.Schedules, res.Failed, len(res.Runs))
	}
	for _, r := range res.Runs {
		if r.Ref.ID == "bad" {
			t.Errorf("the corrupt schedule fired: %+v", r)
		}
	}
	bad := h.getSched("", "bad")
	if want := nextMinute.Add(time.Hour); !bad.NextRunAt.Equal(want) {
		t.Errorf("corrupt schedule's next run = %v, want an hour later (%v)", bad.NextRunAt, want)
	}
	// The next minute the good ones fire again, and the bad one is not
	// taken first: it waits for its hour.
	for _, j := range h.claim("sched", 10) {
		h.settleOK(verdict(j, store.Complete))
	}
	h.clock.Set(nextMinute.Add(time.Minute))
	if res := h.fire(0); res.Schedules != 2 || res.Failed != 0 || len(res.Runs) != 2 {
		t.Errorf("next minute: %d schedules, %d failed, %d runs; want 2, 0, 2", res.Schedules, res.Failed, len(res.Runs))
	}
}
