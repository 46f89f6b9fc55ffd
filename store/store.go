// Package store defines the contract every Spool backend implements: the
// job and schedule models, the batch-first Store interface, the optional
// capabilities a store declares (Capabilities: schedules, notifications,
// enqueue in a caller's transaction), validation and limits, and the errors
// with their stable codes. The conformance suite in store/storetest checks
// that a backend keeps it; internal/engine writes its semantics once for the
// SQL backends.
//
// Every write takes a slice and answers per item: one bad or stale item is
// refused with its own typed error and changes nothing, while the others go
// through. Whole-call errors (a closed store, a cancelled context, a batch
// over MaxBatch) come back as the second return value and mean nothing was
// written.
package store

import (
	"context"
	"database/sql"
	"strconv"
	"time"
)

// Store is the contract every backend implements. Implementations are safe
// for concurrent use.
type Store interface {
	// Enqueue validates and inserts jobs durably, all or nothing: if any item
	// is invalid the call returns the *ItemError of each bad item (joined) and
	// writes nothing. Results are in input order. A job whose (tenant, unique
	// key) is held, by a live job, by a finished job still within its
	// UniqueFor window, or by an earlier item of the same call, is not
	// inserted; its result carries the holder's ID and state with
	// Duplicate=true. The caller's slice is not modified.
	Enqueue(ctx context.Context, jobs []EnqueueParams) ([]EnqueueResult, error)

	// Claim locks up to Limit available jobs of one queue, in priority then
	// run_at then enqueue order, for LockFor. Each returned job carries a
	// fresh LockToken. Jobs whose run_at has come are made available first. A
	// paused queue hands out nothing. A job with an ordering key is claimable
	// only when no earlier live job shares its (tenant, ordering key), nor an
	// earlier dead one that holds the key (EnqueueParams.HoldKeyWhenDead).
	Claim(ctx context.Context, p ClaimParams) ([]*Job, error)

	// Renew extends locks. Per item: nil, or ErrLockLost / ErrNotFound.
	Renew(ctx context.Context, renewals []Renewal) ([]error, error)

	// Settle applies verdicts in input order, each fenced by its lock token.
	// Per item: nil, or ErrLockLost (token stale: the job was reaped,
	// cancelled or claimed again, or an earlier verdict of the call settled
	// it), ErrNotFound, or a *ValidationError. A refused verdict changes
	// nothing. A verdict whose lock passed locked_until is still applied
	// while its token is current: no one else holds the job until the reaper
	// returns it, so finished work is not thrown away.
	Settle(ctx context.Context, verdicts []Verdict) ([]error, error)

	// ReapExpired returns up to limit running jobs whose lock expired before
	// now to available, or dead-letters them with reason max_deliveries when
	// their deliveries reached max_deliveries. Every lost lock is recorded in
	// the job's error history ("lock expired on delivery N"), so a job that
	// keeps crashing its workers shows each crash.
	ReapExpired(ctx context.Context, limit int) (ReapResult, error)

	// Get returns one job, or ErrNotFound.
	Get(ctx context.Context, id ID) (*Job, error)

	// GetByUniqueKey returns the job of tenant that holds unique key key
	// (the live job, or the finished job whose UniqueFor window is still
	// open: the job an Enqueue of the key would return), or else the most
	// recently created job with that key, finished; ErrNotFound when no
	// job has it (none was enqueued, or retention pruned them). key must
	// not be empty. It reads a finished job's result after the fact, by
	// the key it was enqueued with.
	GetByUniqueKey(ctx context.Context, tenant, key string) (*Job, error)

	// List returns jobs matching the filter in ID (enqueue) order, or
	// newest first with f.Newest, with a cursor for the next page. A bad
	// filter (CheckFilter) or limit is refused with an error matching
	// ErrInvalid.
	List(ctx context.Context, f ListParams) (*ListPage, error)

	// Cancel cancels live jobs. A running job is cancelled too: its holder's
	// settle is then refused with ErrLockLost. Per item: nil, ErrNotFound, or
	// a *StateError for a finished job.
	Cancel(ctx context.Context, ids []ID) ([]error, error)

	// Requeue makes dead or cancelled jobs available again with attempts and
	// deliveries reset; their error history is kept. Per item: nil,
	// ErrNotFound, a *StateError, or ErrDuplicate when another job holds its
	// unique key: a live one, or a finished one within its UniqueFor window
	// (so a requeue never runs a key's work twice inside a window). A
	// requeued job keeps its own window, which still counts from its
	// creation.
	Requeue(ctx context.Context, ids []ID) ([]error, error)

	// Purge deletes dead jobs matching the filter and returns how many.
	// Purging a dead job that holds its ordering key lets the key's next
	// job run.
	Purge(ctx context.Context, p PurgeParams) (int, error)

	// PauseQueue stops a queue from handing out jobs (claims return none);
	// ResumeQueue undoes it. Neither needs the queue to have jobs.
	PauseQueue(ctx context.Context, queue string) error
	ResumeQueue(ctx context.Context, queue string) error

	// Stats returns per-queue counts by state and the age of the oldest
	// available job, for every queue that has jobs or settings. Live
	// states are counted exactly; a finished state's count stops at
	// StatsCountCap (QueueStats.Capped), so that Stats stays fast however
	// many finished jobs retention keeps.
	Stats(ctx context.Context) ([]QueueStats, error)

	// Prune deletes up to Limit finished jobs whose finished_at is before the
	// cutoff for their state, and returns how many. Zero cutoffs keep that state.
	Prune(ctx context.Context, p PruneParams) (int, error)

	// Capabilities declares the optional parts of the contract this store
	// supports. A wrapper that embeds a Store forwards them unchanged; one
	// that intercepts a capability replaces its field. The conformance suite
	// fails a backend whose declared capabilities differ from the ones it is
	// tested for.
	Capabilities() Capabilities

	// Close releases the store's resources. Calls after Close fail with ErrClosed.
	Close() error
}

