package crashtest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// patience bounds every wait of these tests. It only keeps a broken build
// from hanging; no test asserts how long anything takes.
const patience = 60 * time.Second

// workKind is the kind every job of these tests has.
const workKind = "work"

// openStore opens a SQLite store on the real clock (workers measure locks
// against it) at path, or in a fresh file when path is empty, and closes it
// when the test ends.
func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "spool.db")
	}
	st, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

func newClient(t *testing.T, st store.Store) *spool.Client {
	t.Helper()
	c, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// enqueueWork enqueues n jobs of kind "work" on the default queue, in one
// durable batch, and returns their IDs in enqueue order.
func enqueueWork(t *testing.T, c *spool.Client, n int, opts *spool.EnqueueOptions) []spool.ID {
	t.Helper()
	items := make([]spool.Item, n)
	for i := range items {
		items[i] = spool.RawItem(workKind, nil, opts)
	}
	res, err := c.EnqueueMany(context.Background(), items...)
	if err != nil {
		t.Fatalf("EnqueueMany: %v", err)
	}
	ids := make([]spool.ID, n)
	for i, r := range res {
		if r.Duplicate {
			t.Fatalf("job %d enqueued as a duplicate of %s", i, r.ID)
		}
		ids[i] = r.ID
	}
	return ids
}

// listAll returns every job in the given states (every job when none are
// given), in enqueue order, reading the store page by page.
func listAll(t *testing.T, st store.Store, states ...spool.State) []*spool.Job {
	t.Helper()
	var jobs []*spool.Job
	p := store.ListParams{States: states, Limit: store.MaxListLimit}
	for {
		page, err := st.List(context.Background(), p)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		jobs = append(jobs, page.Jobs...)
		if page.Next.IsZero() {
			return jobs
		}
		p.After = page.Next
	}
}

// countStates returns how many jobs of the default queue are in each state.
func countStates(t *testing.T, st store.Store) map[spool.State]int {
	t.Helper()
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, q := range stats {
		if q.Queue == store.DefaultQueue {
			return q.Counts
		}
	}
	return map[spool.State]int{}
}

// waitAll waits until every job in ids is finished and returns them.
func waitAll(t *testing.T, c *spool.Client, ids []spool.ID) []*spool.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	jobs := make([]*spool.Job, len(ids))
	for i, id := range ids {
		j, err := c.Wait(ctx, id)
		if err != nil {
			t.Fatalf("Wait for job %d (%s): %v", i, id, err)
		}
		jobs[i] = j
	}
	return jobs
}

// startWorker makes a worker from cfg, lets register add its handlers,
// starts it, and stops it when the test ends unless the test stopped it.
func startWorker(t *testing.T, cfg spool.WorkerConfig, register func(w *spool.Worker)) *spool.Worker {
	t.Helper()
	w, err := spool.NewWorker(cfg)
	if err != nil {
		t.Fatalf("NewWorker: %v", err)
	}
	register(w)
	if err := w.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		if err := w.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return w
}

// sleepCtx waits d or until ctx ends, and then returns ctx's cause: what a
// handler that honours its context does.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// tally counts per job how often something happened (handler calls,
// completions), and closes a channel once the total reaches a threshold.
// It is safe for concurrent use.
type tally struct {
	mu      sync.Mutex // guards the fields below
	counts  map[spool.ID]int
	total   int
	at      int           // total that closes reached; 0: none
	reached chan struct{} // closed once total >= at
}

func newTally() *tally { return &tally{counts: map[spool.ID]int{}} }

// when returns a channel closed once the total reaches n. Call it once,
// before counting starts.
func (c *tally) when(n int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.reached = n, make(chan struct{})
	return c.reached
}

// add counts one more for id and returns the new total.
func (c *tally) add(id spool.ID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[id]++
	c.total++
	if c.reached != nil && c.total == c.at {
		close(c.reached)
	}
	return c.total
}

func (c *tally) of(id spool.ID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[id]
}

func (c *tally) sum() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// waitClosed waits for ch to close, failing the test after patience.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(patience):
		t.Fatalf("timed out after %v waiting for %s", patience, what)
	}
}
