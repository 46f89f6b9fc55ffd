package postgres_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/storetest"
)

// TestMaintenanceFromManyNodes: reapers and pruners on several stores at
// once each take their own bounded batches: every expired job is reaped
// exactly once and every old finished job deleted exactly once.
func TestMaintenanceFromManyNodes(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	clock := storetest.NewClock(time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC))
	nodes := make([]*postgres.Store, 3)
	for i := range nodes {
		nodes[i] = open(t, schema, postgres.Config{Now: clock.Now, PollOnly: true})
	}
	ctx := t.Context()
	const n = 600
	ps := make([]store.EnqueueParams, n)
	for i := range ps {
		ps[i] = store.EnqueueParams{Kind: "k"}
	}
	if _, err := nodes[0].Enqueue(ctx, ps); err != nil {
		t.Fatal(err)
	}
	for claimed := 0; claimed < n; {
		jobs, err := nodes[0].Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, Limit: store.MaxClaim, LockFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		claimed += len(jobs)
	}
	clock.Advance(2 * time.Minute)

	var returned atomic.Int64
	var wg sync.WaitGroup
	for _, s := range nodes {
		for range 2 {
			wg.Go(func() {
				for {
					r, err := s.ReapExpired(ctx, 25)
					if err != nil {
						t.Error(err)
						return
					}
					if r.Returned+r.DeadLettered == 0 {
						return
					}
					returned.Add(int64(r.Returned + r.DeadLettered))
				}
			})
		}
	}
	wg.Wait()
	if got := returned.Load(); got != n {
		t.Fatalf("reapers returned %d jobs in all, want %d", got, n)
	}
	page, err := nodes[0].List(ctx, store.ListParams{Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		if j.State != store.StateAvailable || len(j.Errors) != 1 || j.Errors[0].Message != "lock expired on delivery 1" {
			t.Fatalf("job %s after reaping: %s, errors %+v; want available with one lost-lock entry", j.ID, j.State, j.Errors)
		}
	}

	// Cancel everything, then prune it from every node at once.
	ids := make([]store.ID, len(page.Jobs))
	for i, j := range page.Jobs {
		ids[i] = j.ID
	}
	if _, err := nodes[1].Cancel(ctx, ids); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	var pruned atomic.Int64
	for _, s := range nodes {
		for range 2 {
			wg.Go(func() {
				for {
					k, err := s.Prune(ctx, store.PruneParams{CancelledBefore: clock.Now(), Limit: 25})
					if err != nil {
						t.Error(err)
						return
					}
					if k == 0 {
						return
					}
					pruned.Add(int64(k))
				}
			})
		}
	}
	wg.Wait()
	if got := pruned.Load(); got != n {
		t.Fatalf("pruners deleted %d jobs in all, want %d", got, n)
	}
}
