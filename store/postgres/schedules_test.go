package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/storetest"
)

// schedEpoch is where the schedule tests' clocks start: whole seconds, far
// from the real time.
var schedEpoch = time.Date(2031, time.March, 4, 5, 6, 0, 0, time.UTC)

// upsert writes schedules and fails the test on any error.
func upsert(t *testing.T, s *postgres.Store, list ...store.Schedule) []store.ScheduleUpsertResult {
	t.Helper()
	var out []store.ScheduleUpsertResult
	for lo := 0; lo < len(list); lo += 1000 {
		res, err := s.UpsertSchedules(t.Context(), list[lo:min(lo+1000, len(list))])
		if err != nil {
			t.Fatalf("UpsertSchedules: %v", err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("UpsertSchedules item %d: %v", lo+i, r.Err)
			}
		}
		out = append(out, res...)
	}
	return out
}

func getSchedule(t *testing.T, s *postgres.Store, id string) *store.Schedule {
	t.Helper()
	sc, err := s.GetSchedule(t.Context(), store.ScheduleRef{ID: id})
	if err != nil {
		t.Fatalf("GetSchedule(%s): %v", id, err)
	}
	return sc
}

func fire(t *testing.T, s *postgres.Store, limit int) *store.FireResult {
	t.Helper()
	res, err := s.FireDue(t.Context(), store.FireParams{Limit: limit})
	if err != nil {
		t.Fatalf("FireDue: %v", err)
	}
	return res
}

