package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// BenchmarkDashboardPages times the server's work for each page of the
// dashboard over a SQLite store of 1,000,000 jobs (SPOOL_BENCH_JOBS
// changes the count): every page must stay within 300 ms. Seeding takes a
// while, so it happens only under -bench; SPOOL_BENCH_DB names a database
// file to keep and reuse across runs. Run it with
//
//	go test ./server -run '^$' -bench BenchmarkDashboardPages -benchtime 20x
//
// The store is the real one, with the capabilities it has: pages whose
// capability it lacks (bulk counts, activity, the audit log) are timed
// degraded, as they are served.
func BenchmarkDashboardPages(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("SPOOL_BENCH_JOBS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10_000 {
			b.Fatalf("SPOOL_BENCH_JOBS=%q: want a whole number of at least 10000", v)
		}
	}
	path := os.Getenv("SPOOL_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "spool.db")
	}
	st, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	probe, err := seedMillion(ctx, b, st, n)
	if err != nil {
		b.Fatal(err)
	}
	// Every page reads the store afresh: no cached statistics, unless
	// SPOOL_BENCH_STATS_FOR (such as 1h) says how long they may be kept,
	// which times the pages without the store's statistics.
	statsFor := time.Duration(-1)
	if v := os.Getenv("SPOOL_BENCH_STATS_FOR"); v != "" {
		if statsFor, err = time.ParseDuration(v); err != nil {
			b.Fatalf("SPOOL_BENCH_STATS_FOR: %v", err)
		}
	}
	srv, err := server.New(server.Config{Store: st, Insecure: true, RequestTimeout: time.Minute, Dashboard: server.DashboardConfig{StatsFor: statsFor}})
	if err != nil {
		b.Fatal(err)
	}
	mid := probe.middle.String()
	pages := []struct{ name, path string }{
		{"overview", "/"},
		{"live.json", "/live.json"},
		{"jobs", "/jobs"},
		{"queue", "/jobs?queue=q3"},
		{"queue_older_page", "/jobs?queue=q3&after=" + mid},
		{"queue_newer_page", "/jobs?queue=q3&before=" + mid},
		{"queue_state_kind", "/jobs?queue=q3&state=available&kind=k7"},
		{"queue_unique_key", "/jobs?unique_key=" + url.QueryEscape(probe.uniqueKey)},
		{"queue_ordering_key", "/jobs?queue=q5&ordering_key=" + url.QueryEscape(probe.orderingKey)},
		{"queue_created_range", "/jobs?queue=q2&created_after=" + url.QueryEscape(probe.createdAt.Add(-time.Second).Format(time.RFC3339)) + "&created_before=" + url.QueryEscape(probe.createdAt.Add(time.Second).Format(time.RFC3339))},
		{"job", "/jobs/" + mid},
		{"dead", "/dead"},
		{"dead_queue", "/dead?queue=q1"},
		{"bulk_confirm", "/bulk?action=cancel&queue=q3&kind=k7"},
		{"schedules", "/schedules"},
		{"topics", "/topics"},
		{"workers", "/workers"},
		{"audit", "/audit"},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, p.path, nil)
			for b.Loop() {
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK && rec.Code != http.StatusNotImplemented {
					b.Fatalf("%s: %d %.300s", p.path, rec.Code, rec.Body.String())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
		})
	}
}

// probe names jobs of the seeded store the pages look up.
type probe struct {
	middle                 store.ID
	uniqueKey, orderingKey string
	createdAt              time.Time
}

// seedMillion fills st with n jobs in 10 queues and 20 kinds (one in ten
// with a unique key, one in a hundred with an ordering key), then
// completes one in 50 (of queue q0) and dead-letters one in 200 (of q1), unless
// st already holds n jobs.
func seedMillion(ctx context.Context, b *testing.B, st store.Store, n int) (probe, error) {
	var p probe
	// A seeded store has the last job's unique key (Stats may count
	// finished jobs only up to a cap).
	last := "u-" + strconv.Itoa((n-1)/10*10)
	_, err := st.GetByUniqueKey(ctx, "", last)
	seeded := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return p, err
	}
	start := time.Now()
	if !seeded {
		stats, err := st.Stats(ctx)
		if err != nil {
			return p, err
		}
		if len(stats) > 0 {
			return p, fmt.Errorf("the store has jobs but not the %d of this benchmark: give SPOOL_BENCH_DB a new file", n)
		}
		payload := []byte(`{"to":"ada@example.com","template":"welcome","locale":"en"}`)
		batch := make([]store.EnqueueParams, 0, store.MaxBatch)
		for i := range n {
			jp := store.EnqueueParams{Queue: "q" + strconv.Itoa(i%10), Kind: "k" + strconv.Itoa(i%20), Payload: payload}
			if i%10 == 0 {
				jp.UniqueKey = "u-" + strconv.Itoa(i)
			}
			if i%100 == 5 {
				jp.OrderingKey = "o-" + strconv.Itoa(i%1000)
			}
			if i%10 == 1 {
				jp.MaxAttempts = 1
			}
			batch = append(batch, jp)
			if len(batch) == store.MaxBatch || i == n-1 {
				if _, err := st.Enqueue(ctx, batch); err != nil {
					return p, err
				}
				batch = batch[:0]
			}
		}
		if err := settleMany(ctx, st, "q0", n/50, store.Complete); err != nil {
			return p, err
		}
		if err := settleMany(ctx, st, "q1", n/200, store.Fail); err != nil {
			return p, err
		}
		b.Logf("seeded %d jobs in %v", n, time.Since(start).Round(time.Second))
	}
	page, err := st.List(ctx, store.ListParams{Queue: "q3", Limit: 1})
	if err != nil {
		return p, err
	}
	if len(page.Jobs) == 0 {
		return p, errors.New("no job in q3")
	}
	// A job about halfway: the 1000th of a page far in.
	mid, err := st.List(ctx, store.ListParams{Queue: "q3", After: page.Jobs[0].ID, Limit: store.MaxListLimit})
	if err != nil {
		return p, err
	}
	if len(mid.Jobs) == 0 {
		return p, errors.New("no middle job in q3")
	}
	p.middle = mid.Jobs[len(mid.Jobs)-1].ID
	p.uniqueKey = "u-" + strconv.Itoa(n/2/10*10)
	p.orderingKey = "o-105"
	p.createdAt = mid.Jobs[0].CreatedAt
	return p, nil
}

// settleMany claims count jobs of queue and settles them with outcome.
func settleMany(ctx context.Context, st store.Store, queue string, count int, outcome store.Outcome) error {
	for count > 0 {
		jobs, err := st.Claim(ctx, store.ClaimParams{Queue: queue, Limit: min(count, store.MaxClaim), LockFor: time.Minute})
		if err != nil {
			return err
		}
		if len(jobs) == 0 {
			return fmt.Errorf("queue %s ran out of jobs", queue)
		}
		vs := make([]store.Verdict, len(jobs))
		for i, j := range jobs {
			vs[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: outcome}
			if outcome == store.Fail {
				vs[i].Error = &store.AttemptError{Message: "boom"}
			}
		}
		if _, err := st.Settle(ctx, vs); err != nil {
			return err
		}
		count -= len(jobs)
	}
	return nil
}