// Capabilities lists what a store supports beyond the job contract; a nil
// field is a capability the store does not have. Callers branch on these
// fields, never on type assertions, so a wrapper cannot drop a capability
// without saying so.
type Capabilities struct {
	// Schedules keeps recurring schedules next to the jobs.
	Schedules ScheduleStore
	// Notifier wakes waiters when jobs become claimable or finish, sooner
	// than polling would.
	Notifier Notifier
	// SQLTx enqueues inside a caller's *sql.Tx on the store's database.
	SQLTx SQLTxEnqueuer
	// Events keeps topics, subscriptions and streams of events.
	Events EventStore
	// EventsSQLTx publishes, and marks inbox entries, inside a caller's
	// *sql.Tx on the store's database.
	EventsSQLTx EventSQLTx
	// Keys keeps the API keys of spool serve.
	Keys KeyStore
	// Leases hands out short named leases, so one node does a chore for
	// all (the metrics' cluster-wide gauges).
	Leases LeaseStore
	// Health checks that the database answers and its schema is current,
	// for readiness probes.
	Health HealthChecker
	// ClaimWaiter claims with a wait: a worker that finds no job is
	// answered when one comes, rather than woken to claim again.
	ClaimWaiter ClaimWaiter
	// Workers keeps the heartbeats of the workers online.
	Workers WorkerStore
	// Bulk counts the jobs a filter selects and cancels, requeues or
	// deletes them in one statement (the dashboard's bulk actions).
	Bulk BulkStore
	// Activity keeps per-minute counts of what workers did (the
	// dashboard's charts).
	Activity ActivityStore
	// Audit keeps the log of actions taken through spool serve and its
	// dashboard.
	Audit AuditStore
	// SQS keeps the queues of spool serve's SQS facade (server/sqs).
	SQS SQSStore
}

// Names lists the capabilities present, for messages and diagnostics:
// "schedules", "notify", "sql_tx", "events", "events_sql_tx", "keys",
// "leases", "health", "claim_wait", "workers", "bulk", "activity",
// "audit", "sqs".
func (c Capabilities) Names() []string {
	var out []string
	if c.Schedules != nil {
		out = append(out, "schedules")
	}
	if c.Notifier != nil {
		out = append(out, "notify")
	}
	if c.SQLTx != nil {
		out = append(out, "sql_tx")
	}
	if c.Events != nil {
		out = append(out, "events")
	}
	if c.EventsSQLTx != nil {
		out = append(out, "events_sql_tx")
	}
	if c.Keys != nil {
		out = append(out, "keys")
	}
	if c.Leases != nil {
		out = append(out, "leases")
	}
	if c.Health != nil {
		out = append(out, "health")
	}
	if c.ClaimWaiter != nil {
		out = append(out, "claim_wait")
	}
	if c.Workers != nil {
		out = append(out, "workers")
	}
	if c.Bulk != nil {
		out = append(out, "bulk")
	}
	if c.Activity != nil {
		out = append(out, "activity")
	}
	if c.Audit != nil {
		out = append(out, "audit")
	}
	if c.SQS != nil {
		out = append(out, "sqs")
	}
	return out
}

