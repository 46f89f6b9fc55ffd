package postgres

import (
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
)

// TestClockIsTheDatabases: a store whose process clock is 30 s off still
// stamps locks and run_at with the database's time, so a node with a
// skewed clock neither reaps another node's held jobs nor runs jobs early.
// (Not parallel: it skews the package's process clock.)
func TestClockIsTheDatabases(t *testing.T) {
	for _, skew := range []time.Duration{30 * time.Second, -30 * time.Second} {
		procNow = func() time.Time { return time.Now().Add(skew) }
		t.Cleanup(func() { procNow = time.Now })
		ctx := t.Context()
		schema := pgtest.Schema(t)
		s, err := Open(ctx, pgtest.URL(t), Config{Schema: schema, PollOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		other, err := Open(ctx, pgtest.URL(t), Config{Schema: schema, PollOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var db time.Time
		if err := s.b.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&db); err != nil {
			t.Fatal(err)
		}
		if d := s.Now().Sub(db); d < -time.Second || d > time.Second {
			t.Errorf("skew %v: store clock is %v off the database's, want under 1s", skew, d)
		}
		// A job claimed with a 5 s lock is not reaped by another node, and
		// a job enqueued to run in 10 s is not claimable now.
		res, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "held"}, {Kind: "later", Delay: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		jobs, err := s.Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, Limit: 10, LockFor: 5 * time.Second})
		if err != nil || len(jobs) != 1 || jobs[0].ID != res[0].ID {
			t.Fatalf("skew %v: claim = %v, %v; want only the job due now", skew, jobs, err)
		}
		if r, err := other.ReapExpired(ctx, 10); err != nil || r.Returned+r.DeadLettered != 0 {
			t.Errorf("skew %v: another node reaped %+v (%v) of a lock held for 5 s", skew, r, err)
		}
		if d := jobs[0].LockedUntil.Sub(db); d < 4*time.Second || d > 6*time.Second {
			t.Errorf("skew %v: lock ends %v after the database's now, want about 5s", skew, d)
		}
		s.Close()
		other.Close()
	}
}
