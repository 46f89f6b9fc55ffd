package store

import (
	"context"
	"time"
)

// BulkStore is the capability of acting on every job a filter selects in
// one statement, so a dashboard retries or cancels a million jobs without
// a million calls (Capabilities.Bulk). The filter is a ListParams whose
// After, Limit and Newest are ignored, except by CountJobs, which counts up
// to Limit.
type BulkStore interface {
	// CountJobs counts the jobs f selects. With f.Limit > 0 it stops
	// counting at f.Limit and reports capped=true when more match, so a
	// count over millions of rows stays fast.
	CountJobs(ctx context.Context, f ListParams) (n int, capped bool, err error)

	// BulkJobs applies action to every job f selects that the action
	// applies to, with the same semantics as the per-job calls, and returns
	// how many jobs it changed:
	//   - BulkCancel cancels live jobs (as Cancel; a running job's holder
	//     is then refused with ErrLockLost);
	//   - BulkRequeue makes dead and cancelled jobs available again (as
	//     Requeue), skipping any whose unique key another job holds;
	//   - BulkDelete deletes jobs that are not running (a running job must
	//     be cancelled first); deleting a dead job that holds its ordering
	//     key lets the key's next job run, as Purge does.
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
	// the store's now. Minutes older than ActivityRetention are deleted.
	AddActivity(ctx context.Context, counts []QueueActivity) error

	// Activity returns the rows of the minutes from since on (truncated to
	// the minute), oldest first, then by queue. A tenant other than
	// AllTenants limits them to that tenant's queues (named "tenant/...").
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
	// RecordAudit appends an entry; the store sets its ID and At.
	RecordAudit(ctx context.Context, e AuditEntry) (*AuditEntry, error)
	// ListAudit returns entries newest first: those of one tenant, or all
	// with AllTenants; Before (an entry ID, 0 for the newest) pages.
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
	Tenant string
	Before int64 // only entries with a smaller ID; 0: from the newest
	Limit  int   // 1..MaxListLimit; default DefaultListLimit
}
