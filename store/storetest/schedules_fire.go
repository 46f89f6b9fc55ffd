package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// The firing cases of scheduleTests: FireDue's decisions, overlap and
// misfire policies, fixed delay, DST, racing schedulers, batches, and a
// schedule that cannot fire.

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
	runs := fireRacing(t, 25, h, h, h, h)
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

// fireRacing calls FireDue with limit from one goroutine per harness given,
// each until a call takes nothing, and returns every run they reported.
func fireRacing(t *testing.T, limit int, hs ...*harness) []store.FiredRun {
	var (
		mu   sync.Mutex
		runs []store.FiredRun
		wg   sync.WaitGroup
	)
	for _, x := range hs {
		wg.Go(func() {
			for {
				res, err := x.sched().FireDue(x.ctx, store.FireParams{Limit: limit})
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
	return runs
}
