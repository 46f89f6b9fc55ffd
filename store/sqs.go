package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// SQSStore is the capability of keeping the queues of spool serve's SQS
// facade (Capabilities.SQS; package server/sqs). It keeps each queue's
// settings (its SQS attributes and tags, as text the facade reads and
// checks), and it has the few job operations SQS needs beyond the job
// contract: counting one queue's jobs by how SQS sees them, deleting them,
// completing a delivery that ended unsettled while no one has claimed the
// job since, and moving dead jobs into another queue.
//
// Queues are named as the job table names them: a tenant's queue is stored
// under the tenant's prefix ("acme/orders"), which the facade adds.
type SQSStore interface {
	// CreateSQSQueue stores q's settings unless the queue has settings
	// already, live or deleted (DeletedAt set). It returns the settings as
	// stored, and whether this call made them. CreatedAt and UpdatedAt are
	// set by the store.
	CreateSQSQueue(ctx context.Context, q SQSQueue) (*SQSQueue, bool, error)

	// GetSQSQueue returns one queue's settings, deleted ones included, or
	// an error matching ErrNotFound.
	GetSQSQueue(ctx context.Context, queue string) (*SQSQueue, error)

	// ListSQSQueues returns the queues whose names start with p.Prefix and
	// sort after p.After, in byte order, up to p.Limit, deleted ones
	// included.
	ListSQSQueues(ctx context.Context, p SQSQueueListParams) ([]*SQSQueue, error)

	// UpdateSQSQueue changes a live queue's settings in one statement, so
	// two updates of different attributes both apply, and returns them as
	// they stand after it. An error matching ErrNotFound when the queue has
	// no settings or is deleted.
	UpdateSQSQueue(ctx context.Context, queue string, u SQSQueueUpdate) (*SQSQueue, error)

	// RemoveSQSQueue deletes a queue's settings for good, deleted or not;
	// ErrNotFound when it has none. Its jobs are left alone: delete them
	// first (DeleteQueueJobs).
	RemoveSQSQueue(ctx context.Context, queue string) error

	// DeleteQueueJobs deletes up to p.Limit of a queue's scheduled,
	// available, running and dead jobs created before p.Before (zero: all
	// of them) and returns how many. A running job's holder is then
	// refused (not found) at its settle. Completed and cancelled jobs are
	// left to retention.
	DeleteQueueJobs(ctx context.Context, p DeleteQueueJobsParams) (int, error)

	// CountQueueJobs counts one queue's live and dead jobs, as of the
	// store's now.
	CountQueueJobs(ctx context.Context, queue string) (QueueDepth, error)

	// CountRunning counts one queue's running jobs alone: QueueDepth's
	// Running, without the cost of counting a large backlog.
	CountRunning(ctx context.Context, queue string) (int, error)

	// CompleteUnclaimed completes jobs whose last delivery ended without a
	// verdict (its lock expired and the reaper returned the job, or it was
	// snoozed) and that no one has claimed since: for each delivery, the
	// job is completed when it is in queue d.Queue, is not running, and
	// its deliveries still equal d.Deliveries. Per item: nil when it
	// completed the job, or the job was completed already with those
	// deliveries (a retry); ErrLockLost when the job was claimed again
	// since, is running, or finished otherwise; ErrNotFound when no job of
	// d.Queue has the ID.
	CompleteUnclaimed(ctx context.Context, ds []Delivery) ([]error, error)

	// RedriveDead moves up to p.Limit dead jobs of queue p.From into queue
	// p.To, oldest first, and returns how many. A moved job keeps its ID,
	// payload, metadata, creation time and error history; it becomes
	// available now with its attempts and deliveries at zero (as Requeue
	// does), gives up its unique key, takes p.MaxDeliveries when it is
	// set, and an ordering key starting with p.FromKeyPrefix starts with
	// p.ToKeyPrefix instead (a dead-letter queue's own line).
	RedriveDead(ctx context.Context, p RedriveParams) (int, error)
}

