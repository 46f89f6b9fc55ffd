package postgres_test

import (
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// TestUniqueForMigrationDownUp: migration 0006 comes off with jobs in the
// table (live and finished ones with unique keys, one holding its key for
// a window) and goes back on: a live job still holds its key, finished
// ones do not (a window does not survive a downgrade), and jobs are found
// by key again.
func TestUniqueForMigrationDownUp(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	s := open(t, schema, postgres.Config{})
	ctx := t.Context()
	res, err := s.Enqueue(ctx, []store.EnqueueParams{
		{Kind: "k", UniqueKey: "live"},
		{Kind: "k", Queue: "held", UniqueKey: "held", UniqueFor: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Claim(ctx, store.ClaimParams{Queue: "held", LockFor: time.Minute})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	if errs, err := s.Settle(ctx, []store.Verdict{{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.Complete}}); err != nil || errs[0] != nil {
		t.Fatalf("settle: %v %v", err, errs)
	}
	latest := postgres.LatestVersion()
	if steps, err := postgres.Migrate(ctx, s.Pool(), schema, 5); err != nil || len(steps) != knownAbove(t, 5) || steps[len(steps)-1].Version != 6 || !steps[0].Down {
		t.Fatalf("Migrate down to 5: %+v, %v", steps, err)
	}
	if steps, err := postgres.Migrate(ctx, s.Pool(), schema, latest); err != nil || len(steps) != knownAbove(t, 5) || steps[0].Version != 6 {
		t.Fatalf("Migrate up again: %+v, %v", steps, err)
	}
	again, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", UniqueKey: "live"}, {Kind: "k", UniqueKey: "held"}})
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].ID != res[0].ID {
		t.Errorf("the live job's key after down and up: %+v, want a duplicate of %s", again[0], res[0].ID)
	}
	if again[1].Duplicate {
		t.Errorf("the held job's key after down and up: %+v, want a new job", again[1])
	}
	old, err := s.Get(ctx, res[1].ID)
	if err != nil || !old.UniqueUntil.IsZero() || old.State != store.StateCompleted {
		t.Fatalf("the held job after down and up: %+v, %v", old, err)
	}
	if j, err := s.GetByUniqueKey(ctx, "", "held"); err != nil || j.ID != again[1].ID {
		t.Fatalf("GetByUniqueKey(held) = %v, %v; want the new job", j, err)
	}
}
