// Package engine writes Spool's store semantics once, over narrow
// per-backend operations.
//
// A backend (store/sqlite, store/postgres) implements Driver: small reads
// and writes on input that is already valid, each keeping the backend's own
// concurrency model (SQLite's single writer with group commit, PostgreSQL's
// transactions with SKIP LOCKED). The engine's Store wraps a Driver and
// implements store.Store and store.ScheduleStore on top of it: validation
// and defaults, limits, the order claimed jobs come back in, the shape of
// stats, and every schedule rule — upserts with versions and the
// keep-next-slot rule, firing decisions, the skip rule for a schedule that
// cannot fire, triggers, pause, resume and delete. So every backend behaves
// alike by construction, and a new feature is written here once plus one
// narrow operation per backend.
//
// The HTTP remote store is the other kind of backend: it implements
// store.Store directly, as a client of a server that runs this engine.
package engine

import (
	"context"
	"database/sql"
	"time"

	"github.com/spoolrun/spool/store"
)

// Driver is the per-backend half of a store. Every method receives input the
// engine has validated and normalized; per-item answers go into the errs
// slice the engine passes, where a non-nil entry means "refused already:
// leave it alone". Drivers return whole-call errors as store.ErrClosed when
// the store is closed.
type Driver interface {
	// Now is the store's clock: the one authority for run_at, lock expiry
	// and reaping (the database's clock on PostgreSQL).
	Now() time.Time

	// InsertJobs inserts normalized jobs (IDs set, RunAt resolved) and
	// answers each in order. A job is scheduled when its RunAt is after
	// b.Now, else available; its created_at is b.Now, and with UniqueFor
	// its unique_until is b.Now plus UniqueFor. A job whose (tenant, unique
	// key) is held (by a live job, a finished job whose unique_until is
	// after b.Now, or an earlier job of the call) is not inserted: its
	// result names the holder and its state, with Duplicate. A finished job
	// whose window has passed gives the key up to the new job. A taken ID
	// fails the call with an *ItemError.
	InsertJobs(ctx context.Context, b Insert) ([]store.EnqueueResult, error)

	// ClaimJobs is store.Store.Claim on normalized params, in any order.
	ClaimJobs(ctx context.Context, p store.ClaimParams) ([]*store.Job, error)

	// RenewLocks renews the renewals whose errs entry is nil and sets it to
	// store.ErrLockLost or a not-found error for each one it could not renew.
	RenewLocks(ctx context.Context, renewals []store.Renewal, errs []error) error

	// SettleJobs applies the verdicts whose errs entry is nil (RetryAt
	// resolved), in input order, each fenced by its token, and sets errs for
	// the ones it refuses (store.ErrLockLost, a not-found error).
	SettleJobs(ctx context.Context, verdicts []store.Verdict, errs []error) error

	// ReapExpired is store.Store.ReapExpired with a checked limit.
	ReapExpired(ctx context.Context, limit int) (store.ReapResult, error)

	// GetJob returns one job or store.JobNotFound.
	GetJob(ctx context.Context, id store.ID) (*store.Job, error)

	// GetByUniqueKey is store.Store.GetByUniqueKey on checked arguments:
	// the job holding the key (live, or finished within its window), else
	// the newest finished job with it, else a *store.NotFoundError.
	GetByUniqueKey(ctx context.Context, tenant, key string) (*store.Job, error)

	// ListJobs returns up to p.Limit+1 jobs matching p (checked, its
	// created bounds normalized by Filter) in ID order, descending with
	// p.Newest, after the cursor p.After in that order.
	ListJobs(ctx context.Context, p store.ListParams) ([]*store.Job, error)

	// CancelJobs cancels live jobs, one answer per id in errs: nil, a
	// not-found error, or a *store.StateError (also for the second mention
	// of a job the call cancelled).
	CancelJobs(ctx context.Context, ids []store.ID, errs []error) error

	// RequeueJobs requeues dead or cancelled jobs, one answer per id in errs:
	// nil, a not-found error, a *store.StateError, or an error matching
	// store.ErrDuplicate when another job holds the job's unique key (a
	// live one, or a finished one whose unique_until is after now; one
	// whose window has passed gives the key up).
	RequeueJobs(ctx context.Context, ids []store.ID, errs []error) error

	// PurgeDead deletes dead jobs matching checked params.
	PurgeDead(ctx context.Context, p store.PurgeParams) (int, error)

	// SetQueuePaused records a queue's paused flag (a valid name).
	SetQueuePaused(ctx context.Context, queue string, paused bool) error

	// CountJobs counts jobs per queue and state, and lists queue settings:
	// live states exactly, finished states up to finishedCap+1 per queue
	// (so that the engine can tell a count that reached the cap).
	CountJobs(ctx context.Context, finishedCap int) (*Counts, error)

	// PruneFinished deletes up to p.Limit finished jobs past the cutoffs.
	PruneFinished(ctx context.Context, p store.PruneParams) (int, error)

	// Close releases the driver's resources.
	Close() error

	// Notifier is the driver's wake-ups, or nil.
	Notifier() store.Notifier
	// SQLTx is the driver's enqueue in a caller's *sql.Tx, or nil.
	SQLTx() TxInserter
	// Schedules is the driver's schedule storage, or nil.
	Schedules() ScheduleDriver
	// Events is the driver's event storage, or nil.
	Events() EventDriver
	// Keys is the driver's API key storage, or nil.
	Keys() KeyDriver
	// Leases is the driver's lease storage, or nil.
	Leases() LeaseDriver
	// Health is the driver's readiness check, or nil.
	Health() HealthDriver
	// Workers is the driver's storage of workers online, or nil.
	Workers() WorkerDriver
	// SQS is the driver's storage of the SQS facade's queues, or nil.
	SQS() SQSDriver
	// Bulk is the driver's bulk actions over a filter, or nil.
	Bulk() BulkDriver
	// Activity is the driver's per-minute activity, or nil.
	Activity() ActivityDriver
	// Audit is the driver's audit log, or nil.
	Audit() AuditDriver
}

