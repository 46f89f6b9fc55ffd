package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/store"
)

// Enqueue enqueues cfg.Jobs no-op jobs in batches of batch from producers
// goroutines at once, and reports jobs/s and the latency of each call. It
// measures producers alone: no worker runs, and cfg.Progress is not called.
func Enqueue(ctx context.Context, cfg Config, batch, producers int) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if batch < 1 || batch > store.MaxBatch || producers < 1 {
		return nil, &store.ValidationError{Field: "batch", Reason: fmt.Sprintf("batch %d must be 1..%d and producers %d positive", batch, store.MaxBatch, producers)}
	}
	calls := (cfg.Jobs + batch - 1) / batch
	latencies := make([]time.Duration, calls)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			params := make([]store.EnqueueParams, 0, batch)
			for {
				i := int(next.Add(1) - 1)
				if i >= calls || ctx.Err() != nil {
					return
				}
				n := min(batch, cfg.Jobs-i*batch)
				params = params[:0]
				for range n {
					params = append(params, store.EnqueueParams{Queue: cfg.Queue, Kind: "noop"})
				}
				t := time.Now()
				if _, err := cfg.Store.Enqueue(ctx, params); err != nil {
					errs <- fmt.Errorf("bench: enqueue: %w", err)
					cancel()
					return
				}
				latencies[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	slices.Sort(latencies)
	lat := latencies
	return &Result{
		Mode:       "enqueue",
		Jobs:       cfg.Jobs,
		Workers:    producers,
		Seconds:    elapsed.Seconds(),
		JobsPerSec: float64(cfg.Jobs) / elapsed.Seconds(),
		LatencyMS:  &Latency{P50: pct(lat, 0.50), P95: pct(lat, 0.95), P99: pct(lat, 0.99), Max: pct(lat, 1)},
		Batch:      batch,
	}, nil
}
