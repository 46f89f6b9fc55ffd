package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// Benchmarks are sized for a small machine (2 cores running both Go and
// PostgreSQL). jobs/s is the figure to read. Run:
//
//	go test -run '^$' -bench . -benchtime 3s ./store/postgres/

func openBench(b *testing.B) *postgres.Store {
	b.Helper()
	s, err := postgres.Open(context.Background(), pgtest.URL(b), postgres.Config{Schema: pgtest.Schema(b), MaxConns: 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func batch(n int) []store.EnqueueParams {
	ps := make([]store.EnqueueParams, n)
	for i := range ps {
		ps[i] = store.EnqueueParams{Kind: "noop", Payload: []byte(`{"n":1}`)}
	}
	return ps
}

// BenchmarkEnqueue measures durable enqueues (each call one committed
// transaction) from one goroutine, in batches of 1 and 100.
func BenchmarkEnqueue(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			for b.Loop() {
				if _, err := s.Enqueue(ctx, batch(size)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// BenchmarkEnqueueConcurrent measures enqueues from 16 goroutines at once;
// PostgreSQL flushes their commits together.
func BenchmarkEnqueueConcurrent(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("goroutines=16/batch=%d", size), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 16 {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := s.Enqueue(ctx, batch(size)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "jobs/s")
		})
	}
}

// BenchmarkClaimComplete measures claim+complete in batches of 100 from a
// pre-filled queue: one Claim call and one Settle call per 100 jobs.
func BenchmarkClaimComplete(b *testing.B) {
	const size = 100
	s := openBench(b)
	ctx := context.Background()
	for done := 0; done < b.N*size; done += 1000 {
		if _, err := s.Enqueue(ctx, batch(1000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		jobs, err := s.Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, Limit: size, LockFor: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		vs := make([]store.Verdict, len(jobs))
		for i, j := range jobs {
			vs[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Complete}
		}
		errs, err := s.Settle(ctx, vs)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range errs {
			if e != nil {
				b.Fatal(e)
			}
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkClaimCompleteConcurrent is BenchmarkClaimComplete from 4
// goroutines at once, as several workers on one queue would do.
func BenchmarkClaimCompleteConcurrent(b *testing.B) {
	const size, workers = 100, 4
	s := openBench(b)
	ctx := context.Background()
	for done := 0; done < b.N*size; done += 1000 {
		if _, err := s.Enqueue(ctx, batch(1000)); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				jobs, err := s.Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, Limit: size, LockFor: time.Minute})
				if err != nil {
					b.Error(err)
					return
				}
				vs := make([]store.Verdict, len(jobs))
				for i, j := range jobs {
					vs[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Complete}
				}
				if _, err := s.Settle(ctx, vs); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "jobs/s")
}