// SQSQueue is the stored settings of one queue of the SQS facade.
type SQSQueue struct {
	// Queue is the queue's stored name: the tenant's prefix and the SQS
	// queue name ("acme/orders.fifo").
	Queue string
	// Attributes are the queue's SQS attributes that were set, by their
	// SQS names ("VisibilityTimeout": "30"); the facade fills in defaults.
	Attributes map[string]string
	// Tags are the queue's tags.
	Tags map[string]string
	// CreatedAt is when the queue was made; UpdatedAt when its attributes
	// last changed. Both by the store's clock.
	CreatedAt time.Time
	UpdatedAt time.Time
	// DeletedAt is when the queue was deleted, zero while it lives: a
	// deleted queue keeps its settings until its jobs are gone.
	DeletedAt time.Time
}

// Deleted reports whether the queue was deleted.
func (q *SQSQueue) Deleted() bool { return !q.DeletedAt.IsZero() }

// SQSQueueListParams pages ListSQSQueues.
type SQSQueueListParams struct {
	Prefix string // only queues whose stored names start with it
	After  string // only queues whose names sort after it
	Limit  int    // 1..MaxListLimit; default DefaultListLimit
}

// SQSQueueUpdate is a change to a queue's settings. Zero fields change
// nothing.
type SQSQueueUpdate struct {
	// Attributes to set; an empty value removes the attribute.
	Attributes map[string]string
	// Tags to set, and tag keys to remove (after setting).
	Tags  map[string]string
	Untag []string
	// Delete marks the queue deleted from now on.
	Delete bool
}

// DeleteQueueJobsParams selects the jobs DeleteQueueJobs deletes.
type DeleteQueueJobsParams struct {
	Queue string
	// Before, when set, limits the deletion to jobs created before it.
	Before time.Time
	Limit  int // 1..MaxPruneLimit; default DefaultPruneLimit
}

// QueueDepth counts one queue's jobs by how a consumer sees them.
type QueueDepth struct {
	Available int // claimable now: available, and scheduled ones whose run_at has come
	Running   int // held by a lock
	Delayed   int // scheduled for later
	Dead      int // dead letters
}

// Delivery names one delivery of a job: the job, the queue it is in, and
// its deliveries count as the claim that made the delivery returned it.
type Delivery struct {
	ID         ID
	Queue      string
	Deliveries int
}

// RedriveParams says which dead jobs RedriveDead moves, and where.
type RedriveParams struct {
	From, To string
	Limit    int // 1..MaxBatch; default DefaultListLimit
	// MaxDeliveries, when set, replaces the moved jobs' max deliveries.
	MaxDeliveries int
	// FromKeyPrefix and ToKeyPrefix rewrite ordering keys (both or
	// neither): a key starting with FromKeyPrefix starts with ToKeyPrefix
	// in the new queue.
	FromKeyPrefix, ToKeyPrefix string
}

// Limits of SQS queue settings.
const (
	MaxSQSAttributes      = 64       // attributes of a queue
	MaxSQSAttributesBytes = 64 << 10 // names and values together
	MaxSQSAttributeName   = 128
	MaxSQSTags            = 50 // SQS's own limit
	MaxSQSTagKey          = 128
	MaxSQSTagValue        = 256
)

// Check validates a queue's settings before they are stored.
func (q *SQSQueue) Check() error {
	return errors.Join(ValidName("queue", q.Queue, false), checkSQSAttributes(q.Attributes, false), checkSQSTags(q.Tags, nil))
}

// Check validates an update before it is applied.
func (u *SQSQueueUpdate) Check() error {
	return errors.Join(checkSQSAttributes(u.Attributes, true), checkSQSTags(u.Tags, u.Untag))
}

// Empty reports whether u changes nothing.
func (u *SQSQueueUpdate) Empty() bool {
	return len(u.Attributes) == 0 && len(u.Tags) == 0 && len(u.Untag) == 0 && !u.Delete
}

func checkSQSAttributes(attrs map[string]string, update bool) error {
	var errs []error
	if len(attrs) > MaxSQSAttributes {
		errs = append(errs, &LimitError{Field: "sqs attributes", Limit: MaxSQSAttributes, Got: len(attrs)})
	}
	size := 0
	for k, v := range attrs {
		size += len(k) + len(v)
		switch {
		case k == "" || len(k) > MaxSQSAttributeName:
			errs = append(errs, &ValidationError{Field: "sqs attribute name", Reason: fmt.Sprintf("%q must be 1 to %d bytes", k, MaxSQSAttributeName)})
		case v == "" && !update:
			errs = append(errs, &ValidationError{Field: "sqs attribute " + k, Reason: "is empty"})
		case !textOK(k) || !textOK(v):
			errs = append(errs, &ValidationError{Field: "sqs attribute " + k, Reason: "is not UTF-8 text without NUL bytes"})
		}
	}
	if size > MaxSQSAttributesBytes {
		errs = append(errs, &LimitError{Field: "sqs attributes size", Limit: MaxSQSAttributesBytes, Got: size})
	}
	return errors.Join(errs...)
}

