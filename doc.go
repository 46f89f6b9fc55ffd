// Package spool is durable background work for Go: jobs that are never lost,
// processed by competing workers with peek-lock semantics, stored in an
// embedded SQLite file or, later, PostgreSQL.
//
// # Overview
//
// A [Client] enqueues and inspects jobs. It works over any [store.Store];
// the default backend is store/sqlite, one file with zero setup:
//
//	st, err := sqlite.Open("spool.db", sqlite.Config{})
//	if err != nil { ... }
//	defer st.Close()
//	client, err := spool.NewClient(spool.Config{Store: st})
//
// The Client does not own the store: close the store yourself once the Client
// is no longer used. Every method takes a context first and is safe for
// concurrent use.
//
// # Jobs and their lifecycle
//
// A [Job] is one unit of work: a queue, a kind (its type name), a payload,
// a priority, a run-at time, counters and a [State]. A job enqueued to run
// later is [StateScheduled]; when its time comes it is [StateAvailable]. A
// worker claims it, holding a lock that fences its delivery, and the job is
// [StateRunning] until the worker settles it:
//
//	scheduled ──run_at──► available ──claim──► running ──► completed | cancelled | dead
//	    ▲                     ▲                   │
//	    │                     └── lock expired ───┤
//	    └───── fail (retry later), snooze ────────┘
//
// Scheduled, available and running jobs are live; completed, cancelled and
// dead jobs are finished. A failed attempt is retried with backoff until
// MaxAttempts, then the job is dead-lettered ([StateDead]) with its error
// history, where it stays until [Client.Requeue] or a purge. A job whose lock
// expires is delivered again, up to MaxDeliveries. Completed and cancelled
// jobs leave the store after their retention period.
//
// # Enqueueing
//
// Declare a [Kind] for each job type, with its payload type; payloads are
// encoded as JSON:
//
//	type Email struct{ To, Subject string }
//
//	var SendEmail = spool.NewKind[Email]("email.send")
//
//	res, err := SendEmail.Enqueue(ctx, client, Email{To: "a@example.com"}, &spool.EnqueueOptions{
//		Queue:     "mail",
//		Delay:     time.Minute,
//		UniqueKey: "welcome:a@example.com",
//	})
//
// When Enqueue returns nil the job is durable. [EnqueueOptions] set the
// queue, priority, run time, unique key, tenant, ordering key and retry
// limits; nil options take the defaults. A unique key already held by a live
// job returns that job with [EnqueueResult].Duplicate set instead of adding
// another. [Client.EnqueueMany] adds many jobs, typed ([Kind.Item]) or raw
// ([RawItem]), all or nothing, in one durable commit.
//
// # Transactions
//
// [Client.EnqueueTx] and [Kind.EnqueueTx] enqueue inside your own *sql.Tx,
// so the jobs commit or roll back with your rows: no job for a change that
// never happened, and no change without its job. The transaction must be on
// the store's database, and the store must implement [store.SQLTxEnqueuer]
// (store/sqlite does); otherwise the call returns [ErrTxUnsupported].
//
// # Waiting for results
//
// A handler may return a result, which is kept with the finished job.
// [Client.Wait] blocks until a job is finished and returns it; read the result
// with [DecodeResult] and the payload with [Kind.Decode]:
//
//	job, err := client.Wait(ctx, res.ID)
//	if err != nil { ... }
//	if job.State == spool.StateCompleted {
//		out, err := spool.DecodeResult[Receipt](job)
//		...
//	}
//
// Wait is woken in-process by stores that implement [store.Notifier] and
// polls slowly for jobs finished by other processes. Bound it with the
// context.
//
// # Errors
//
// Errors are typed and tested with errors.Is and errors.As. The sentinels
// ([ErrNotFound], [ErrInvalid], [ErrTooLarge], [ErrWrongState],
// [ErrDuplicate], [ErrLockLost], [ErrClosed]) are the store's own values.
// Refused input comes as a [store.ValidationError] or [store.LimitError]
// naming the field, and changes nothing; in a batch each bad item is a
// [store.ItemError] naming its index. [Client.Cancel] and [Client.Requeue]
// handle each job on its own and report each refused one as a [JobError]
// naming it. [store.Code] maps any of these to a stable machine code.
package spool
