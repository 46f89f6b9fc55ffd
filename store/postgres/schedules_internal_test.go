package postgres

import (
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// TestHoldLive: a run that finds its key held by a live job its schedule
// does not name holds that job (HoldLive) until the run is recorded, so the
// job's release, waiting meanwhile, finds the schedule naming it; a holder
// that finished between the insert and the hold is not held, and its key is
// free for a new run.
func TestHoldLive(t *testing.T) {
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
	// insert runs the slot's run in a new transaction up to the hold, with
	// between run after the insert and before the hold, and reports whether
	// the holder was held.
	insert := func(between func()) (*scheduleTx, store.EnqueueResult, bool) {
		t.Helper()
		tx, err := s.b.pool.BeginTx(ctx, txOptions)
		if err != nil {
			t.Fatal(err)
		}
		st := &scheduleTx{s: s.b, ctx: ctx, tx: tx, now: now}
		p := schedule.RunJob(sc, now)
		if err := p.Normalize(now); err != nil {
			t.Fatal(err)
		}
		res, err := st.InsertJobs([]store.EnqueueParams{p})
		if err != nil {
			t.Fatal(err)
		}
		if !res[0].Duplicate {
			t.Fatalf("insert = %+v, want a duplicate of the holder", res[0])
		}
		between()
		held, err := st.HoldLive([]store.ID{res[0].ID})
		if err != nil {
			t.Fatal(err)
		}
		return st, res[0], held[res[0].ID]
	}

	// The holder finishes between the insert and the hold: it is not held,
	// and its run key is free again.
	first := holder()
	st, res, held := insert(func() {
		if errs, err := s.Cancel(ctx, []store.ID{first}); err != nil || errs[0] != nil {
			t.Fatalf("Cancel: %v %v", errs, err)
		}
	})
	if held || res.ID != first {
		t.Errorf("after the holder finished: %+v held %v, want it not held", res, held)
	}
	p := schedule.RunJob(sc, now)
	if err := p.Normalize(now); err != nil {
		t.Fatal(err)
	}
	if again, err := st.InsertJobs([]store.EnqueueParams{p}); err != nil || again[0].Duplicate {
		t.Errorf("insert after the holder finished: %+v %v, want a new run", again, err)
	}
	if err := st.tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// The holder is live: it is held, and a cancel waits until the run is
	// recorded, then releases the schedule.
	second := holder()
	st, res, held = insert(func() {})
	tx := st.tx
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if !held || res.ID != second {
		t.Fatalf("with the holder live: %+v held %v, want it named and held", res, held)
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
	if err := st.RecordFired([]engine.Fired{{Ref: sc.Ref(), SetNext: true, Last: now, Live: second, Fired: 1}}); err != nil {
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
