package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

func openBench(b *testing.B) *sqlite.Store {
	b.Helper()
	s, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"), sqlite.Config{})
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

// BenchmarkEnqueue measures durable enqueues (synchronous=FULL) from one
// goroutine, in batches of 1 and 100. jobs/s is the figure to read.
func BenchmarkEnqueue(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openBench(b)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Enqueue(ctx, batch(size)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// BenchmarkEnqueueConcurrent measures enqueues from 16 goroutines at once:
// group commit lets them share fsyncs.
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
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := s.Enqueue(ctx, batch(size)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "jobs/s")
			ws := s.WriterStats()
			b.ReportMetric(float64(ws.Ops)/float64(ws.Groups), "ops/commit")
			b.ReportMetric(float64(ws.Ops)/float64(ws.Syncs), "ops/fsync")
		})
	}
}

// BenchmarkClaimComplete measures claim+complete in batches of 100 from a
// pre-filled queue: one claim call and one settle call per 100 jobs.
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
		jobs, err := s.Claim(ctx, store.ClaimParams{Queue: "default", Limit: size, LockFor: time.Minute})
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
