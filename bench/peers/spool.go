package peers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

const (
	spoolModule = "github.com/spoolrun/spool"
	spoolQueue  = "bench"
	spoolKind   = "noop"
)

// spoolSettings is how both Spool systems are configured: as `spool bench`
// runs them.
const spoolSettings = "Concurrency=workers, Prefetch=workers (as `spool bench`); other settings default (settle batch ≤500, delay 2ms)"

// spoolCompletion says how Spool's completions are observed.
const spoolCompletion = "store Settle call returned (the verdict is committed); counted by a wrapper around the store"

// spoolRun is what the two Spool systems share: a client and a worker over
// one store, with completions counted where the store commits them.
type spoolRun struct {
	st      *countingStore
	client  *spool.Client
	workers int
	worker  *spool.Worker
}

func (r *spoolRun) attach(st store.Store, workers int) error {
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		return err
	}
	r.st = &countingStore{Store: st}
	r.client = client
	r.workers = workers
	return nil
}

func (r *spoolRun) enqueue(ctx context.Context, payloads [][]byte) error {
	items := make([]spool.Item, len(payloads))
	opts := &spool.EnqueueOptions{Queue: spoolQueue}
	for i, p := range payloads {
		items[i] = spool.RawItem(spoolKind, p, opts)
	}
	_, err := r.client.EnqueueMany(ctx, items...)
	return err
}

func (r *spoolRun) start(ctx context.Context, w Work) error {
	r.st.completed.Store(&w.Completed)
	worker, err := spool.NewWorker(spool.WorkerConfig{
		Store:  r.st,
		Queues: map[string]spool.QueueConfig{spoolQueue: {Concurrency: r.workers, Prefetch: r.workers}},
	})
	if err != nil {
		return err
	}
	spool.HandleRaw(worker, spoolKind, func(_ context.Context, job *spool.Job) ([]byte, error) {
		w.Started(job.Payload)
		return nil, nil
	}, nil)
	if err := worker.Start(ctx); err != nil {
		return err
	}
	r.worker = worker
	return nil
}

func (r *spoolRun) stop(ctx context.Context) error {
	if r.worker == nil {
		return nil
	}
	err := r.worker.Stop(ctx)
	r.worker = nil
	return err
}

func (r *spoolRun) remaining(ctx context.Context) (int, error) {
	stats, err := r.client.Stats(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, q := range stats {
		if q.Queue != spoolQueue {
			continue
		}
		for state, c := range q.Counts {
			if state != spool.StateCompleted {
				n += c
			}
		}
	}
	return n, nil
}

// countingStore passes everything through and reports the completions each
// Settle call applied, once the store has committed them.
type countingStore struct {
	store.Store
	completed atomic.Pointer[func(int)]
}

func (c *countingStore) Settle(ctx context.Context, vs []store.Verdict) ([]error, error) {
	errs, err := c.Store.Settle(ctx, vs)
	if err != nil {
		return errs, err
	}
	n := 0
	for i, e := range errs {
		if e == nil && vs[i].Outcome == store.Complete {
			n++
		}
	}
	if f := c.completed.Load(); f != nil && n > 0 {
		(*f)(n)
	}
	return errs, nil
}

// spoolVersion is source, or else Spool's module version ("working tree"
// when the bench module replaces Spool with a directory).
func spoolVersion(source string) string {
	if source != "" {
		return source
	}
	return moduleVersion(spoolModule)
}

var errNotOpen = errors.New("not open")

func notOpen(name string) error { return fmt.Errorf("%s: %w", name, errNotOpen) }
