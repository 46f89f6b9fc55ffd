package postgres

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// TestHoldDuplicates: a run that finds its key held by a live job its
// schedule does not name holds that job until the run is recorded, so the
// job's release, waiting meanwhile, finds the schedule naming it; a holder
// that finished between the insert and the lock gives its key up to a new
// run.
func TestHoldDuplicates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Date(2031, time.March, 4, 5, 7, 0, 0, time.UTC)
	s, err := Open(ctx, pgtest.URL(t), Config{Schema: pgtest.Schema(t), PollOnly: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	sc := &store.Schedule{ID: "poll", Spec: "@every 1m", Mode: store.ModeFixedDelay, Kind: "k"}
	if res, err := s.UpsertSchedules(ctx, []store.Schedule{*sc}); err != nil || res[0].Err != nil {
		t.Fatalf("UpsertSchedules: %v %+v", err, res)
	}
	// holder enqueues a job under the run key of the slot at now, as a
	// trigger in that second would have, without the schedule naming it.
	holder := func() store.ID {
		t.Helper()
		res, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", UniqueKey: schedule.RunKey("poll", "", now)}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].ID
	}
	// insert runs the slot's run in tx up to holdDuplicates, with between
	// run after the insert and before the hold.
	insert := func(tx pgx.Tx, between func()) store.EnqueueResult {
		t.Helper()
		jobs := []store.EnqueueParams{schedule.RunJob(sc, now)}
		if err := normalizeRuns(jobs, now); err != nil {
			t.Fatal(err)
		}
		res := make([]store.EnqueueResult, 1)
		if err := s.insertJobs(ctx, pgxExec{tx}, jobs, res, now); err != nil {
			t.Fatal(err)
		}
		if !res[0].Duplicate {
			t.Fatalf("insert = %+v, want a duplicate of the holder", res[0])
		}
		between()
		untracked := func(int) store.ID { return store.ID{} }
		if err := s.holdDuplicates(ctx, tx, jobs, res, untracked, now); err != nil {
			t.Fatal(err)
		}
		return res[0]
	}

	// The holder finishes between the insert and the hold: the run goes in.
	first := holder()
	tx, err := s.pool.BeginTx(ctx, txOptions)
	if err != nil {
		t.Fatal(err)
	}
	res := insert(tx, func() {
		if errs, err := s.Cancel(ctx, []store.ID{first}); err != nil || errs[0] != nil {
			t.Fatalf("Cancel: %v %v", errs, err)
		}
	})
	if res.Duplicate || res.ID == first {
		t.Errorf("after the holder finished: %+v, want a new run", res)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// The holder is live: it is held, and a cancel waits until the run is
	// recorded, then releases the schedule.
	second := holder()
	tx, err = s.pool.BeginTx(ctx, txOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if res := insert(tx, func() {}); !res.Duplicate || res.ID != second {
		t.Fatalf("with the holder live: %+v, want it named", res)
	}
	cancelled := make(chan error, 1)
	go func() {
		errs, err := s.Cancel(ctx, []store.ID{second})
		if err == nil {
			err = errs[0]
		}
		cancelled <- err
	}()
	select {
	case err := <-cancelled:
		t.Fatalf("Cancel of the held job returned (%v) before the run was recorded", err)
	case <-time.After(300 * time.Millisecond):
	}
	var a firedArgs
	a.add(sc, true, time.Time{}, now, second, 1, 0, 0, nil)
	if _, err := tx.Exec(ctx, s.q.sched.fired, a.args()...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-cancelled; err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	got, err := s.GetSchedule(ctx, sc.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(time.Minute); !got.LiveJobID.IsZero() || !got.NextRunAt.Equal(want) {
		t.Errorf("after the held run was cancelled: live %v next %v, want released with next %v", got.LiveJobID, got.NextRunAt, want)
	}
}
