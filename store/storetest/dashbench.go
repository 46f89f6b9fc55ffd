package storetest

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// DashboardJobsEnv names the environment variable that turns on
// BenchDashboard: the number of jobs to seed ("1" for DashboardJobs).
// Seeding a million jobs takes a while, so the benchmark is skipped
// without it.
const DashboardJobsEnv = "SPOOL_BENCH_DASHBOARD"

// DashboardJobs is how many jobs BenchDashboard seeds by default.
const DashboardJobs = 1_000_000

// DashboardQueues is how many queues the seeded jobs spread over: q0, q1,
// ..., one job in turn each.
const DashboardQueues = 4

// DashboardJobCount returns the number of jobs BenchDashboard should seed:
// DashboardJobsEnv as a number, DashboardJobs for "1" (or any value that
// is not a number of at least 1,000), and 0 (skip) when it is not set.
func DashboardJobCount() int {
	v := os.Getenv(DashboardJobsEnv)
	if v == "" || v == "0" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 1_000 {
		return n
	}
	return DashboardJobs
}

// BenchDashboard times the calls the dashboard's pages make, on a store
// whose backend seeded n jobs, as every seeder does so that the figures
// compare. Job i of n (from 0, in enqueue order; IDs are UUIDv7-shaped and
// increase with i; created_at spreads the jobs evenly over the 24 hours
// before now):
//
//   - queue "q" + i%4, kind "k" + i%7, no tenant, a 40-byte JSON payload;
//   - state by r = (i/4*7919) % 100 (so that every queue has the same
//     mix): completed below 85, dead below 90 (one error in its
//     history), available below 95, scheduled below 99 (run_at an hour
//     after now), and at 99 cancelled for even i/400, running for odd
//     i/400 (locked for an hour);
//   - finished jobs finished a second after they were created;
//   - and activity for every queue in every minute of the last 24 hours.
//
// It times: Stats; List of one queue's
// jobs in one state, newest first (the first page, and a page deep in
// the list by its cursor); CountJobs of a queue and state capped at
// 10,000; Get; and Activity of the last hour. Each sub-benchmark reports
// ms/op, the server time of one call. Call it from a Benchmark function
// of the backend, with the store its seeder filled:
//
//	SPOOL_BENCH_DASHBOARD=1 go test -run '^$' -bench Dashboard -benchtime 20x ./store/sqlite
func BenchDashboard(b *testing.B, s store.Store, n int) {
	ctx := context.Background()
	bs := s.Capabilities().Bulk
	as := s.Capabilities().Activity
	if bs == nil || as == nil {
		b.Fatal("the dashboard benchmark needs Capabilities.Bulk and Capabilities.Activity")
	}
	// The IDs to page from: a job a tenth of the way in, in queue q1.
	deep := store.ListParams{Queue: "q1", Limit: 1}
	page, err := s.List(ctx, deep)
	if err != nil || len(page.Jobs) == 0 {
		b.Fatalf("List: %v, %d jobs: is the store seeded?", err, len(page.Jobs))
	}
	var cursor store.ID
	for pos := 0; pos < n/10; pos += store.MaxListLimit {
		p, err := s.List(ctx, store.ListParams{Limit: store.MaxListLimit, After: cursor})
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Jobs) == 0 {
			break
		}
		cursor = p.Jobs[len(p.Jobs)-1].ID
	}
	some := page.Jobs[0].ID
	run := func(name string, call func() error) {
		b.Run(name, func(b *testing.B) {
			if err := call(); err != nil { // once untimed: a warm cache, as a live dashboard has
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
	wantJobs := func(p *store.ListPage, err error) error {
		if err == nil && len(p.Jobs) == 0 {
			b.Fatal("the page is empty: is the store seeded?")
		}
		return err
	}
	run("Stats", func() error {
		qs, err := s.Stats(ctx)
		if err == nil && len(qs) < DashboardQueues {
			b.Fatalf("Stats lists %d queues", len(qs))
		}
		return err
	})
	for _, st := range store.States {
		run("ListNewest/"+string(st), func() error {
			return wantJobs(s.List(ctx, store.ListParams{Queue: "q1", States: []store.State{st}, Newest: true, Limit: 50}))
		})
	}
	for _, st := range []store.State{store.StateAvailable, store.StateCompleted, store.StateDead, store.StateCancelled} {
		run("ListNewestDeep/"+string(st), func() error {
			return wantJobs(s.List(ctx, store.ListParams{Queue: "q1", States: []store.State{st}, Newest: true, After: cursor, Limit: 50}))
		})
	}
	run("ListNewest/queue", func() error {
		return wantJobs(s.List(ctx, store.ListParams{Queue: "q1", Newest: true, Limit: 50}))
	})
	run("ListNewest/live", func() error {
		return wantJobs(s.List(ctx, store.ListParams{Queue: "q1", States: []store.State{store.StateScheduled, store.StateAvailable, store.StateRunning},
			Newest: true, Limit: 50}))
	})
	run("ListNewest/everything", func() error {
		return wantJobs(s.List(ctx, store.ListParams{Newest: true, Limit: 50}))
	})
	for _, st := range store.States {
		run("CountCapped/"+string(st), func() error {
			_, _, err := bs.CountJobs(ctx, store.ListParams{Queue: "q1", States: []store.State{st}, Limit: 10_000})
			return err
		})
	}
	run("Get", func() error {
		_, err := s.Get(ctx, some)
		return err
	})
	run("ActivityHour", func() error {
		rows, err := as.Activity(ctx, store.AllTenants, time.Now().Add(-time.Hour))
		if err == nil && len(rows) == 0 {
			b.Fatal("no activity in the last hour: is the store seeded?")
		}
		return err
	})
}
