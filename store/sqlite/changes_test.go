package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// woken fails the test unless ch closes soon. Soon is generous: the point
// is that it closes without anyone polling, not how fast (spool bench
// --mode cross-process measures that).
func woken(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not woken by another connection's commit", what)
	}
}

// A commit through another Store on the same file, as another process
// would make, wakes this store's waiters: an enqueue closes Available, a
// completion closes Finished. So does a caller's transaction behind
// EnqueueTx. With the WAL watched, and with polling where it cannot be.
func TestOtherConnectionsCommitsWakeWaiters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		poll bool
	}{{"watch", false}, {"poll", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "spool.db")
			a := open(t, path)
			b, err := sqlite.OpenWithHooks(path, sqlite.Config{}, sqlite.Hooks{PollChanges: tc.poll})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx := context.Background()

			available := b.Capabilities().Notifier.Available("q")
			res, err := a.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "q"}})
			if err != nil {
				t.Fatal(err)
			}
			woken(t, "Available after an enqueue on another store", available)

			jobs, err := a.Claim(ctx, store.ClaimParams{Queue: "q", Limit: 1, LockFor: time.Minute})
			if err != nil || len(jobs) != 1 {
				t.Fatalf("claim: %d jobs, %v", len(jobs), err)
			}
			finished, release := b.Capabilities().Notifier.Finished(res[0].ID)
			defer release()
			if _, err := a.Settle(ctx, []store.Verdict{{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.Complete}}); err != nil {
				t.Fatal(err)
			}
			woken(t, "Finished after a completion on another store", finished)

			db, err := sql.Open("sqlite", sqlite.DSN(path, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			available = b.Capabilities().Notifier.Available("q")
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.EnqueueTx(ctx, tx, []store.EnqueueParams{{Kind: "k", Queue: "q"}}); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			woken(t, "Available after EnqueueTx committed", available)
		})
	}
}
