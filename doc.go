// Package spool is durable background work for Go: jobs that are never lost,
// processed by competing workers with peek-lock semantics, stored in an
// embedded SQLite file (store/sqlite) or in PostgreSQL (store/postgres).
//
// # Overview
//
// A [Client] enqueues and inspects jobs; a [Worker] runs them; both work
// over any [store.Store]. The default backend is store/sqlite, one file with
// zero setup:
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
// another; with [EnqueueOptions].UniqueFor a finished job keeps holding its
// key for a window after its creation, and [Client.GetByUniqueKey] reads
// its result back by the key. [Client.EnqueueMany] adds many jobs, typed ([Kind.Item]) or raw
// ([RawItem]), all or nothing, in one durable commit.
//
// # Transactions
//
// [Client.EnqueueTx] and [Kind.EnqueueTx] enqueue inside your own *sql.Tx,
// so the jobs commit or roll back with your rows: no job for a change that
// never happened, and no change without its job. The transaction must be on
// the store's database, and the store must declare the SQLTx capability
// ([store.Capabilities]; both backends do); otherwise the call returns
// [ErrTxUnsupported].
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
// Wait is woken when its own job finishes, by stores with a
// [store.Notifier] (both backends have one; PostgreSQL's reaches across
// processes), and otherwise polls slowly. Bound it with the context. Any
// number of waiters may wait at once: finishing one job wakes only its own.
//
// # Workers
//
// A [Worker] claims jobs from its queues and runs the handler registered
// for each job's kind:
//
//	w, err := spool.NewWorker(spool.WorkerConfig{
//		Store:  st,
//		Queues: map[string]spool.QueueConfig{"mail": {Concurrency: 20}},
//	})
//	if err != nil { ... } // every config mistake at once, each matching ErrInvalid
//	spool.Handle(w, SendEmail, func(ctx context.Context, t *spool.Task[Email]) error {
//		return send(ctx, t.Payload)
//	}, nil)
//	if err := w.Run(ctx); err != nil { ... } // until ctx ends, then a graceful stop
//
// A claim locks a job for [WorkerConfig].LockDuration; the worker renews the
// lock while the handler runs, so a lock only bounds how soon a crashed
// worker's jobs run elsewhere. The handler's error is the outcome: nil
// completes the job (with the result set by [Task.SetResult]); [Cancel],
// [Snooze] and [DeadLetter] say what they say; any other error, and a
// recovered panic, fails the attempt, which is retried per the
// [RetryPolicy] ([Backoff] by default). Each execution is bounded by a
// timeout through its context; a handler that ignores its context past the
// timeout plus [WorkerConfig].TimeoutGrace is given up on and its job runs
// again (see [WorkerStats]). Verdicts are written in batches. [Worker.Stop]
// (and Run, when its context ends) stops claiming, lets running jobs finish
// until its deadline, then cancels them and releases their jobs without
// spending an attempt; the [Worker] documentation gives the order. Workers
// also reap expired locks, delete finished jobs after their retention, and
// fire schedules; any number of them, in any number of processes, may share
// a store.
//
// # Schedules
//
// [Client.Schedules] manages durable recurring schedules, kept in the store
// next to the jobs: a cron spec or interval read in a time zone, the job
// each slot enqueues, and overlap and misfire policies. Workers on the store
// fire them, each slot exactly once whoever fires it:
//
//	sc, err := client.Schedules().Upsert(ctx, spool.Schedule{
//		ID:   "nightly-report",
//		Spec: "30 2 * * *",
//		Zone: "Europe/Berlin",
//		Kind: "report",
//	})
//
// Package schedule documents every field and rule; docs/schedules.md is the
// guide. Stores that keep no schedules answer [ErrSchedulesUnsupported].
//
// # Time
//
// The store's clock is the authority on time: the database's on PostgreSQL.
// Delays ([EnqueueOptions].Delay, [Snooze], retry backoff) travel as
// durations and the store adds them to its own now, so a process whose
// clock is off makes nothing run early or late. A worker measures its locks
// on its own clock, from just before each claim or renewal, and never
// compares the store's timestamps with it.
//
// Every timer of a [Worker] and a [Client] runs on the clockwork.Clock
// given as [WorkerConfig].Clock and [Config].Clock (the real clock by
// default). In tests, give them clockwork.NewFakeClock and move time with
// Advance, instead of sleeping.
//
// # Tracing, workers online and logs
//
// With an OpenTelemetry tracer provider (the global one, or
// [Config].TracerProvider and [WorkerConfig].TracerProvider), an enqueue
// makes a "send QUEUE" span whose W3C trace context is stored with the job
// in its metadata ([EnqueueOptions].Metadata, Job.Metadata; an event's
// headers for a publish), and a handler runs inside a "process QUEUE"
// span, the child of the send span on the job's first delivery and linked
// to it on retries, so a trace reads from the request that enqueued the
// job to what its handler did, across processes and spool serve. Verdicts
// are written inside "settle" spans. Without a provider nothing is traced,
// at no measurable cost.
//
// A running [Worker] heartbeats to its store ([WorkerConfig].Heartbeat):
// [Client.Workers] lists the workers online with their queues and busy
// slots. A job records when its current attempt started and how long its
// last one took (Job.AttemptedAt, Job.LastAttemptDuration). Logs go to the
// [WorkerConfig].Logger; every line about a job names it with the
// attributes job, queue, kind, tenant and attempt.
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