// TestFireDueRace: schedulers on two stores (two connection pools, as in
// two processes) fire the same 1,000 due schedules at once, in big and in
// small batches, for several slots. Every slot is enqueued exactly once.
func TestFireDueRace(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	clock := storetest.NewClock(schedEpoch)
	nodes := make([]*postgres.Store, 2)
	for i := range nodes {
		s, err := postgres.Open(t.Context(), url, postgres.Config{Schema: schema, Now: clock.Now, PollOnly: true, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes[i] = s
	}
	const n = 1000
	list := make([]store.Schedule, n)
	for i := range list {
		list[i] = store.Schedule{ID: fmt.Sprintf("s%04d", i), Spec: "@every 1m", Kind: "tick", Overlap: store.OverlapAllow}
	}
	upsert(t, nodes[0], list...)

	fired := map[store.ID]store.FiredRun{}
	for round, limit := range []int{n, 37, 1} {
		clock.Advance(time.Minute)
		var (
			mu    sync.Mutex
			runs  []store.FiredRun
			taken int
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make(chan error, len(nodes))
		)
		for _, s := range nodes {
			wg.Go(func() {
				<-start
				for {
					res, err := s.FireDue(t.Context(), store.FireParams{Limit: limit})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					runs, taken = append(runs, res.Runs...), taken+res.Schedules
					mu.Unlock()
					if res.Schedules == 0 {
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: FireDue: %v", round, err)
		}
		// A caller that found every due schedule locked stops early; sweep
		// up what the other left, so the count below covers the round.
		res := fire(t, nodes[0], store.MaxFireBatch)
		runs, taken = append(runs, res.Runs...), taken+res.Schedules
		if taken != n || len(runs) != n {
			t.Fatalf("round %d: schedules taken %d, runs %d; want %d each", round, taken, len(runs), n)
		}
		slots := map[string]bool{}
		for _, r := range runs {
			key := r.Ref.ID + "@" + r.Slot.String()
			if slots[key] || r.Duplicate {
				t.Fatalf("round %d: slot %s fired twice (duplicate %v)", round, key, r.Duplicate)
			}
			slots[key] = true
			if _, ok := fired[r.JobID]; ok {
				t.Fatalf("round %d: job %s reported twice", round, r.JobID)
			}
			fired[r.JobID] = r
		}
	}
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var jobs, keys int
	if err := pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT unique_key) FROM `+schema+`.jobs`).Scan(&jobs, &keys); err != nil {
		t.Fatal(err)
	}
	if jobs != 3*n || keys != 3*n || len(fired) != 3*n {
		t.Fatalf("%d jobs with %d distinct run keys, %d runs reported; want %d each", jobs, keys, len(fired), 3*n)
	}
	var wrong int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+schema+`.schedules WHERE fired <> 3`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 {
		t.Fatalf("%d schedules do not record 3 runs fired", wrong)
	}
}

// TestScheduleReleaseTrigger: whatever finishes a schedule's live run (a
// settle, a cancel) clears live_job_id in the same statement and, for a
// fixed-delay schedule, sets next_run_at to the completion rounded up to the
// second plus the delay. A retry does not release it.
func TestScheduleReleaseTrigger(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(schedEpoch)
	s := open(t, pgtest.Schema(t), postgres.Config{Now: clock.Now})
	ctx := t.Context()
	upsert(t, s,
		store.Schedule{ID: "delay", Spec: "@every 1m", Mode: store.ModeFixedDelay, Kind: "k", Queue: "q"},
		store.Schedule{ID: "rate", Spec: "@every 1m", Kind: "k", Queue: "q"},
	)
	// fireOne fires both schedules and returns their runs by schedule ID.
	fireOne := func() map[string]store.ID {
		t.Helper()
		res := fire(t, s, 0)
		out := map[string]store.ID{}
		for _, r := range res.Runs {
			out[r.Ref.ID] = r.JobID
		}
		if len(out) != 2 {
			t.Fatalf("FireDue ran %+v, want one run of each schedule", res.Runs)
		}
		return out
	}
	check := func(what, id string, live store.ID, next time.Time) {
		t.Helper()
		sc := getSchedule(t, s, id)
		if sc.LiveJobID != live || !sc.NextRunAt.Equal(next) {
			t.Errorf("%s: %s has live run %v, next_run_at %v; want %v, %v", what, id, sc.LiveJobID, sc.NextRunAt, live, next)
		}
	}
	claim := func() map[store.ID]*store.Job {
		t.Helper()
		jobs, err := s.Claim(ctx, store.ClaimParams{Queue: "q", Limit: 10, LockFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		out := map[store.ID]*store.Job{}
		for _, j := range jobs {
			out[j.ID] = j
		}
		return out
	}
	settle := func(vs ...store.Verdict) {
		t.Helper()
		errs, err := s.Settle(ctx, vs)
		if err != nil {
			t.Fatal(err)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Settle item %d: %v", i, err)
			}
		}
	}
	finishedAt := func(id store.ID) time.Time {
		t.Helper()
		j, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return j.FinishedAt
	}

	// Completed by a settle, 1.5s after the slot.
	slot := clock.Advance(time.Minute)
	runs := fireOne()
	check("fired", "delay", runs["delay"], time.Time{})
	check("fired", "rate", runs["rate"], slot.Add(time.Minute))
	jobs := claim()
	rateToken := jobs[runs["rate"]].LockToken
	clock.Advance(500 * time.Millisecond)
	// A failure with attempts left retries the run: it stays live.
	settle(store.Verdict{ID: runs["delay"], Token: jobs[runs["delay"]].LockToken, Outcome: store.Fail, RetryAt: clock.Now()})
	check("retrying", "delay", runs["delay"], time.Time{})
	jobs = claim()
	clock.Advance(time.Second)
	settle(store.Verdict{ID: runs["delay"], Token: jobs[runs["delay"]].LockToken, Outcome: store.Complete},
		store.Verdict{ID: runs["rate"], Token: rateToken, Outcome: store.Complete})
	done := finishedAt(runs["delay"])
	if !done.Equal(slot.Add(1500 * time.Millisecond)) {
		t.Fatalf("finished_at %v, want %v", done, slot.Add(1500*time.Millisecond))
	}
	next := schedule.ReleaseNext(done, time.Minute)
	if !next.Equal(slot.Add(62 * time.Second)) {
		t.Fatalf("ReleaseNext = %v, want the completion rounded up plus a minute", next)
	}
	check("completed", "delay", store.ID{}, next)
	check("completed", "rate", store.ID{}, slot.Add(time.Minute))

	// Cancelled while available, on a whole second.
	clock.Set(next)
	runs = fireOne()
	check("fired again", "delay", runs["delay"], time.Time{})
	clock.Advance(3 * time.Second)
	if errs, err := s.Cancel(ctx, []store.ID{runs["delay"], runs["rate"]}); err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("Cancel: %v %v", errs, err)
	}
	check("cancelled", "delay", store.ID{}, clock.Now().Add(time.Minute))
	check("cancelled", "rate", store.ID{}, slot.Add(2*time.Minute))

	// Dead-lettered by the handler.
	clock.Set(clock.Now().Add(time.Minute))
	runs = fireOne()
	jobs = claim()
	clock.Advance(10 * time.Millisecond)
	settle(store.Verdict{ID: runs["delay"], Token: jobs[runs["delay"]].LockToken, Outcome: store.DeadLetter})
	check("dead", "delay", store.ID{}, schedule.ReleaseNext(clock.Now(), time.Minute))
	check("still running", "rate", runs["rate"], slot.Add(3*time.Minute))
}

// TestScheduleMigrationDownUp: migration 0002 comes off cleanly (table,
// trigger and function), jobs with run keys settle without it, and it goes
// back on with a working release trigger.
func TestScheduleMigrationDownUp(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(schedEpoch)
	schema := pgtest.Schema(t)
	s := open(t, schema, postgres.Config{Now: clock.Now})
	ctx := t.Context()
	pool := s.Pool()
	objects := func() (n int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT (to_regclass($1) IS NOT NULL)::int + (to_regproc($2) IS NOT NULL)::int
			+ (SELECT count(*) FROM pg_trigger WHERE tgname = 'schedules_release' AND tgrelid = to_regclass($3))::int`,
			schema+".schedules", schema+".schedules_release", schema+".jobs").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := objects(); n != 3 {
		t.Fatalf("%d of the table, function and trigger after Open", n)
	}
	upsert(t, s, store.Schedule{ID: "a", Spec: "@every 1m", Kind: "k"})
	// Down to 1 takes off 0002 after the migrations above it.
	if steps, err := postgres.Migrate(ctx, pool, schema, 1); err != nil || len(steps) != knownAbove(t, 1) ||
		!steps[len(steps)-1].Down || steps[len(steps)-1].Version != 2 {
		t.Fatalf("Migrate down to 1: %+v, %v", steps, err)
	}
	if n := objects(); n != 0 {
		t.Fatalf("%d of the table, function and trigger left after down", n)
	}
	if _, err := s.GetSchedule(ctx, store.ScheduleRef{ID: "a"}); err == nil {
		t.Fatal("GetSchedule works without the schedules table")
	}
	// Jobs that look like runs still finish.
	res, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", UniqueKey: "sched::a:2031-03-04T05:07:00Z"}})
	if err != nil {
		t.Fatal(err)
	}
	if errs, err := s.Cancel(ctx, []store.ID{res[0].ID}); err != nil || errs[0] != nil {
		t.Fatalf("Cancel without the trigger: %v %v", errs, err)
	}

	if steps, err := postgres.Migrate(ctx, pool, schema, postgres.LatestVersion()); err != nil || len(steps) != knownAbove(t, 1) || steps[0].Version != 2 {
		t.Fatalf("Migrate up again: %+v, %v", steps, err)
	}
	if n := objects(); n != 3 {
		t.Fatalf("%d of the table, function and trigger after up", n)
	}
	upsert(t, s, store.Schedule{ID: "a", Spec: "@every 1m", Kind: "k", Mode: store.ModeFixedDelay})
	clock.Advance(time.Minute)
	run := fire(t, s, 0).Runs
	if len(run) != 1 {
		t.Fatalf("FireDue after up: %+v", run)
	}
	if errs, err := s.Cancel(ctx, []store.ID{run[0].JobID}); err != nil || errs[0] != nil {
		t.Fatalf("Cancel: %v %v", errs, err)
	}
	if sc := getSchedule(t, s, "a"); !sc.LiveJobID.IsZero() || !sc.NextRunAt.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("after up, the release trigger left live %v, next %v", sc.LiveJobID, sc.NextRunAt)
	}
}

// TestSchedulesClosed: every schedule method of a closed store fails with
// ErrClosed.
func TestSchedulesClosed(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.Schema(t), postgres.Config{PollOnly: true})
	s.Close()
	ctx := t.Context()
	refs := []store.ScheduleRef{{ID: "a"}}
	_, e1 := s.UpsertSchedules(ctx, []store.Schedule{{ID: "a", Spec: "@hourly", Kind: "k"}})
	_, e2 := s.GetSchedule(ctx, refs[0])
	_, e3 := s.ListSchedules(ctx, store.ScheduleListParams{})
	_, e4 := s.PauseSchedules(ctx, refs)
	_, e5 := s.ResumeSchedules(ctx, refs)
	_, e6 := s.DeleteSchedules(ctx, refs)
	_, e7 := s.TriggerSchedules(ctx, refs)
	_, e8 := s.FireDue(ctx, store.FireParams{})
	for i, err := range []error{e1, e2, e3, e4, e5, e6, e7, e8} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("method %d on a closed store: %v, want ErrClosed", i+1, err)
		}
	}
}

