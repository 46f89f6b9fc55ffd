package storetest

import (
	"errors"
	"fmt"
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
	if _, err := h.sched().GetSchedule(h.ctx, store.ScheduleRef{ID: "nightly"}); !errors.Is(err, store.ErrNotFound) {
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