func checkSQSTags(tags map[string]string, untag []string) error {
	var errs []error
	if len(tags) > MaxSQSTags {
		errs = append(errs, &LimitError{Field: "sqs tags", Limit: MaxSQSTags, Got: len(tags)})
	}
	for k, v := range tags {
		if k == "" || len(k) > MaxSQSTagKey || !textOK(k) {
			errs = append(errs, &ValidationError{Field: "sqs tag key", Reason: fmt.Sprintf("%q must be 1 to %d bytes of text", k, MaxSQSTagKey)})
		}
		if len(v) > MaxSQSTagValue || !textOK(v) {
			errs = append(errs, &ValidationError{Field: "sqs tag " + k, Reason: fmt.Sprintf("must be at most %d bytes of text", MaxSQSTagValue)})
		}
	}
	if len(untag) > MaxSQSTags {
		errs = append(errs, &LimitError{Field: "sqs tag keys to remove", Limit: MaxSQSTags, Got: len(untag)})
	}
	for _, k := range untag {
		if k == "" || len(k) > MaxSQSTagKey || !textOK(k) {
			errs = append(errs, &ValidationError{Field: "sqs tag key", Reason: fmt.Sprintf("%q must be 1 to %d bytes of text", k, MaxSQSTagKey)})
		}
	}
	return errors.Join(errs...)
}

// textOK reports whether s is UTF-8 without NUL bytes.
func textOK(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// Normalize fills defaults into p and validates it.
func (p *SQSQueueListParams) Normalize() error {
	if p.Limit == 0 {
		p.Limit = DefaultListLimit
	}
	if p.Limit < 1 || p.Limit > MaxListLimit {
		return &ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, MaxListLimit)}
	}
	if len(p.Prefix) > MaxNameLen || len(p.After) > MaxNameLen {
		return &ValidationError{Field: "prefix", Reason: fmt.Sprintf("prefix and after must be at most %d bytes", MaxNameLen)}
	}
	return nil
}

// Normalize fills defaults into p and validates it.
func (p *DeleteQueueJobsParams) Normalize() error {
	if p.Limit == 0 {
		p.Limit = DefaultPruneLimit
	}
	var limitErr error
	if p.Limit < 1 || p.Limit > MaxPruneLimit {
		limitErr = &ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, MaxPruneLimit)}
	}
	return errors.Join(ValidName("queue", p.Queue, false), limitErr)
}

// Normalize fills defaults into p and validates it.
func (p *RedriveParams) Normalize() error {
	if p.Limit == 0 {
		p.Limit = DefaultListLimit
	}
	errs := []error{ValidName("from queue", p.From, false), ValidName("to queue", p.To, false)}
	if p.From == p.To {
		errs = append(errs, &ValidationError{Field: "to queue", Reason: "is the queue the jobs are in"})
	}
	if p.Limit < 1 || p.Limit > MaxBatch {
		errs = append(errs, &ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, MaxBatch)})
	}
	if p.MaxDeliveries < 0 || p.MaxDeliveries > MaxAttemptsLimit {
		errs = append(errs, &ValidationError{Field: "max deliveries", Reason: fmt.Sprintf("%d is outside 0..%d", p.MaxDeliveries, MaxAttemptsLimit)})
	}
	if (p.FromKeyPrefix == "") != (p.ToKeyPrefix == "") {
		errs = append(errs, &ValidationError{Field: "key prefix", Reason: "give FromKeyPrefix and ToKeyPrefix together"})
	}
	errs = append(errs, validKey("from key prefix", p.FromKeyPrefix), validKey("to key prefix", p.ToKeyPrefix))
	return errors.Join(errs...)
}

// SQSQueueNotFound returns the error for a queue without SQS settings: a
// *NotFoundError matching ErrNotFound.
func SQSQueueNotFound(queue string) error { return &NotFoundError{Resource: "sqs queue", Name: queue} }
