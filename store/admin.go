package store

import (
	"context"
	"time"
)

// BulkStore is the capability of acting on every job a filter selects in
// one statement, so a dashboard retries or cancels a million jobs without
// a million calls (Capabilities.Bulk). The filter is a ListParams whose
// After, Limit and Newest are ignored, except by CountJobs, which counts up
// to Limit. A filter is checked as List checks it (CheckFilter): a bad one
// is refused with an error matching ErrInvalid and changes nothing. A
// Tenant selects that tenant's jobs exactly; "" selects every tenant's.
type BulkStore interface {
	// CountJobs counts the jobs f selects. With f.Limit > 0 it stops
	// counting at f.Limit and reports capped=true when more match, so a
	// count over millions of rows stays fast; f.Limit 0 counts them all,
	// and may take a while. A negative Limit is refused.
	CountJobs(ctx context.Context, f ListParams) (n int, capped bool, err error)

	// BulkJobs applies action to every job f selects that the action
	// applies to, with the same semantics as the per-job calls, and returns
	// how many jobs it changed (f.States narrows the states the action
	// touches; a filter that leaves none changes nothing):
	//   - BulkCancel cancels live jobs (as Cancel; a running job's holder
	//     is then refused with ErrLockLost);
	//   - BulkRequeue makes dead and cancelled jobs available again (as
	//     Requeue), skipping any whose unique key another job holds: a live
	//     one, or a finished one within its UniqueFor window (a finished
	//     holder whose window has passed gives the key up). Of several
	//     selected jobs with the same (tenant, unique key), one is
	//     requeued: the one that holds the key, else the first in ID order;
	//   - BulkDelete deletes jobs that are not running (a running job must
	//     be cancelled first); deleting a dead job that holds its ordering
	//     key, or a live job that heads its key's line, lets the key's next
	//     job run, as Purge does; deleting a schedule's live run releases
	//     the schedule as the run finishing would.
	// An unknown action is refused with an error matching ErrInvalid.
	BulkJobs(ctx context.Context, action BulkAction, f ListParams) (int, error)
}

// BulkAction is what BulkJobs does.
type BulkAction string

// The bulk actions.
const (
	BulkCancel  BulkAction = "cancel"
	BulkRequeue BulkAction = "requeue"
	BulkDelete  BulkAction = "delete"
)

// ActivityStore is the capability of keeping per-minute counts of what the
// workers did, per queue, for the dashboard's charts (Capabilities.Activity).
// Whoever talks to the database records: a Worker on the store records its
// own deliveries; spool serve records the claims and verdicts it serves to
// remote workers.
type ActivityStore interface {
	// AddActivity adds counts to the per-queue rows of the minute holding
	// the store's now; entries for one queue are added together, empty
	// ones skipped. An entry with a bad queue name or a negative count is
	// refused (a *ValidationError in an *ItemError) and nothing is added;
	// at most MaxBatch entries. Minutes older than ActivityRetention are
	// deleted now and then (not on every call).
	AddActivity(ctx context.Context, counts []QueueActivity) error

	// Activity returns the rows of the minutes from since on (truncated to
	// the minute, and no further back than ActivityRetention), oldest
	// first, then by queue (byte-wise). A tenant other than AllTenants
	// limits them to that tenant's queues: those named "tenant/..." and
	// its subscriptions' delivery queues, "sub/tenant/..." (the names
	// spool serve gives a tenant's queues). A tenant that is not a valid
	// name is refused.
	Activity(ctx context.Context, tenant string, since time.Time) ([]ActivityMinute, error)
}

// ActivityRetention is how long per-minute activity is kept.
const ActivityRetention = 24 * time.Hour

// PickupBounds are the upper bounds, in milliseconds, of the pickup-latency
// histogram's buckets (QueueActivity.Pickup); the last bucket counts the
// rest.
var PickupBounds = [...]float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000}

// NumPickupBuckets is the length of QueueActivity.Pickup.
const NumPickupBuckets = len(PickupBounds) + 1

// QueueActivity counts what happened to one queue's jobs.
type QueueActivity struct {
	Queue     string `json:"queue"`
	Completed int64  `json:"completed"`
	// Failed counts failed attempts that will be retried; Dead the jobs
	// dead-lettered.
	Failed int64 `json:"failed"`
	Dead   int64 `json:"dead"`
	// Pickup is a histogram of pickup latency, from when a job was due to
	// when a worker claimed it: Pickup[i] counts claims at most
	// PickupBounds[i] ms (and above the bound before), the last one the
	// rest.
	Pickup [NumPickupBuckets]int64 `json:"pickup"`
}

// Empty reports whether a has nothing to add.
func (a *QueueActivity) Empty() bool {
	if a.Completed != 0 || a.Failed != 0 || a.Dead != 0 {
		return false
	}
	for _, n := range a.Pickup {
		if n != 0 {
			return false
		}
	}
	return true
}

// ActivityMinute is one queue's counts in one minute.
type ActivityMinute struct {
	Minute time.Time `json:"minute"`
	QueueActivity
}

// AuditStore is the capability of keeping a log of actions taken through
// spool serve and its dashboard (Capabilities.Audit).
type AuditStore interface {
	// RecordAudit appends an entry; the store sets its ID (larger than
	// every earlier entry's) and At (its clock, to the microsecond). An
	// entry without a valid Action, with a bad Tenant or KeyID, a negative
	// Count, or a Target over MaxAuditText is refused (ErrInvalid) and not
	// recorded; a Detail over MaxAuditText is cut to it.
	RecordAudit(ctx context.Context, e AuditEntry) (*AuditEntry, error)
	// ListAudit returns up to Limit entries newest first: those whose
	// Tenant is p.Tenant exactly (so "" lists the entries about every
	// tenant), or all with AllTenants; Before (an entry ID, 0 for the
	// newest) pages: pass the last entry's ID.
	ListAudit(ctx context.Context, p AuditListParams) ([]*AuditEntry, error)
}

// AuditEntry is one action.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Tenant string    `json:"tenant,omitempty"` // the tenant acted on ("" for all)
	KeyID  string    `json:"key_id,omitempty"` // the key that acted ("" without auth)
	// Action names what was done, such as "jobs.cancel", "jobs.bulk_requeue",
	// "queue.pause", "schedule.trigger", "key.create".
	Action string `json:"action"`
	// Target names what it was done to: a job ID, a queue, a schedule, a
	// filter's description.
	Target string `json:"target,omitempty"`
	// Count is how many jobs or items the action changed.
	Count int `json:"count"`
	// Detail is free text, such as an error a failed action met.
	Detail string `json:"detail,omitempty"`
}

// AuditListParams pages ListAudit.
type AuditListParams struct {
	Tenant string // one tenant's entries ("" included), or AllTenants
	Before int64  // only entries with a smaller ID; 0: from the newest
	Limit  int    // 1..MaxListLimit; default DefaultListLimit
}
