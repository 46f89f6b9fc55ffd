// Package spooltest helps you test code that uses Spool: the producers that
// enqueue jobs and the handlers that work them, in your own tests, on a real
// store.
//
// # What it owns
//
//   - A throwaway store: [NewStore] opens a SQLite store on a file in the
//     test's temporary directory and closes it when the test ends, leaving
//     no goroutine behind; [NewClient] puts a Client on it.
//   - Assertions on what was enqueued: [RequireEnqueued] (exactly one
//     job), [RequireEnqueuedN] and [RequireNotEnqueued] select jobs with a
//     [Match] (kind, queue, tenant, unique key, states, and the payload,
//     typed or as a JSON subset). When nothing matches they fail the test
//     with the jobs the store does hold and, for each, how it differs,
//     payload fields included.
//   - Working jobs synchronously: [WorkOne] claims one job of a queue and
//     runs it to its verdict in the calling goroutine; [Drain] works a
//     queue until it has nothing available. Both use the handlers you
//     registered on a real [spool.Worker], which is never started: no
//     goroutines, no polling, no sleeping.
//
// It does not start workers, move clocks or fake the store. For time, give
// the store a fake clock (sqlite.Config.Now, such as a clockwork.FakeClock's
// Now) and the Worker the same one (WorkerConfig.Clock), and move it with
// Advance: a job scheduled for later, a retry or a snooze becomes available
// when the store's clock reaches it.
//
// # A test
//
//	func TestSignup(t *testing.T) {
//		st := spooltest.NewStore(t, nil)
//		client := spooltest.NewClient(t, st)
//
//		if err := signup(t.Context(), client, "ada@example.com"); err != nil {
//			t.Fatal(err)
//		}
//		spooltest.RequireEnqueued(t, client, spooltest.Match{
//			Kind:    SendWelcome.Name(),
//			Queue:   "mail",
//			Payload: Welcome{To: "ada@example.com"},
//		})
//
//		w, err := spool.NewWorker(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{"mail": {}}})
//		if err != nil {
//			t.Fatal(err)
//		}
//		registerHandlers(w) // your production registration
//		res := spooltest.WorkOne(t.Context(), t, w, "mail")
//		if res.Job.State != spool.StateCompleted {
//			t.Fatalf("welcome email: %s (%v)", res.Job.State, res.Err)
//		}
//	}
//
// # Working jobs with the Worker's semantics
//
// WorkOne and Drain do what a running Worker's executor does with a job,
// through the same code: the handler registered for its kind (or the
// catch-all of spool.HandleAll, or "no handler registered"), the
// handler's timeout, a panic recovered as a failed attempt with its stack,
// the handler's error turned into a verdict (spool.Cancel, spool.Snooze,
// spool.DeadLetter, or a retry after the delay of the handler's
// RetryPolicy), the result set by Task.SetResult, and giving up on a
// handler that returns only past its timeout plus TimeoutGrace. The
// verdict is written to the store before they return, and the [Result]
// reports the job as settled. What a running Worker adds around that —
// concurrency, prefetching, renewing locks, batching verdicts, shutdown —
// is not exercised; test it with the Worker itself.
//
// The handler runs in the goroutine that calls WorkOne, so its side effects
// are visible when WorkOne returns, and it may call t.Fatal (the test then
// ends with the job still claimed, as a crashed worker would leave it).
//
// # How it reaches the executor
//
// Running one job synchronously is something only tests should do, so
// package spool does not export it: a method such as Worker.WorkOne would
// be part of Spool's API, promised to stay, and an invitation to build a
// second, unsupervised runtime on it. Instead the root package hands this
// package its executor through an internal package (internal/testhook)
// that code outside the module cannot import. The cost is that only
// spooltest can work jobs this way; the public API gains nothing but this
// package.
package spooltest
