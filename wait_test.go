package spool_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

type receipt struct {
	MessageID string `json:"message_id"`
}

// waitResult is what a Wait running in another goroutine returned.
type waitResult struct {
	job *spool.Job
	err error
}

// waitAsync runs c.Wait in a goroutine and returns where its answer arrives.
// The test must receive from the channel, so the goroutine always ends.
func waitAsync(ctx context.Context, c *spool.Client, id spool.ID) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		job, err := c.Wait(ctx, id)
		ch <- waitResult{job, err}
	}()
	return ch
}

func TestWaitReturnsTheResult(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		notify bool // the store implements store.Notifier
	}{
		{"notified", true},
		{"polling only", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, _ := openStore(t)
			var s store.Store = st
			if !tc.notify {
				s = plainStore{st}
			}
			c := newClient(t, s)
			ctx := context.Background()

			res, err := sendEmail.Enqueue(ctx, c, email{To: "ada@example.com"}, &spool.EnqueueOptions{Queue: "mail"})
			if err != nil {
				t.Fatalf("Enqueue: %v", err)
			}
			job := claim(t, st, "mail")
			waited := waitAsync(ctx, c, res.ID)

			// A worker in another goroutine completes the job with a result.
			worked := make(chan error, 1)
			go func() {
				worked <- trySettle(st, job, store.Verdict{Outcome: store.Complete, Result: []byte(`{"message_id":"m-1"}`)})
			}()

			w := <-waited
			if err := <-worked; err != nil {
				t.Fatalf("complete the job: %v", err)
			}
			if w.err != nil {
				t.Fatalf("Wait: %v", w.err)
			}
			if w.job.ID != res.ID || w.job.State != spool.StateCompleted {
				t.Fatalf("Wait returned %s in state %s; want %s completed", w.job.ID, w.job.State, res.ID)
			}
			r, err := spool.DecodeResult[receipt](w.job)
			if err != nil || r.MessageID != "m-1" {
				t.Fatalf("DecodeResult = %+v, %v; want m-1", r, err)
			}
		})
	}
}

func TestWaitReturnsCancelledAndDeadJobs(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	ctx := context.Background()

	cancelled, err := sendEmail.Enqueue(ctx, c, email{}, &spool.EnqueueOptions{Queue: "c"})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	waited := waitAsync(ctx, c, cancelled.ID)
	if err := c.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	w := <-waited
	if w.err != nil || w.job.State != spool.StateCancelled {
		t.Fatalf("Wait on a cancelled job = %+v, %v; want it cancelled", w.job, w.err)
	}
	if _, err := spool.DecodeResult[receipt](w.job); !errors.Is(err, spool.ErrWrongState) {
		t.Fatalf("DecodeResult of a cancelled job: %v, want ErrWrongState", err)
	}

	dead, err := sendEmail.Enqueue(ctx, c, email{}, &spool.EnqueueOptions{Queue: "d"})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	job := claim(t, st, "d")
	waited = waitAsync(ctx, c, dead.ID)
	settle(t, st, job, store.Verdict{Outcome: store.DeadLetter, Error: &store.AttemptError{Message: "boom"}})
	w = <-waited
	if w.err != nil || w.job.State != spool.StateDead || len(w.job.Errors) != 1 || w.job.Errors[0].Message != "boom" {
		t.Fatalf("Wait on a dead job = %+v, %v; want it dead with its error", w.job, w.err)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)

	res, err := sendEmail.Enqueue(context.Background(), c, email{}, nil)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	waited := waitAsync(ctx, c, res.ID)
	cancel()
	if w := <-waited; w.job != nil || !errors.Is(w.err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v, %v; want context.Canceled", w.job, w.err)
	}

	// A deadline that passes while the job stays live ends the wait too.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if job, err := c.Wait(ctx, res.ID); job != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past its deadline = %v, %v; want context.DeadlineExceeded", job, err)
	}
	if s := mustGet(t, c, res.ID).State; s != spool.StateAvailable {
		t.Fatalf("Wait changed the job: it is %s", s)
	}
}

func TestWaitUnknownJob(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	c := newClient(t, st)
	if _, err := c.Wait(context.Background(), store.NewID()); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("Wait on an unknown ID: %v, want ErrNotFound", err)
	}
}

// getCounter counts Get calls per job and announces each one.
type getCounter struct {
	store.Store
	mu   sync.Mutex
	gets map[store.ID]int
	got  chan store.ID
}