// Insert is a batch of normalized jobs to insert.
type Insert struct {
	Jobs []store.EnqueueParams
	Now  time.Time
	// Fresh says no job can be skipped: the engine made every ID in this
	// call (fresh UUIDv7s never collide) and no job has a unique key. A
	// driver may then insert without the work that sorts out skipped rows.
	Fresh bool
}

// Counts is what CountJobs reads: one row per (queue, state) with jobs (a
// row may count none), and every queue with settings.
type Counts struct {
	Rows   []CountRow
	Paused map[string]bool // every queue with settings, and its paused flag
}

// CountRow is the jobs of one queue in one state.
type CountRow struct {
	Queue  string
	State  store.State
	N      int
	Oldest time.Time // the smallest run_at among them
}

// TxInserter inserts jobs inside a caller's transaction.
type TxInserter interface {
	// InsertJobsTx is InsertJobs on the caller's tx, inside a savepoint so a
	// refused batch leaves tx usable. Wake-ups go out when tx commits.
	InsertJobsTx(ctx context.Context, tx *sql.Tx, jobs []store.EnqueueParams, now time.Time) ([]store.EnqueueResult, error)
}

// ScheduleDriver keeps schedules.
type ScheduleDriver interface {
	// Tx runs fn in one transaction and commits when fn returns nil. fn may
	// run more than once (a deadlock retried, a group commit's savepoint
	// fallback), so it must start from scratch each time. Jobs fn inserts
	// wake workers once the transaction commits. grows marks a transaction
	// that inserts jobs, which a full store refuses.
	Tx(ctx context.Context, grows bool, fn func(tx ScheduleTx) error) error

	// GetSchedule returns one schedule, or nil when there is none.
	GetSchedule(ctx context.Context, ref store.ScheduleRef) (*store.Schedule, error)

	// ListSchedules returns up to p.Limit+1 of one tenant's schedules with
	// IDs after p.After, in ID order.
	ListSchedules(ctx context.Context, p store.ScheduleListParams) ([]*store.Schedule, error)

	// PeekNextDue returns the earliest next_run_at of an unpaused schedule
	// (zero: none), read without locks or the write lock, so that a FireDue
	// with nothing due costs one cheap read.
	PeekNextDue(ctx context.Context) (time.Time, error)
}

// ScheduleTx is one schedule transaction. Its methods run in order on the
// transaction's connection and are not safe for concurrent use.
type ScheduleTx interface {
	// Now is the store's time for the whole transaction.
	Now() time.Time

	// LockSchedules reads the schedules refs name and locks them until the
	// transaction ends; missing ones are absent from the map.
	LockSchedules(refs []store.ScheduleRef) (map[store.ScheduleRef]*store.Schedule, error)

	// LockDue reads and locks up to limit due schedules (not paused,
	// next_run_at at or before Now), oldest next_run_at first, passing over
	// schedules another transaction holds.
	LockDue(limit int) ([]*store.Schedule, error)

	// JobStates returns the state of each of ids that exists.
	JobStates(ids []store.ID) (map[store.ID]store.State, error)

	// HoldLive returns those of ids whose jobs are live, and keeps them from
	// finishing until the transaction ends (a share lock). A job another
	// transaction is finishing is waited for, and not returned if it
	// finished.
	HoldLive(ids []store.ID) (map[store.ID]bool, error)

	// InsertJobs is Driver.InsertJobs inside the transaction.
	InsertJobs(jobs []store.EnqueueParams) ([]store.EnqueueResult, error)

	// InsertSchedules creates schedules with their definition, Paused,
	// Version and NextRunAt as given, and reports which it created: false
	// for one that exists (created by another transaction meanwhile).
	InsertSchedules(scs []*store.Schedule) ([]bool, error)

	// UpdateSchedules replaces existing schedules' definitions with Version
	// and NextRunAt as given, leaving their state (pause, runs, counters).
	UpdateSchedules(scs []*store.Schedule) error

	// SetPaused sets the paused flag of existing schedules and, where next
	// is not nil, their next_run_at (next[i] zero stores none).
	SetPaused(refs []store.ScheduleRef, paused bool, next []time.Time) error

	// DeleteSchedules deletes existing schedules.
	DeleteSchedules(refs []store.ScheduleRef) error

	// RecordFired stores what firing or triggering did to locked schedules.
	RecordFired(recs []Fired) error

	// NextDue returns the earliest next_run_at of an unpaused schedule, zero
	// if none. When afterNow is set it counts only slots after Now: the call
	// took every due schedule it could lock, so a still-due one is held by
	// another transaction and not for this caller.
	NextDue(afterNow bool) (time.Time, error)
}

// Fired is what firing (or triggering) one schedule changes on it.
type Fired struct {
	Ref store.ScheduleRef
	// SetNext says to store Next as next_run_at (zero stores none); a
	// trigger leaves it.
	SetNext bool
	Next    time.Time
	// Last is the newest slot enqueued; zero keeps the stored one.
	Last time.Time
	// Live is the newest run, now the live one; zero keeps the stored one.
	Live store.ID
	// Counters to add.
	Fired, Skipped, Dropped int
	// Recent replaces the recent runs when not nil.
	Recent []store.ScheduleRun
}
