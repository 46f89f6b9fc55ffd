package spool_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