func newGetCounter(st store.Store) *getCounter {
	return &getCounter{Store: st, gets: map[store.ID]int{}, got: make(chan store.ID, 10_000)}
}

func (g *getCounter) Get(ctx context.Context, id store.ID) (*store.Job, error) {
	j, err := g.Store.Get(ctx, id)
	g.mu.Lock()
	g.gets[id]++
	g.mu.Unlock()
	g.got <- id
	return j, err
}

func (g *getCounter) count(id store.ID) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gets[id]
}

// awaitGets waits for n Get calls.
func (g *getCounter) awaitGets(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case <-g.got:
		case <-timeout:
			t.Fatalf("fewer than %d Get calls", n)
		}
	}
}

// Many waiters at once are each woken by their own job's finish, and only
// by it: finishing other jobs costs a waiter no look at the store. The
// Client's clock is fake and never moves, so no waiter polls.
func TestWaitWakesOnlyForItsJob(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	gc := newGetCounter(st)
	c, err := spool.NewClient(spool.Config{Store: gc, Clock: clockwork.NewFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 200
	items := make([]spool.Item, n)
	for i := range items {
		items[i] = sendEmail.Item(email{}, &spool.EnqueueOptions{Queue: "many"})
	}
	res, err := c.EnqueueMany(ctx, items...)
	if err != nil {
		t.Fatal(err)
	}
	lone, err := sendEmail.Enqueue(ctx, c, email{}, &spool.EnqueueOptions{Queue: "lone"})
	if err != nil {
		t.Fatal(err)
	}
	waits := make([]<-chan waitResult, n)
	for i, r := range res {
		waits[i] = waitAsync(ctx, c, r.ID)
	}
	loneWait := waitAsync(ctx, c, lone.ID)
	gc.awaitGets(t, n+1) // every waiter has subscribed and looked once

	jobs, err := st.Claim(ctx, store.ClaimParams{Queue: "many", Limit: n, LockFor: time.Minute})
	if err != nil || len(jobs) != n {
		t.Fatalf("Claim: %d jobs, %v", len(jobs), err)
	}
	verdicts := make([]store.Verdict, n)
	for i, j := range jobs {
		verdicts[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Complete}
	}
	if errs, err := st.Settle(ctx, verdicts); err != nil || errors.Join(errs...) != nil {
		t.Fatalf("Settle: %v %v", err, errs)
	}
	for i, ch := range waits {
		w := <-ch
		if w.err != nil || w.job.State != spool.StateCompleted {
			t.Fatalf("Wait %d = %v, %v; want the completed job", i, w.job, w.err)
		}
		if got := gc.count(res[i].ID); got != 2 {
			t.Fatalf("Wait %d looked %d times, want 2 (before and after its job finished)", i, got)
		}
	}
	if got := gc.count(lone.ID); got != 1 {
		t.Fatalf("the lone waiter looked %d times while other jobs finished, want 1", got)
	}

	settle(t, st, claim(t, st, "lone"), store.Verdict{Outcome: store.Complete})
	if w := <-loneWait; w.err != nil || w.job.State != spool.StateCompleted {
		t.Fatalf("lone Wait = %v, %v", w.job, w.err)
	}
	if got := gc.count(lone.ID); got != 2 {
		t.Fatalf("the lone waiter looked %d times, want 2", got)
	}
}

// Without notifications Wait polls, on the Client's clock: a job finished
// where no signal reaches the waiter is seen once the clock has moved.
func TestWaitPollsOnTheClientsClock(t *testing.T) {
	t.Parallel()
	st, _ := openStore(t)
	gc := newGetCounter(plainStore{st})
	clock := clockwork.NewFakeClock()
	c, err := spool.NewClient(spool.Config{Store: gc, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := sendEmail.Enqueue(ctx, c, email{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waited := waitAsync(ctx, c, res.ID)
	gc.awaitGets(t, 1)
	settle(t, st, claim(t, st, store.DefaultQueue), store.Verdict{Outcome: store.Complete})
	blockCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(blockCtx, 1); err != nil { // Wait sleeps on its poll timer
		t.Fatal(err)
	}
	if got := gc.count(res.ID); got != 1 {
		t.Fatalf("Wait looked %d times before its clock moved, want 1", got)
	}
	clock.Advance(time.Second)
	if w := <-waited; w.err != nil || w.job.State != spool.StateCompleted {
		t.Fatalf("Wait = %v, %v; want the completed job", w.job, w.err)
	}
}