// SQLTxEnqueuer is the capability of SQL backends to enqueue inside the
// caller's own transaction, so jobs commit or roll back with the caller's
// rows. The caller's *sql.Tx must be on the same database as the store.
type SQLTxEnqueuer interface {
	EnqueueTx(ctx context.Context, tx *sql.Tx, jobs []EnqueueParams) ([]EnqueueResult, error)
}

// Notifier is the capability of telling waiters that jobs changed. Each call
// returns a channel that is closed at the next change of that kind; the
// caller then looks again. Notifications are hints: a spurious wake-up costs
// one extra look, and a waiter must still poll slowly in case one is missed
// (a lost connection, a change made where the store cannot see it).
type Notifier interface {
	// Available is closed when jobs may have become claimable in queue.
	Available(queue string) <-chan struct{}
	// Finished is closed when the job id may have reached a finished state
	// (completed, cancelled or dead). Call release once no longer waiting,
	// so the store can forget the waiter.
	Finished(id ID) (ch <-chan struct{}, release func())
}

// ClaimWaiter is a store whose claims can wait for jobs: over a network
// (store/remote), a claim that waits on the server for the next job is one
// round trip where a wake-up and then a claim are two.
type ClaimWaiter interface {
	// ClaimWait claims as Claim does. When no job is claimable it waits, up
	// to wait, for one and claims again; it may return none. waited is how
	// long after the call began, at least, the claim that returned the jobs
	// began: their locks run from then, not from the call. A call whose ctx
	// ends while the server has just claimed leaves those jobs to their
	// locks' expiry, as a crash would.
	ClaimWait(ctx context.Context, p ClaimParams, wait time.Duration) (jobs []*Job, waited time.Duration, err error)
}

// EnqueueParams describes one job to insert. Zero fields take the defaults
// documented on each.
type EnqueueParams struct {
	ID       ID     // zero: a new ID is made
	Queue    string // default "default"
	Kind     string // required
	Payload  []byte // at most MaxPayloadBytes
	Priority int    // MinPriority..MaxPriority, lower runs first; default 0
	// RunAt is when the job may run. Zero means Delay after now by the
	// store's clock (the database's on PostgreSQL), so producers whose
	// clocks are off never make jobs run early or late.
	RunAt time.Time
	// Delay, when RunAt is zero, postpones the job; not negative. Setting
	// both is refused.
	Delay       time.Duration
	Tenant      string
	UniqueKey   string // dedupe among live jobs of the same tenant (and see UniqueFor)
	OrderingKey string // one at a time, in enqueue order, per tenant
	// UniqueFor keeps UniqueKey held after the job finishes: until
	// UniqueFor after the job's creation (created_at, by the store's
	// clock; kept as Job.UniqueUntil), an enqueue of the same (tenant,
	// unique key) returns this job with Duplicate set, even once it has
	// completed, been cancelled or died; after that a new job is made.
	// The window is the job's own: it holds the key against every later
	// enqueue of it, whatever their UniqueFor. Zero: only a live job
	// dedupes. Needs UniqueKey; 0..MaxUniqueFor. Retention still prunes
	// the finished job on its own schedule, and a pruned job no longer
	// dedupes.
	UniqueFor time.Duration
	// MaxAttempts defaults to DefaultMaxAttempts; MaxDeliveries to DefaultMaxDeliveries.
	MaxAttempts   int
	MaxDeliveries int
	// Attempts and Errors start the job with failed attempts already
	// recorded: work that failed elsewhere and continues here, such as an
	// event that failed inside a batch delivery and becomes a delivery of
	// its own. Attempts is below MaxAttempts; at most MaxErrorHistory errors.
	Attempts int
	Errors   []AttemptError
	// HoldKeyWhenDead makes the job, once dead, keep its ordering key's
	// line blocked until it is requeued (it runs again, still first in
	// line) or purged (the line moves on to the next job); by default a
	// dead job leaves the line at once. Needs OrderingKey. Cancel refuses
	// a dead job, so it does not unblock the key; Prune deleting the dead
	// job does. Ordered subscriptions set it on their deliveries when
	// their OnDeadHead is DeadHeadBlock.
	HoldKeyWhenDead bool
	// Metadata is a small map of strings kept with the job and handed to
	// its handler: trace context (MetadataTraceparent, set by the Client
	// when tracing is on), correlation IDs. At most MaxMetadata entries of
	// MaxMetadataBytes in all. The map is copied; the caller's is not kept.
	Metadata map[string]string
}

// HasHistory reports whether p starts with recorded attempts or errors.
func (p *EnqueueParams) HasHistory() bool { return p.Attempts > 0 || len(p.Errors) > 0 }

