package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// TestOrderingKeysConcurrentClaimers runs claimers on two stores (two
// "nodes") against one schema while jobs of the same ordering keys keep
// arriving, some with IDs earlier than jobs already running. At no moment
// may two jobs of one key be running: each claimer checks a shared set of
// held keys, and a monitor checks the database itself.
func TestOrderingKeysConcurrentClaimers(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	ctx := t.Context()
	nodes := make([]*postgres.Store, 2)
	for i := range nodes {
		s, err := postgres.Open(ctx, url, postgres.Config{Schema: schema, PollOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes[i] = s
	}
	const keys, perKey, plain = 4, 50, 60
	// Early IDs are made first, so they sort before the late ones; they are
	// enqueued second, while the late ones run.
	early := make([]store.EnqueueParams, 0, keys*perKey/2)
	late := make([]store.EnqueueParams, 0, keys*perKey/2+plain)
	for phase := range 2 {
		for n := range perKey / 2 {
			for k := range keys {
				p := store.EnqueueParams{ID: store.NewID(), Kind: "step", Tenant: "t" + fmt.Sprint(k%3), OrderingKey: fmt.Sprintf("key-%d", k), Payload: fmt.Appendf(nil, "%d", n)}
				if phase == 0 {
					early = append(early, p)
				} else {
					late = append(late, p)
				}
			}
		}
	}
	for range plain {
		late = append(late, store.EnqueueParams{ID: store.NewID(), Kind: "plain"})
	}
	if _, err := nodes[0].Enqueue(ctx, late); err != nil {
		t.Fatal(err)
	}
	total := int64(len(early) + len(late))

	var (
		mu        sync.Mutex // guards held, violation, order
		held      = map[string]store.ID{}
		violation []string
		order     = map[string][]store.ID{} // per key, IDs in completion order
		done      atomic.Int64
		wg        sync.WaitGroup
	)
	key := func(j *store.Job) string { return j.Tenant + "/" + j.OrderingKey }
	fail := func(err error) {
		mu.Lock()
		violation = append(violation, err.Error())
		mu.Unlock()
	}
	for w := range 8 {
		s := nodes[w%2]
		wg.Go(func() {
			for done.Load() < total && ctx.Err() == nil {
				jobs, err := s.Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, Limit: 1 + w%4, LockFor: time.Minute, Worker: fmt.Sprint("w", w)})
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				for _, j := range jobs {
					if j.OrderingKey == "" {
						continue
					}
					if other, ok := held[key(j)]; ok {
						violation = append(violation, fmt.Sprintf("key %s: job %s claimed while %s runs", key(j), j.ID, other))
					}
					held[key(j)] = j.ID
				}
				mu.Unlock()
				for range 20 {
					runtime.Gosched() // "work", so holds overlap in time
				}
				vs := make([]store.Verdict, len(jobs))
				mu.Lock()
				for i, j := range jobs {
					vs[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Complete}
					if j.OrderingKey != "" {
						delete(held, key(j)) // before the settle commits: the next job may start right after
						order[key(j)] = append(order[key(j)], j.ID)
					}
				}
				mu.Unlock()
				errs, err := s.Settle(ctx, vs)
				if err == nil {
					err = errors.Join(errs...)
				}
				if err != nil {
					fail(err)
					return
				}
				done.Add(int64(len(jobs)))
			}
		})
	}
	// The early jobs arrive while the late ones run.
	wg.Go(func() {
		for chunk := range slices.Chunk(early, 1) {
			if _, err := nodes[1].Enqueue(ctx, chunk); err != nil {
				fail(err)
				return
			}
			runtime.Gosched()
		}
	})
	monitorDone := make(chan struct{})
	var monitor sync.WaitGroup
	monitor.Go(func() { watchRunningKeys(ctx, url, schema, monitorDone, fail) })

	wg.Wait()
	close(monitorDone)
	monitor.Wait()
	if len(violation) > 0 {
		t.Fatalf("%d violations, first: %v", len(violation), violation[:min(5, len(violation))])
	}
	if done.Load() != total {
		t.Fatalf("completed %d of %d jobs", done.Load(), total)
	}
	// Jobs of a key present from the start run in enqueue order.
	rank := map[store.ID]int{}
	for i, p := range late {
		rank[p.ID] = i + 1
	}
	for k, got := range order {
		last := 0
		for _, id := range got {
			if r := rank[id]; r != 0 {
				if r < last {
					t.Errorf("key %s: jobs ran out of enqueue order", k)
				}
				last = r
			}
		}
	}
}

// watchRunningKeys asks the database, until done, whether two running jobs
// share an ordering key, and reports each time one does.
func watchRunningKeys(ctx context.Context, url, schema string, done <-chan struct{}, fail func(error)) {
	s, err := postgres.Open(ctx, url, postgres.Config{Schema: schema, PollOnly: true})
	if err != nil {
		fail(err)
		return
	}
	defer s.Close()
	q := `SELECT tenant, ordering_key, count(*) FROM ` + schema + `.jobs
		WHERE state = 'running' AND ordering_key IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1`
	for {
		select {
		case <-done:
			return
		default:
		}
		rows, err := s.Pool().Query(ctx, q)
		if err != nil {
			fail(err)
			return
		}
		for rows.Next() {
			var tenant, key string
			var n int
			if err := rows.Scan(&tenant, &key, &n); err != nil {
				fail(err)
			}
			fail(fmt.Errorf("database: %d jobs of key %s/%s running at once", n, tenant, key))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			fail(err)
			return
		}
	}
}
