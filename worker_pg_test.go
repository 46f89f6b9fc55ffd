package spool_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store/postgres"
)

// The timings of TestTwoNodesSkewedClocks: locks short enough that the
// long jobs need several renewals each, reapers eager to take any lock
// that lapses, and a retry backoff long enough to tell early from on time.
const (
	skewLock    = time.Second
	skewReap    = 100 * time.Millisecond
	skewLongRun = 5 * skewLock / 2
	skewBackoff = 2 * time.Second
	// skewSlack is how early a retry may seem to start: the stores' reading
	// of the database's clock is off by about half a local round trip.
	skewSlack = 100 * time.Millisecond
	// skewLate is how late after its backoff a retry may start: the
	// workers poll every skewReap, on a machine that may be busy.
	skewLate = 5 * time.Second
)

var (
	skewLong  = spool.NewKind[struct{}]("skew.long")
	skewFlaky = spool.NewKind[struct{}]("skew.flaky")
)

// Two nodes share one PostgreSQL schema; one's clock is 30 s ahead of the
// database's, the other's 30 s behind. The stores take their time from the
// database and the workers never compare the store's times with their own
// clocks, so: a job running longer than its lock keeps it by renewal and is
// delivered once, though the other node reaps every 100 ms; no verdict is
// refused for a lost lock; and a failed job is retried no sooner than its
// backoff after the failure, by the database's clock (nor much later),
// whichever node failed it and whichever retries it.
func TestTwoNodesSkewedClocks(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	ctx := context.Background()
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	rec := &skewRecord{t: t, db: db}

	type node struct {
		name   string
		client *spool.Client
		worker *spool.Worker
	}
	var nodes []node
	for _, n := range []struct {
		name   string
		offset time.Duration
	}{{"ahead", 30 * time.Second}, {"behind", -30 * time.Second}} {
		clock := offsetClock{clockwork.NewRealClock(), n.offset}
		st, err := postgres.Open(ctx, url, postgres.Config{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		client, err := spool.NewClient(spool.Config{Store: st, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		w, err := spool.NewWorker(spool.WorkerConfig{
			Store:        st,
			ID:           n.name,
			Clock:        clock,
			Queues:       map[string]spool.QueueConfig{"default": {Concurrency: 3}},
			LockDuration: skewLock,
			PollInterval: skewReap,
			Maintenance:  spool.MaintenanceConfig{ReapInterval: skewReap},
			Scheduler:    spool.SchedulerConfig{Disable: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		spool.Handle(w, skewLong, func(ctx context.Context, task *spool.Task[struct{}]) error {
			defer rec.start(task.Job, n.name)()
			timer := time.NewTimer(skewLongRun)
			defer timer.Stop()
			select {
			case <-timer.C:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}, nil)
		spool.Handle(w, skewFlaky, func(ctx context.Context, task *spool.Task[struct{}]) error {
			defer rec.start(task.Job, n.name)()
			if task.Attempts == 0 {
				rec.failing(ctx, task.Job)
				return errors.New("the first attempt fails")
			}
			rec.retrying(ctx, task.Job, n.name)
			return nil
		}, &spool.HandlerOptions{Retry: fixedRetry(skewBackoff)})
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, node{n.name, client, w})
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, n := range nodes {
			stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := n.worker.Stop(stopCtx); err != nil {
				t.Errorf("stop %s: %v", n.name, err)
			}
			cancel()
		}
	}
	t.Cleanup(stop)

	// Each node enqueues half the jobs, so each node's store sets the run
	// times of some.
	var long, flaky []spool.ID
	for i := range 6 {
		c := nodes[i%2].client
		for _, k := range []struct {
			kind spool.Kind[struct{}]
			ids  *[]spool.ID
		}{{skewLong, &long}, {skewFlaky, &flaky}} {
			res, err := k.kind.Enqueue(ctx, c, struct{}{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			*k.ids = append(*k.ids, res.ID)
		}
	}
	for _, id := range long {
		if j := waitFinished(t, nodes[0].client, id); j.State != spool.StateCompleted || j.Deliveries != 1 || rec.runs(id) != 1 {
			t.Errorf("long job %s: %s, %d deliveries, %d runs, errors %+v; want completed on one delivery, its lock renewed",
				id, j.State, j.Deliveries, rec.runs(id), j.Errors)
		}
	}
	for _, id := range flaky {
		if j := waitFinished(t, nodes[1].client, id); j.State != spool.StateCompleted || j.Attempts != 1 || j.Deliveries != 2 || rec.runs(id) != 2 {
			t.Errorf("flaky job %s: %s, %d attempts, %d deliveries, %d runs; want completed on its retry", id, j.State, j.Attempts, j.Deliveries, rec.runs(id))
		}
	}
	stop()
	for _, n := range nodes {
		if s := n.worker.Stats().Settle; s.LockLost != 0 || s.Refused != 0 || s.Abandoned != 0 {
			t.Errorf("node %s: %d verdicts refused (%d for a lost lock), %d abandoned; want none", n.name, s.Refused, s.LockLost, s.Abandoned)
		}
	}
	rec.check(t)
}

// skewRecord records, across both nodes, each job's runs and when the
// flaky ones failed and were retried by the database's clock.
type skewRecord struct {
	t  *testing.T
	db *pgxpool.Pool

	mu       sync.Mutex // guards the fields below
	started  map[spool.ID]int
	running  map[spool.ID]string // node running the job now
	overlaps []string            // a job started while another node ran it
	longOn   map[string]int      // long jobs started per node
	failedAt map[spool.ID]time.Time
	mistimed []string // retries that started before their backoff passed, or long after
}

// start records that node began to run job, and returns the function that
// records the end of the run.
func (r *skewRecord) start(job *spool.Job, node string) (end func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started == nil {
		r.started, r.running, r.longOn, r.failedAt = map[spool.ID]int{}, map[spool.ID]string{}, map[string]int{}, map[spool.ID]time.Time{}
	}
	r.started[job.ID]++
	if other, ok := r.running[job.ID]; ok {
		r.overlaps = append(r.overlaps, fmt.Sprintf("job %s started on %s while %s ran it", job.ID, node, other))
	}
	r.running[job.ID] = node
	if job.Kind == skewLong.Name() {
		r.longOn[node]++
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.running[job.ID] == node {
			delete(r.running, job.ID)
		}
	}
}

func (r *skewRecord) runs(id spool.ID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started[id]
}

// dbNow reads the database's clock.
func (r *skewRecord) dbNow(ctx context.Context) time.Time {
	var now time.Time
	if err := r.db.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		r.t.Errorf("read the database's clock: %v", err)
	}
	return now
}

// failing records the database's time as job's first attempt fails: its
// verdict, and so its retry time, is written after it.
func (r *skewRecord) failing(ctx context.Context, job *spool.Job) {
	now := r.dbNow(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failedAt[job.ID] = now
}

// retrying checks, as job's retry starts, that its backoff has passed
// since the failure by the database's clock.
func (r *skewRecord) retrying(ctx context.Context, job *spool.Job, node string) {
	now := r.dbNow(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	failed, ok := r.failedAt[job.ID]
	if !ok {
		r.mistimed = append(r.mistimed, fmt.Sprintf("job %s: a retry on %s with no failure recorded", job.ID, node))
		return
	}
	switch waited := now.Sub(failed); {
	case waited < skewBackoff-skewSlack:
		r.mistimed = append(r.mistimed, fmt.Sprintf("job %s: retried on %s %v after its failure by the database's clock, before its %v backoff",
			job.ID, node, waited.Round(time.Millisecond), skewBackoff))
	case waited > skewBackoff+skewLate:
		r.mistimed = append(r.mistimed, fmt.Sprintf("job %s: retried on %s %v after its failure by the database's clock, long after its %v backoff",
			job.ID, node, waited.Round(time.Millisecond), skewBackoff))
	}
}

func (r *skewRecord) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.overlaps {
		t.Errorf("delivered twice while held: %s", s)
	}
	for _, s := range r.mistimed {
		t.Errorf("retry mistimed: %s", s)
	}
	// Three slots per node and six long jobs: both nodes hold long jobs,
	// so each node's reaper has the other's locks to respect.
	if r.longOn["ahead"] == 0 || r.longOn["behind"] == 0 {
		t.Errorf("long jobs started per node: %v; want both nodes to hold some", r.longOn)
	}
}