// TestUpsertSameScheduleTwice: a batch that names one schedule more than
// once applies the items in input order, each seeing the one before.
func TestUpsertSameScheduleTwice(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(schedEpoch)
	s := open(t, pgtest.Schema(t), postgres.Config{Now: clock.Now, PollOnly: true})
	a := store.Schedule{ID: "a", Spec: "@hourly", Kind: "k1"}
	b := a
	b.Kind = "k2"
	stale := a
	stale.Kind, stale.Version = "stale", 1
	fresh := a
	fresh.Kind, fresh.Version = "k3", 2
	other := store.Schedule{ID: "b", Spec: "@hourly", Kind: "k"}
	res, err := s.UpsertSchedules(t.Context(), []store.Schedule{a, other, b, stale, fresh})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		version int64
		created bool
	}{{1, true}, {1, true}, {2, false}, {0, false}, {3, false}}
	for i, w := range want {
		if res[i].Version != w.version || res[i].Created != w.created {
			t.Errorf("item %d: %+v, want version %d created %v", i, res[i], w.version, w.created)
		}
	}
	var ce *store.ConflictError
	if !errors.As(res[3].Err, &ce) || ce.Want != 1 || ce.Current != 2 {
		t.Errorf("stale item: %v, want a conflict with version 2", res[3].Err)
	}
	if sc := getSchedule(t, s, "a"); sc.Kind != "k3" || sc.Version != 3 {
		t.Errorf("stored: kind %q version %d, want k3 at 3", sc.Kind, sc.Version)
	}
}
