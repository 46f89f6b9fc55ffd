package spool_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// realStore opens a store on the real clock: workers measure lock and
// retry times against it.
func realStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func startWorker(t *testing.T, cfg spool.WorkerConfig, register func(w *spool.Worker)) *spool.Worker {
	t.Helper()
	w, err := spool.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	register(w)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return w
}

func waitFinished(t *testing.T, c *spool.Client, id spool.ID) *spool.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := c.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait %s: %v", id, err)
	}
	return j
}

type addArgs struct{ A, B int }

var addKind = spool.NewKind[addArgs]("add")

func TestWorkerRunsJobsAndRecordsResults(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	c, _ := spool.NewClient(spool.Config{Store: st})
	startWorker(t, spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{"default": {Concurrency: 4}}},
		func(w *spool.Worker) {
			spool.Handle(w, addKind, func(_ context.Context, task *spool.Task[addArgs]) error {
				return task.SetResult(task.Payload.A + task.Payload.B)
			}, nil)
		})
	ctx := context.Background()
	var ids []spool.ID
	for i := range 50 {
		res, err := addKind.Enqueue(ctx, c, addArgs{A: i, B: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	for i, id := range ids {
		j := waitFinished(t, c, id)
		if j.State != spool.StateCompleted {
			t.Fatalf("job %d: state %s, want completed", i, j.State)
		}
		sum, err := spool.DecodeResult[int](j)
		if err != nil || sum != i+1 {
			t.Fatalf("job %d: result %d, %v; want %d", i, sum, err, i+1)
		}
	}
}

func TestWorkerRetriesThenDeadLetters(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	c, _ := spool.NewClient(spool.Config{Store: st})
	var calls atomic.Int32
	startWorker(t, spool.WorkerConfig{Store: st, Retry: spool.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond}, PollInterval: 5 * time.Millisecond},
		func(w *spool.Worker) {
			spool.Handle(w, addKind, func(_ context.Context, _ *spool.Task[addArgs]) error {
				n := calls.Add(1)
				if n == 2 {
					panic("boom")
				}
				return fmt.Errorf("failure %d", n)
			}, nil)
		})
	res, err := addKind.Enqueue(context.Background(), c, addArgs{}, &spool.EnqueueOptions{MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	j := waitFinished(t, c, res.ID)
	if j.State != spool.StateDead || j.DeadReason != store.DeadMaxAttempts || j.Attempts != 3 {
		t.Fatalf("got state %s reason %q attempts %d; want dead, max_attempts, 3", j.State, j.DeadReason, j.Attempts)
	}
	if len(j.Errors) != 3 {
		t.Fatalf("error history has %d entries, want 3: %+v", len(j.Errors), j.Errors)
	}
	if j.Errors[0].Message != "failure 1" || j.Errors[0].Attempt != 1 {
		t.Errorf("first error = %+v", j.Errors[0])
	}
	if !strings.Contains(j.Errors[1].Message, "boom") || !strings.Contains(j.Errors[1].Stack, "worker_test.go") {
		t.Errorf("panic not recorded with its stack: %+v", j.Errors[1])
	}
}

func TestWorkerOutcomes(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	c, _ := spool.NewClient(spool.Config{Store: st})
	var snoozed atomic.Bool
	kind := spool.NewKind[string]("outcome")
	startWorker(t, spool.WorkerConfig{Store: st, PollInterval: 5 * time.Millisecond}, func(w *spool.Worker) {
		spool.Handle(w, kind, func(_ context.Context, task *spool.Task[string]) error {
			switch task.Payload {
			case "cancel":
				return spool.Cancel(errors.New("not needed"))
			case "dead":
				return spool.DeadLetter(errors.New("bad input"))
			case "snooze":
				if snoozed.CompareAndSwap(false, true) {
					return spool.Snooze(10 * time.Millisecond)
				}
				return nil
			}
			return errors.New("unexpected payload")
		}, nil)
	})
	ctx := context.Background()
	want := map[string]spool.State{"cancel": spool.StateCancelled, "dead": spool.StateDead, "snooze": spool.StateCompleted}
	for payload, state := range want {
		res, err := kind.Enqueue(ctx, c, payload, nil)
		if err != nil {
			t.Fatal(err)
		}
		j := waitFinished(t, c, res.ID)
		if j.State != state {
			t.Errorf("%s: state %s, want %s", payload, j.State, state)
		}
		if j.Attempts != map[string]int{"dead": 1}[payload] {
			t.Errorf("%s: attempts %d", payload, j.Attempts)
		}
	}
}

func TestWorkerTimesOutJobs(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	c, _ := spool.NewClient(spool.Config{Store: st})
	startWorker(t, spool.WorkerConfig{Store: st}, func(w *spool.Worker) {
		spool.Handle(w, addKind, func(ctx context.Context, _ *spool.Task[addArgs]) error {
			<-ctx.Done()
			return ctx.Err()
		}, &spool.HandlerOptions{Timeout: 20 * time.Millisecond})
	})
	res, _ := addKind.Enqueue(context.Background(), c, addArgs{}, &spool.EnqueueOptions{MaxAttempts: 1})
	j := waitFinished(t, c, res.ID)
	if j.State != spool.StateDead || len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Message, "timed out") {
		t.Fatalf("got %s %+v; want dead with a timeout error", j.State, j.Errors)
	}
}

// A holder whose lock expired cannot settle the job another worker now holds.
func TestStaleHolderIsFenced(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	c, _ := spool.NewClient(spool.Config{Store: st})
	ctx := context.Background()
	res, _ := addKind.Enqueue(ctx, c, addArgs{}, nil)
	stale, err := st.Claim(ctx, store.ClaimParams{Queue: "default", Limit: 1, LockFor: store.MinLockDuration})
	if err != nil || len(stale) != 1 {
		t.Fatalf("claim: %v %d", err, len(stale))
	}
	started, release := make(chan struct{}), make(chan struct{})
	startWorker(t, spool.WorkerConfig{Store: st, PollInterval: 10 * time.Millisecond,
		Maintenance: spool.MaintenanceConfig{ReapInterval: 10 * time.Millisecond}}, func(w *spool.Worker) {
		spool.Handle(w, addKind, func(_ context.Context, task *spool.Task[addArgs]) error {
			close(started)
			<-release
			return task.SetResult("second holder")
		}, nil)
	})
	<-started // the reaper returned the job and the worker holds it now
	errs, err := st.Settle(ctx, []store.Verdict{{ID: res.ID, Token: stale[0].LockToken, Outcome: store.Complete, Result: []byte(`"stale"`)}})
	if err != nil || !errors.Is(errs[0], store.ErrLockLost) {
		t.Fatalf("stale settle: %v %v; want ErrLockLost", err, errs)
	}
	close(release)
	j := waitFinished(t, c, res.ID)
	if got, _ := spool.DecodeResult[string](j); got != "second holder" || j.Deliveries != 2 {
		t.Fatalf("result %q deliveries %d; want the second holder's result after 2 deliveries", got, j.Deliveries)
	}
}

// Stop waits for running jobs until its deadline, then cancels them and
// releases their jobs without spending an attempt; nothing is lost or stuck.
func TestWorkerShutdownReleasesUnfinishedJobs(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	c, _ := spool.NewClient(spool.Config{Store: st})
	ctx := context.Background()
	var started sync.WaitGroup
	started.Add(4)
	w, err := spool.NewWorker(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{"default": {Concurrency: 4, Prefetch: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	quick := spool.NewKind[int]("quick")
	spool.Handle(w, addKind, func(ctx context.Context, _ *spool.Task[addArgs]) error {
		started.Done()
		<-ctx.Done() // only shutdown ends these
		return context.Cause(ctx)
	}, nil)
	spool.Handle(w, quick, func(_ context.Context, _ *spool.Task[int]) error { return nil }, nil)
	for range 4 {
		if _, err := addKind.Enqueue(ctx, c, addArgs{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		if _, err := quick.Enqueue(ctx, c, i, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	started.Wait()
	stopCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	page, err := c.List(ctx, spool.ListParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		switch {
		case j.Kind == "add" && (j.State != spool.StateAvailable || j.Attempts != 0 || j.Deliveries != 0):
			t.Errorf("blocked job after shutdown: state %s attempts %d deliveries %d; want available, 0, 0", j.State, j.Attempts, j.Deliveries)
		case j.Kind == "quick" && j.State != spool.StateCompleted && j.State != spool.StateAvailable:
			t.Errorf("quick job after shutdown: state %s; want completed or released", j.State)
		}
	}
}

// NewWorker checks every field once its default is filled in, and reports
// every mistake at once, each matching ErrInvalid and naming the public
// field.
func TestNewWorkerReportsEveryMistake(t *testing.T) {
	t.Parallel()
	_, err := spool.NewWorker(spool.WorkerConfig{
		LockDuration: time.Millisecond,
		TimeoutGrace: -1,
		PollInterval: -time.Second,
		SettleBatch:  store.MaxBatch + 1,
		SettleDelay:  -1,
		Queues: map[string]spool.QueueConfig{
			"bad queue": {Concurrency: -1},
			"mail":      {Prefetch: 995}, // with the default Concurrency of 10: 1,005 per claim
		},
		Maintenance: spool.MaintenanceConfig{ReapInterval: -1, CompletedRetention: -5},
		Scheduler:   spool.SchedulerConfig{Concurrency: 65, MaxWait: -1},
	})
	want := []string{
		"WorkerConfig.Store",
		"WorkerConfig.LockDuration",
		"WorkerConfig.TimeoutGrace",
		"WorkerConfig.PollInterval",
		"WorkerConfig.SettleBatch",
		"WorkerConfig.SettleDelay",
		`WorkerConfig.Queues["bad queue"]`,
		`QueueConfig["bad queue"].Concurrency`,
		`QueueConfig["mail"].Concurrency+Prefetch`,
		"MaintenanceConfig.ReapInterval",
		"MaintenanceConfig.CompletedRetention",
		"SchedulerConfig.Concurrency",
		"SchedulerConfig.MaxWait",
	}
	if got := configFields(t, err); !slices.Equal(got, want) {
		t.Fatalf("NewWorker reported fields\n%q\nwant\n%q\nerror: %v", got, want, err)
	}
}

// configFields returns the field each joined config error names, in order,
// failing the test for one that is not a typed error matching ErrInvalid.
func configFields(t *testing.T, err error) []string {
	t.Helper()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %v is not a joined list", err)
	}
	var fields []string
	for _, e := range joined.Unwrap() {
		var ve *store.ValidationError
		var le *store.LimitError
		switch {
		case !errors.Is(e, spool.ErrInvalid):
			t.Errorf("%v does not match ErrInvalid", e)
		case errors.As(e, &ve):
			fields = append(fields, ve.Field)
		case errors.As(e, &le):
			fields = append(fields, le.Field)
		default:
			t.Errorf("%v is neither a *store.ValidationError nor a *store.LimitError", e)
		}
	}
	return fields
}

// claimRecorder records the limit of every claim.
type claimRecorder struct {
	store.Store
	limits chan int
}

func (c *claimRecorder) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Job, error) {
	select {
	case c.limits <- p.Limit:
	default:
	}
	return c.Store.Claim(ctx, p)
}

// Prefetch is checked against the default Concurrency, not against zero: a
// queue that would claim more than a claim may take is refused up front,
// and one that fits claims exactly its capacity.
func TestPrefetchIsCheckedWithTheDefaultConcurrency(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	_, err := spool.NewWorker(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{"mail": {Prefetch: 995}}})
	var le *store.LimitError
	if !errors.As(err, &le) || le.Field != `QueueConfig["mail"].Concurrency+Prefetch` || le.Got != 1005 || le.Limit != store.MaxClaim {
		t.Fatalf("NewWorker with Prefetch 995: %v; want a LimitError for 1005 jobs per claim", err)
	}
	rec := &claimRecorder{Store: st, limits: make(chan int, 1)}
	startWorker(t, spool.WorkerConfig{Store: rec, Queues: map[string]spool.QueueConfig{"mail": {Prefetch: 990}}},
		func(*spool.Worker) {})
	select {
	case got := <-rec.limits:
		if got != store.MaxClaim {
			t.Fatalf("claim limit %d, want %d (10 executors + 990 prefetched)", got, store.MaxClaim)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker made no claim")
	}
}

// Keeping finished jobs forever is expressible, and the scheduler's limits
// are checked even for a store that keeps no schedules.
func TestWorkerConfigEdges(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	if _, err := spool.NewWorker(spool.WorkerConfig{Store: st, Maintenance: spool.MaintenanceConfig{
		CompletedRetention: spool.KeepForever, CancelledRetention: spool.KeepForever, DeadRetention: spool.KeepForever,
	}}); err != nil {
		t.Fatalf("KeepForever refused: %v", err)
	}
	_, err := spool.NewWorker(spool.WorkerConfig{Store: plainStore{st}, Scheduler: spool.SchedulerConfig{Concurrency: 65}})
	if got := configFields(t, err); !slices.Equal(got, []string{"SchedulerConfig.Concurrency"}) {
		t.Fatalf("with a store without schedules, NewWorker reported %q (%v); want SchedulerConfig.Concurrency", got, err)
	}
}

// Stop stays bounded when a handler ignores its cancelled context: it
// returns an error naming the job instead of waiting for it.
func TestStopIsBoundedByStuckHandlers(t *testing.T) {
	t.Parallel()
	st := realStore(t)
	c, _ := spool.NewClient(spool.Config{Store: st})
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	w, err := spool.NewWorker(spool.WorkerConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	spool.Handle(w, addKind, func(context.Context, *spool.Task[addArgs]) error {
		close(started)
		<-release // ignores its context
		return nil
	}, nil)
	res, _ := addKind.Enqueue(ctx, c, addArgs{}, nil)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-started
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	err = w.Stop(stopCtx)
	close(release) // let the stuck handler end so the test leaks nothing
	if err == nil || !strings.Contains(err.Error(), res.ID.String()) {
		t.Fatalf("Stop: %v; want an error naming job %s", err, res.ID)
	}
}
