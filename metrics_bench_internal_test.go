package spool

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
