package spool

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolrun/spool/internal/activity"
	"github.com/spoolrun/spool/store"
)

// BenchmarkMetricsPerJob is what metrics add to one job's life in a
// Worker and a Client: its share of an enqueue of 100, its claim (pickup
// latency, redelivery check), two clock reads and a histogram around its
// handler, and its settled counter, with the series resolved once as the
// worker does. Compare with a job's cost in a burn-down (1 / jobs/s).
func BenchmarkMetricsPerJob(b *testing.B) {
	m, err := NewMetrics(MetricsConfig{})
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	now := time.Now()
	params := make([]store.EnqueueParams, 100)
	results := make([]store.EnqueueResult, 100)
	for i := range params {
		params[i] = store.EnqueueParams{Queue: "bench", Kind: "noop"}
	}
	job := &Job{Queue: "bench", Kind: "noop", RunAt: now, LockedUntil: now.Add(30 * time.Second), Deliveries: 1}
	v := store.Verdict{Outcome: store.Complete}
	var last *jobSeries
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%100 == 0 {
			m.ObserveEnqueue(params, results, time.Millisecond)
		}
		s := m.claimed(job, 30*time.Second, last)
		last = s
		started := time.Now()
		s.duration.Observe(time.Since(started).Seconds())
		s.outcomes[outcomeOf(v, job)].settled.Inc()
	}
}

// discardActivity is an ActivityStore that keeps nothing.
type discardActivity struct{}

func (discardActivity) AddActivity(context.Context, []store.QueueActivity) error { return nil }
func (discardActivity) Activity(context.Context, string, time.Time) ([]store.ActivityMinute, error) {
	return nil, nil
}

// BenchmarkActivityPerJob is what recording activity adds to one job's
// life in a Worker on a store that keeps it (Capabilities.Activity): its
// pickup latency and histogram bucket at the claim, its verdict's count
// when settled (each an atomic add on counters resolved once per queue),
// and its share of a flush every 1,000 jobs (a heartbeat interval's worth
// at a modest rate). Compare with a job's cost in a burn-down (1 /
// jobs/s); the parallel run shows executors of one queue counting at once.
func BenchmarkActivityPerJob(b *testing.B) {
	now := time.Now()
	job := &Job{Queue: "bench", Kind: "noop", RunAt: now, AttemptedAt: now.Add(3 * time.Millisecond), MaxAttempts: 25}
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		var r activity.Recorder
		q := r.Queue("bench")
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			q.Claimed(activity.Pickup(job, 30*time.Second))
			q.Settled(store.Complete, job.Attempts, job.MaxAttempts)
			if i%1000 == 0 {
				if _, err := r.Flush(ctx, discardActivity{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var r activity.Recorder
		q := r.Queue("bench")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				q.Claimed(activity.Pickup(job, 30*time.Second))
				q.Settled(store.Complete, job.Attempts, job.MaxAttempts)
			}
		})
	})
}
