package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// BenchFactory returns a fresh, empty store for one benchmark. The store is
// the benchmark's to use; the factory arranges for it to be closed.
type BenchFactory func(b *testing.B) store.Store

// BenchOptions tune Bench. The zero value is fine.
type BenchOptions struct {
	// Report, if set, runs after each concurrent benchmark with its store,
	// so a backend can report metrics of its own (b.ReportMetric).
	Report func(b *testing.B, s store.Store)
}

// Bench runs the same store benchmarks on any backend, so their figures
// compare: durable enqueues in batches of 1 and 100 from one goroutine and
// from 16, and claim+complete in batches of 100 from one goroutine and from
// 4. Each reports jobs/s, the figure to read. Call it from a Benchmark
// function:
//
//	func BenchmarkStore(b *testing.B) { storetest.Bench(b, newStore, nil) }
func Bench(b *testing.B, newStore BenchFactory, opts *BenchOptions) {
	if opts == nil {
		opts = &BenchOptions{}
	}
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("Enqueue/batch=%d", size), func(b *testing.B) {
			s := newStore(b)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				if _, err := s.Enqueue(ctx, benchBatch(size)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("EnqueueConcurrent/goroutines=16/batch=%d", size), func(b *testing.B) {
			s := newStore(b)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			parallel(b, 16, func() error {
				_, err := s.Enqueue(ctx, benchBatch(size))
				return err
			})
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "jobs/s")
			if opts.Report != nil {
				opts.Report(b, s)
			}
		})
	}
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("ClaimComplete/goroutines=%d/batch=100", workers), func(b *testing.B) {
			const size = 100
			s := newStore(b)
			ctx := context.Background()
			for done := 0; done < b.N*size; done += 1000 {
				if _, err := s.Enqueue(ctx, benchBatch(1000)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			parallel(b, workers, func() error { return claimComplete(ctx, s, size) })
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "jobs/s")
			if workers > 1 && opts.Report != nil {
				opts.Report(b, s)
			}
		})
	}
	b.Run("UpsertSchedules/batch=1000", func(b *testing.B) {
		ss := schedStore(b, newStore(b))
		b.ResetTimer()
		upsertSchedules(b, ss, b.N*1000, "0 * * * *")
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "schedules/s")
	})
	b.Run("FireDue/batch=1000", func(b *testing.B) {
		// b.N*1000 schedules all due at one second (a daily slot a few
		// seconds ahead), fired in batches of 1000 once it passed.
		ss := schedStore(b, newStore(b))
		at := time.Now().Add(3 * time.Second).Truncate(time.Second).UTC()
		upsertSchedules(b, ss, b.N*1000, fmt.Sprintf("%d %d %d * * *", at.Second(), at.Minute(), at.Hour()))
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		} else {
			b.Fatalf("creating %d schedules took past their slot", b.N*1000)
		}
		ctx := context.Background()
		b.ResetTimer()
		runs := 0
		for {
			res, err := ss.FireDue(ctx, store.FireParams{Limit: 1000})
			if err != nil {
				b.Fatal(err)
			}
			runs += len(res.Runs)
			if res.Schedules < 1000 {
				break
			}
		}
		if runs != b.N*1000 {
			b.Fatalf("fired %d runs, want %d", runs, b.N*1000)
		}
		b.ReportMetric(float64(runs)/b.Elapsed().Seconds(), "runs/s")
	})
}

func schedStore(b *testing.B, s store.Store) store.ScheduleStore {
	ss, ok := s.(store.ScheduleStore)
	if !ok {
		b.Skip("store does not implement store.ScheduleStore")
	}
	return ss
}

// upsertSchedules creates n schedules with spec, 1000 per call.
func upsertSchedules(b *testing.B, ss store.ScheduleStore, n int, spec string) {
	ctx := context.Background()
	batch := make([]store.Schedule, 0, 1000)
	for i := 0; i < n; {
		batch = batch[:0]
		for ; i < n && len(batch) < 1000; i++ {
			batch = append(batch, store.Schedule{ID: fmt.Sprintf("s%08d", i), Tenant: fmt.Sprintf("t%03d", i%100), Spec: spec, Queue: "bench", Kind: "k"})
		}
		res, err := ss.UpsertSchedules(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
}

// parallel runs op b.N times in all, from n goroutines.
func parallel(b *testing.B, n int, op func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// claimComplete claims up to size jobs and completes them all.
func claimComplete(ctx context.Context, s store.Store, size int) error {
	jobs, err := s.Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, Limit: size, LockFor: time.Minute})
	if err != nil {
		return err
	}
	vs := make([]store.Verdict, len(jobs))
	for i, j := range jobs {
		vs[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Complete}
	}
	errs, err := s.Settle(ctx, vs)
	if err != nil {
		return err
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func benchBatch(n int) []store.EnqueueParams {
	ps := make([]store.EnqueueParams, n)
	for i := range ps {
		ps[i] = store.EnqueueParams{Kind: "noop", Payload: []byte(`{"n":1}`)}
	}
	return ps
}