// EnqueueResult reports what happened to one EnqueueParams.
type EnqueueResult struct {
	ID        ID    // the new job, or the job holding the unique key (live, or finished within its UniqueFor window)
	Duplicate bool  // true when an existing job was returned instead of inserting
	State     State // state of the job ID names
}

// ItemError says which item of a batch was refused and why.
type ItemError struct {
	Index int
	Err   error
}

func (e *ItemError) Error() string { return "item " + strconv.Itoa(e.Index) + ": " + e.Err.Error() }

// Unwrap returns the item's error.
func (e *ItemError) Unwrap() error { return e.Err }

// ClaimParams asks for jobs from one queue.
type ClaimParams struct {
	Queue   string
	Limit   int           // 1..MaxClaim; default 1
	LockFor time.Duration // MinLockDuration..MaxLockDuration
	Worker  string        // optional, for diagnostics
}

// Renewal extends one lock to now+LockFor.
type Renewal struct {
	ID      ID
	Token   LockToken
	LockFor time.Duration
}

// Outcome is the kind of verdict a settle carries.
type Outcome uint8

// Verdict outcomes.
const (
	Complete   Outcome = iota + 1 // finished successfully, with an optional Result
	Fail                          // attempt failed: retry at RetryAt, or dead-letter if attempts are spent
	DeadLetter                    // fail for good now
	Cancel                        // finish as cancelled
	Snooze                        // run again at RetryAt without spending an attempt
	Release                       // hand back unprocessed: available now, no attempt spent, delivery given back
)

var outcomeNames = [...]string{"", "complete", "fail", "dead_letter", "cancel", "snooze", "release"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Verdict settles one delivery.
type Verdict struct {
	ID      ID
	Token   LockToken
	Outcome Outcome
	Result  []byte        // Complete: optional output, at most MaxResultBytes
	Error   *AttemptError // Fail, DeadLetter, Cancel: recorded in the job's history (At and Attempt are filled in)
	// RetryAt is, for Fail and Snooze, when to run again. Zero means Delay
	// after now by the store's clock, which is how workers say it: their
	// clocks may be off.
	RetryAt time.Time
	// Delay, when RetryAt is zero, postpones the next run; not negative.
	Delay time.Duration
}

// ReapResult counts what ReapExpired did.
type ReapResult struct {
	Returned     int // back to available
	DeadLettered int // reached max deliveries
}

// ListParams filters List. Zero fields do not filter. The filter fields
// (all but After, Limit and Newest) also select the jobs of the bulk
// actions (BulkStore).
type ListParams struct {
	Queue  string
	Kind   string
	Tenant string
	States []State
	// UniqueKey and OrderingKey select the jobs enqueued with that key.
	UniqueKey   string
	OrderingKey string
	// CreatedAfter and CreatedBefore bound created_at: jobs created at or
	// after CreatedAfter and before CreatedBefore (by the store's clock,
	// kept to the microsecond). CreatedAfter later than CreatedBefore is
	// refused.
	CreatedAfter  time.Time
	CreatedBefore time.Time

	// Newest lists in descending ID order (newest first); After then
	// means "older than".
	Newest bool
	After  ID  // cursor: only jobs past this ID in the listing's order (use ListPage.Next)
	Limit  int // 1..MaxListLimit; default DefaultListLimit
}

// ListPage is one page of List.
type ListPage struct {
	Jobs []*Job
	Next ID // pass as ListParams.After for the next page; zero when this is the last page
}

// PurgeParams selects dead jobs to delete. Zero fields do not filter.
type PurgeParams struct {
	Queue string
	IDs   []ID
}

// PruneParams sets, per finished state, the finished_at before which jobs are deleted.
type PruneParams struct {
	CompletedBefore time.Time
	CancelledBefore time.Time
	DeadBefore      time.Time
	Limit           int // at most this many rows per call, 1..MaxPruneLimit; default DefaultPruneLimit
}

// StatsCountCap is where Stats stops counting a queue's jobs in one
// finished state (completed, cancelled, dead): past it, the count is the
// cap and the state is listed in QueueStats.Capped.
const StatsCountCap = 10_000

// QueueStats describes one queue.
type QueueStats struct {
	Queue  string
	Paused bool
	// Counts has a count for every state: exact for the live states, at
	// most StatsCountCap for the finished ones.
	Counts map[State]int
	// Capped lists, in the order of States, the finished states whose
	// count stopped at StatsCountCap: the queue has at least that many
	// jobs in each. Nil when every count is exact.
	Capped []State
	// OldestAvailable is the age of the longest-waiting available job, zero when none.
	OldestAvailable time.Duration
}
