package spooltest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/spooltest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// fixedRetry retries after a fixed delay.
type fixedRetry time.Duration

func (d fixedRetry) RetryDelay(*spool.Job, int, error) time.Duration { return time.Duration(d) }

type args struct{ N int }

// env is a store, a Client and a Worker that is never started, the store
// and the worker on one fake clock.
type env struct {
	clock *clockwork.FakeClock
	st    *sqlite.Store
	c     *spool.Client
	w     *spool.Worker
}

func newEnv(t *testing.T, cfg spool.WorkerConfig) *env {
	t.Helper()
	e := &env{clock: clockwork.NewFakeClockAt(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))}
	e.st = spooltest.NewStore(t, &sqlite.Config{Now: e.clock.Now})
	e.c = spooltest.NewClient(t, e.st)
	cfg.Store, cfg.Clock = e.st, e.clock
	w, err := spool.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.w = w
	return e
}

// enqueue adds a job of kind with payload args{n}.
func (e *env) enqueue(t *testing.T, kind string, n int, opts *spool.EnqueueOptions) spool.ID {
	t.Helper()
	res, err := spool.NewKind[args](kind).Enqueue(context.Background(), e.c, args{n}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res.ID
}

// WorkOne gives each way a handler can return the verdict a running Worker
// gives it, and reports the job as the store then holds it.
func TestWorkOneOutcomes(t *testing.T) {
	t.Parallel()
	const retry = 42 * time.Second
	type check func(t *testing.T, r *spooltest.Result)
	for _, tc := range []struct {
		name    string
		handler func(e *env) func(context.Context, *spool.Task[args]) error
		opts    *spool.HandlerOptions
		enqueue *spool.EnqueueOptions
		want    store.Outcome
		state   spool.State
		check   check
	}{{
		name: "complete with a result",
		handler: func(*env) func(context.Context, *spool.Task[args]) error {
			return func(_ context.Context, task *spool.Task[args]) error { return task.SetResult(task.Payload.N * 2) }
		},
		want: store.Complete, state: spool.StateCompleted,
		check: func(t *testing.T, r *spooltest.Result) {
			if got, err := spool.DecodeResult[int](r.Job); err != nil || got != 42 || r.Err != nil {
				t.Errorf("result %d (%v), err %v; want 42 and no error", got, err, r.Err)
			}
		},
	}, {
		name: "error retries after the policy's delay",
		handler: func(*env) func(context.Context, *spool.Task[args]) error {
			return func(context.Context, *spool.Task[args]) error { return errors.New("smtp down") }
		},
		opts: &spool.HandlerOptions{Retry: fixedRetry(retry)},
		want: store.Fail, state: spool.StateScheduled,
		check: func(t *testing.T, r *spooltest.Result) {
			if r.Delay != retry || r.Job.Attempts != 1 || r.Err == nil || r.Err.Error() != "smtp down" ||
				len(r.Job.Errors) != 1 || r.Job.Errors[0].Message != "smtp down" {
				t.Errorf("delay %v, attempts %d, err %v, errors %+v; want a retry in %v recording the error", r.Delay, r.Job.Attempts, r.Err, r.Job.Errors, retry)
			}
		},
	}, {
		name: "the last attempt fails: dead",
		handler: func(*env) func(context.Context, *spool.Task[args]) error {
			return func(context.Context, *spool.Task[args]) error { return errors.New("smtp down") }
		},
		enqueue: &spool.EnqueueOptions{MaxAttempts: 1},
		want:    store.Fail, state: spool.StateDead,
		check: func(t *testing.T, r *spooltest.Result) {
			if r.Job.DeadReason != store.DeadMaxAttempts {
				t.Errorf("dead reason %q, want %q", r.Job.DeadReason, store.DeadMaxAttempts)
			}
		},
	}, {
		name: "panic is a failed attempt with its stack",
		handler: func(*env) func(context.Context, *spool.Task[args]) error {
			return func(context.Context, *spool.Task[args]) error { panic("nil map") }
		},
		want: store.Fail, state: spool.StateScheduled,
		check: func(t *testing.T, r *spooltest.Result) {
			var pe *spool.PanicError
			if !errors.As(r.Err, &pe) || pe.Value != "nil map" {
				t.Errorf("err %v; want a *spool.PanicError with the panic's value", r.Err)
			}
			if len(r.Job.Errors) != 1 || !strings.Contains(r.Job.Errors[0].Stack, "work_test.go") || r.Job.Attempts != 1 {
				t.Errorf("attempts %d, errors %+v; want one with the handler's stack", r.Job.Attempts, r.Job.Errors)
			}
		},
	}, {
		name: "cancel",
		handler: func(*env) func(context.Context, *spool.Task[args]) error {
			return func(context.Context, *spool.Task[args]) error { return spool.Cancel(errors.New("account closed")) }
		},
		want: store.Cancel, state: spool.StateCancelled,
		check: func(t *testing.T, r *spooltest.Result) {
			if len(r.Job.Errors) != 1 || r.Job.Errors[0].Message != "account closed" {
				t.Errorf("errors %+v; want the reason recorded", r.Job.Errors)
			}
		},
	}, {
		name: "snooze spends no attempt",
		handler: func(*env) func(context.Context, *spool.Task[args]) error {
			return func(context.Context, *spool.Task[args]) error { return spool.Snooze(time.Hour) }
		},
		want: store.Snooze, state: spool.StateScheduled,
		check: func(t *testing.T, r *spooltest.Result) {
			if r.Delay != time.Hour || r.Job.Attempts != 0 {
				t.Errorf("delay %v, attempts %d; want 1h and none spent", r.Delay, r.Job.Attempts)
			}
		},
	}, {
		name: "dead letter",
		handler: func(*env) func(context.Context, *spool.Task[args]) error {
			return func(context.Context, *spool.Task[args]) error { return spool.DeadLetter(errors.New("bad address")) }
		},
		want: store.DeadLetter, state: spool.StateDead,
		check: func(t *testing.T, r *spooltest.Result) {
			if r.Job.DeadReason != store.DeadByHandler {
				t.Errorf("dead reason %q, want %q", r.Job.DeadReason, store.DeadByHandler)
			}
		},
	}, {
		name: "timeout ends the handler's context",
		handler: func(e *env) func(context.Context, *spool.Task[args]) error {
			return func(ctx context.Context, _ *spool.Task[args]) error {
				if _, ok := ctx.Deadline(); !ok {
					return errors.New("no deadline")
				}
				e.clock.Advance(time.Minute)
				<-ctx.Done()
				return ctx.Err()
			}
		},
		opts: &spool.HandlerOptions{Timeout: time.Minute},
		want: store.Fail, state: spool.StateScheduled,
		check: func(t *testing.T, r *spooltest.Result) {
			if !errors.Is(r.Err, context.Canceled) || !strings.Contains(r.Err.Error(), "job timed out after 1m0s") {
				t.Errorf("err %v; want the context's error and the timeout as its cause", r.Err)
			}
		},
	}, {
		name: "a handler past its timeout plus grace is given up on",
		handler: func(e *env) func(context.Context, *spool.Task[args]) error {
			return func(context.Context, *spool.Task[args]) error {
				e.clock.Advance(time.Minute + 10*time.Second) // ignores its context
				return nil
			}
		},
		opts: &spool.HandlerOptions{Timeout: time.Minute, Retry: fixedRetry(retry)},
		want: store.Fail, state: spool.StateScheduled,
		check: func(t *testing.T, r *spooltest.Result) {
			if r.Err == nil || len(r.Job.Errors) != 1 || !strings.Contains(r.Job.Errors[0].Message, "did not return within 1m10s") || r.Delay != retry {
				t.Errorf("err %v, errors %+v, delay %v; want the attempt recorded as given up on, retried per the policy", r.Err, r.Job.Errors, r.Delay)
			}
		},
	}, {
		name: "payload that does not decode: dead",
		handler: func(*env) func(context.Context, *spool.Task[args]) error {
			return func(context.Context, *spool.Task[args]) error { return nil }
		},
		want: store.DeadLetter, state: spool.StateDead,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, spool.WorkerConfig{})
			kind := spool.NewKind[args]("k")
			spool.Handle(e.w, kind, tc.handler(e), tc.opts)
			if tc.name == "payload that does not decode: dead" {
				if _, err := e.c.EnqueueMany(context.Background(), spool.RawItem("k", []byte(`{"N":"x"}`), nil)); err != nil {
					t.Fatal(err)
				}
			} else {
				e.enqueue(t, "k", 21, tc.enqueue)
			}
			var r *spooltest.Result
			mustPass(t, func(ft testing.TB) { r = spooltest.WorkOne(context.Background(), ft, e.w, store.DefaultQueue) })
			if r.Outcome != tc.want || r.Job.State != tc.state || r.Refused != nil {
				t.Fatalf("outcome %s, state %s, refused %v (err %v); want %s and %s", r.Outcome, r.Job.State, r.Refused, r.Err, tc.want, tc.state)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// Kinds without a handler fail their attempt, unless a catch-all takes them.
func TestWorkOneHandlerLookup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, spool.WorkerConfig{Queues: map[string]spool.QueueConfig{"q": {}}, Retry: fixedRetry(time.Hour)})
	e.enqueue(t, "unknown", 1, &spool.EnqueueOptions{Queue: "q"})
	r := spooltest.WorkOne(context.Background(), t, e.w, "q")
	if r.Outcome != store.Fail || r.Err == nil || !strings.Contains(r.Err.Error(), `no handler registered for kind "unknown"`) || r.Delay != time.Hour {
		t.Fatalf("outcome %s, err %v, delay %v; want a failed attempt for the missing handler, retried per the worker's policy", r.Outcome, r.Err, r.Delay)
	}

	e = newEnv(t, spool.WorkerConfig{Queues: map[string]spool.QueueConfig{"q": {}}})
	spool.HandleAll(e.w, func(_ context.Context, job *spool.Job) ([]byte, error) { return []byte(`"` + job.Kind + `"`), nil }, nil)
	e.enqueue(t, "unknown", 1, &spool.EnqueueOptions{Queue: "q"})
	r = spooltest.WorkOne(context.Background(), t, e.w, "q")
	if got, _ := spool.DecodeResult[string](r.Job); r.Outcome != store.Complete || got != "unknown" {
		t.Fatalf("outcome %s, result %q; want the catch-all's", r.Outcome, got)
	}
}

// A verdict the store refuses is reported: here the job was cancelled
// while its handler ran.
func TestWorkOneRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, spool.WorkerConfig{})
	kind := spool.NewKind[args]("k")
	spool.Handle(e.w, kind, func(ctx context.Context, task *spool.Task[args]) error {
		return e.c.Cancel(ctx, task.ID)
	}, nil)
	e.enqueue(t, "k", 1, nil)
	r := spooltest.WorkOne(context.Background(), t, e.w, store.DefaultQueue)
	if !errors.Is(r.Refused, spool.ErrLockLost) || r.Outcome != store.Complete || r.Job.State != spool.StateCancelled {
		t.Fatalf("refused %v, outcome %s, state %s; want the completion refused with ErrLockLost and the job cancelled", r.Refused, r.Outcome, r.Job.State)
	}
}

func TestWorkOneFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, spool.WorkerConfig{})
	out := mustFail(t, func(ft testing.TB) { spooltest.WorkOne(context.Background(), ft, e.w, store.DefaultQueue) })
	wants(t, out, `WorkOne: queue "default" has no job available`)

	e.enqueue(t, "later", 1, &spool.EnqueueOptions{Delay: time.Minute})
	e.enqueue(t, "later", 2, &spool.EnqueueOptions{Delay: time.Minute})
	e.enqueue(t, "report", 3, &spool.EnqueueOptions{Delay: time.Hour})
	out = mustFail(t, func(ft testing.TB) { spooltest.WorkOne(context.Background(), ft, e.w, store.DefaultQueue) })
	wants(t, out, `3 jobs are scheduled for later (2 of kind "later", 1 of kind "report")`)

	out = mustFail(t, func(ft testing.TB) { spooltest.WorkOne(context.Background(), ft, e.w, "mail") })
	wants(t, out, `the worker does not work queue "mail"`)

	if err := e.w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.w.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	out = mustFail(t, func(ft testing.TB) { spooltest.WorkOne(context.Background(), ft, e.w, store.DefaultQueue) })
	wants(t, out, `the worker is running`)
}

// Drain works jobs the handlers enqueue and retries that are due, and
// leaves, and says so, those scheduled for later; they run once the
// store's clock reaches them.
func TestDrain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, spool.WorkerConfig{Retry: fixedRetry(30 * time.Second)})
	var runs []string
	handle := func(name string, fn func(ctx context.Context, task *spool.Task[args]) error) {
		spool.Handle(e.w, spool.NewKind[args](name), func(ctx context.Context, task *spool.Task[args]) error {
			runs = append(runs, fmt.Sprintf("%s %d", name, task.Payload.N)) // no lock: the handlers run in the test's goroutine
			return fn(ctx, task)
		}, nil)
	}
	handle("chain", func(ctx context.Context, task *spool.Task[args]) error {
		_, err := spool.NewKind[args]("leaf").Enqueue(ctx, e.c, args{task.Payload.N + 1}, nil)
		return err
	})
	handle("leaf", func(context.Context, *spool.Task[args]) error { return nil })
	handle("flaky", func(_ context.Context, task *spool.Task[args]) error {
		if task.Attempts == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	e.enqueue(t, "chain", 1, nil)
	e.enqueue(t, "flaky", 10, nil)

	var d *spooltest.Drained
	out := mustPass(t, func(ft testing.TB) { d = spooltest.Drain(context.Background(), ft, e.w, store.DefaultQueue) })
	if got := strings.Join(runs, ", "); got != "chain 1, flaky 10, leaf 2" {
		t.Fatalf("ran %s; want chain 1, flaky 10, leaf 2", got)
	}
	if len(d.Worked) != 3 || d.Worked[1].Outcome != store.Fail || len(d.Scheduled) != 1 || d.Scheduled[0].Kind != "flaky" {
		t.Fatalf("worked %d, scheduled %d; want 3 worked and the flaky retry left", len(d.Worked), len(d.Scheduled))
	}
	wants(t, out, `Drain worked 3 jobs of queue "default"; 1 job is scheduled for later (1 of kind "flaky")`)

	e.clock.Advance(30 * time.Second)
	runs = nil
	out = mustPass(t, func(ft testing.TB) { d = spooltest.Drain(context.Background(), ft, e.w, store.DefaultQueue) })
	if len(d.Worked) != 1 || d.Worked[0].Job.State != spool.StateCompleted || len(d.Scheduled) != 0 || out != "" {
		t.Fatalf("worked %d, scheduled %d, said %q; want the retry completed and nothing left", len(d.Worked), len(d.Scheduled), out)
	}
}

// A job that snoozes without delay keeps coming back: Drain gives up and
// says why, rather than spinning forever. Not parallel: it lowers Drain's
// bound for the package.
func TestDrainBounded(t *testing.T) {
	defer spooltest.SetMaxDrain(50)()
	e := newEnv(t, spool.WorkerConfig{})
	runs := 0
	spool.Handle(e.w, spool.NewKind[args]("soon"), func(context.Context, *spool.Task[args]) error {
		runs++
		return spool.Snooze(0)
	}, nil)
	e.enqueue(t, "soon", 1, nil)
	out := mustFail(t, func(ft testing.TB) { spooltest.Drain(context.Background(), ft, e.w, store.DefaultQueue) })
	wants(t, out, `queue "default" still has jobs available after 50 executions`)
	if runs != 50 {
		t.Fatalf("the handler ran %d times, want 50", runs)
	}
}
