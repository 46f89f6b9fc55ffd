package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// TestUniqueForMigration: a file from before migration 0006 (its down
// script applied by hand) keeps its jobs' unique keys through the upgrade:
// a live job still holds its key, a finished one does not, and both are
// found by key. A job's window does not survive a downgrade.
func TestUniqueForMigration(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	ctx := t.Context()
	s := open(t, path)
	res, err := s.Enqueue(ctx, []store.EnqueueParams{
		{Kind: "k", UniqueKey: "live"},
		{Kind: "k", Queue: "done", UniqueKey: "done"},
		{Kind: "k", Queue: "held", UniqueKey: "held", UniqueFor: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"done", "held"} {
		jobs, err := s.Claim(ctx, store.ClaimParams{Queue: q, LockFor: time.Minute})
		if err != nil || len(jobs) != 1 {
			t.Fatalf("claim %s: %v %v", q, jobs, err)
		}
		if errs, err := s.Settle(ctx, []store.Verdict{{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.Complete}}); err != nil || errs[0] != nil {
			t.Fatalf("settle: %v %v", err, errs)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	downTo(t, path, 5)
	if st, err := sqlite.MigrationStatus(ctx, path); err != nil || st.Current != 5 || len(st.Pending) != knownAbove(5) {
		t.Fatalf("status after the down script: %+v, %v", st, err)
	}

	s = open(t, path)
	again, err := s.Enqueue(ctx, []store.EnqueueParams{
		{Kind: "k", UniqueKey: "live"},
		{Kind: "k", UniqueKey: "done"},
		{Kind: "k", UniqueKey: "held"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].ID != res[0].ID {
		t.Errorf("the live job's key after the upgrade: %+v, want a duplicate of %s", again[0], res[0].ID)
	}
	if again[1].Duplicate || again[2].Duplicate {
		t.Errorf("finished jobs' keys after the upgrade: %+v, %+v; want new jobs", again[1], again[2])
	}
	j, err := s.GetByUniqueKey(ctx, "", "held")
	if err != nil || j.ID != again[2].ID {
		t.Fatalf("GetByUniqueKey(held) = %v, %v; want the new job", j, err)
	}
	old, err := s.Get(ctx, res[2].ID)
	if err != nil || !old.UniqueUntil.IsZero() || old.State != store.StateCompleted {
		t.Fatalf("the held job after down and up: %+v, %v; want completed, without a window", old, err)
	}
}
