package spooltest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/spooltest"
	"github.com/spoolrun/spool/store/sqlite"
)

// The code under test, as it would be in your package: signup enqueues a
// welcome email, and the email handler sends it through a mailer.

type Email struct{ To, Subject string }

var SendEmail = spool.NewKind[Email]("email.send")

func signup(ctx context.Context, c *spool.Client, addr string) error {
	_, err := SendEmail.Enqueue(ctx, c, Email{To: addr, Subject: "Welcome"}, &spool.EnqueueOptions{
		Queue:     "mail",
		UniqueKey: "welcome:" + addr,
	})
	return err
}

func registerHandlers(w *spool.Worker, send func(Email) error) {
	spool.Handle(w, SendEmail, func(_ context.Context, t *spool.Task[Email]) error {
		if t.Payload.To == "" {
			return spool.DeadLetter(errors.New("no recipient"))
		}
		return send(t.Payload)
	}, &spool.HandlerOptions{Retry: spool.Backoff{Base: time.Minute, Jitter: 0.01}})
}

// testSignup is a test as it would be in your package, where it is
// func TestSignup(t *testing.T).
func testSignup(t testing.TB) {
	st := spooltest.NewStore(t, nil)
	client := spooltest.NewClient(t, st)

	if err := signup(t.Context(), client, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	// Exactly one welcome email, with this payload, waits in "mail".
	spooltest.RequireEnqueued(t, client, spooltest.Match{
		Kind:    SendEmail.Name(),
		Queue:   "mail",
		Payload: Email{To: "ada@example.com", Subject: "Welcome"},
	})

	// Work it with the production handlers, in this goroutine.
	w, err := spool.NewWorker(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{"mail": {}}})
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	registerHandlers(w, func(e Email) error {
		sent = append(sent, e.To)
		return nil
	})
	res := spooltest.WorkOne(t.Context(), t, w, "mail")
	if res.Job.State != spool.StateCompleted {
		t.Fatalf("the welcome email is %s: %v", res.Job.State, res.Err)
	}
	fmt.Println("sent to", sent)
}

// A test of the code that enqueues jobs and of the handler that works them.
func Example() {
	// runT stands in for go test, so that this example runs: in your
	// package, testSignup is TestSignup and go test runs it.
	t := runT(testSignup)
	fmt.Println("failed:", t.Failed())
	// Output:
	// sent to [ada@example.com]
	// failed: false
}

// When no job matches, the failure shows what the store holds instead and
// how each job differs.
func ExampleRequireEnqueued_failure() {
	t := runT(func(t testing.TB) {
		client := spooltest.NewClient(t, spooltest.NewStore(t, nil))
		if err := signup(t.Context(), client, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		spooltest.RequireEnqueued(t, client, spooltest.Match{
			Kind:    SendEmail.Name(),
			Payload: Email{To: "ada@example.org", Subject: "Welcome"},
		})
	})
	fmt.Print(t.Said())
	// Output:
	// spooltest: no job matches {kind "email.send", payload spooltest_test.Email {"To":"ada@example.org","Subject":"Welcome"}}
	// the store holds 1 job that does not match:
	//   job of kind "email.send" in queue "mail", available, unique key "welcome:ada@example.com", payload {"To":"ada@example.com","Subject":"Welcome"}:
	//     payload.To: got "ada@example.com", want "ada@example.org"
}

// A failed attempt is retried after the handler's backoff, by the store's
// clock: Drain leaves the retry for later, and works it once a fake clock
// has moved past it.
func ExampleDrain() {
	t := runT(func(t testing.TB) {
		clock := clockwork.NewFakeClock()
		st := spooltest.NewStore(t, &sqlite.Config{Now: clock.Now})
		client := spooltest.NewClient(t, st)
		w, err := spool.NewWorker(spool.WorkerConfig{Store: st, Clock: clock, Queues: map[string]spool.QueueConfig{"mail": {}}})
		if err != nil {
			t.Fatal(err)
		}
		down := true
		registerHandlers(w, func(Email) error {
			if down {
				down = false
				return errors.New("smtp: connection refused")
			}
			return nil
		})
		for _, addr := range []string{"ada@example.com", "bob@example.com"} {
			if err := signup(t.Context(), client, addr); err != nil {
				t.Fatal(err)
			}
		}

		d := spooltest.Drain(t.Context(), t, w, "mail")
		for _, r := range d.Worked {
			fmt.Printf("%s: %s, %v\n", r.Job.UniqueKey, r.Job.State, r.Err)
		}
		clock.Advance(2 * time.Minute) // past the first retry's backoff of about a minute
		d = spooltest.Drain(t.Context(), t, w, "mail")
		for _, r := range d.Worked {
			fmt.Printf("%s: %s after %d failed attempt\n", r.Job.UniqueKey, r.Job.State, r.Job.Attempts)
		}
	})
	fmt.Print(t.Said())
	// Output:
	// welcome:ada@example.com: scheduled, smtp: connection refused
	// welcome:bob@example.com: completed, <nil>
	// welcome:ada@example.com: completed after 1 failed attempt
	// spooltest: Drain worked 2 jobs of queue "mail"; 1 job is scheduled for later (1 of kind "email.send"); move the store's clock to run them
}
