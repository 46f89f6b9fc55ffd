package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/spoolrun/spool/store"
)

// SQSDriver keeps the queues of the SQS facade (store.SQSStore, migration
// 0011). Its methods receive checked arguments; times are in UTC and whole
// microseconds.
type SQSDriver interface {
	// InsertSQSQueue stores q as it is unless the queue has a row, and
	// returns the row as it stands after the call and whether it inserted
	// it; nil when a row that stopped the insert was removed before it
	// could be read.
	InsertSQSQueue(ctx context.Context, q *store.SQSQueue) (*store.SQSQueue, bool, error)

	// GetSQSQueue returns a queue's row, or nil when there is none.
	GetSQSQueue(ctx context.Context, queue string) (*store.SQSQueue, error)

	// ListSQSQueues returns up to p.Limit rows whose names start with
	// p.Prefix and sort after p.After, in byte order.
	ListSQSQueues(ctx context.Context, p store.SQSQueueListParams) ([]*store.SQSQueue, error)

	// UpdateSQSQueue applies JSON merge patches (RFC 7396: a null removes
	// a key; nil patches change nothing) to the attributes and tags of a
	// queue whose row is not deleted, in one statement; touch sets
	// updated_at to now and deleted sets deleted_at to now. It returns the
	// row after the change, or nil when there is no live row.
	UpdateSQSQueue(ctx context.Context, queue string, attrs, tags []byte, now time.Time, touch, deleted bool) (*store.SQSQueue, error)

	// RemoveSQSQueue deletes a queue's row and reports whether it had one.
	RemoveSQSQueue(ctx context.Context, queue string) (bool, error)

	// DeleteQueueJobs is store.SQSStore.DeleteQueueJobs on checked params.
	DeleteQueueJobs(ctx context.Context, p store.DeleteQueueJobsParams) (int, error)

	// CountQueueJobs counts a queue's live and dead jobs as of now.
	CountQueueJobs(ctx context.Context, queue string, now time.Time) (store.QueueDepth, error)

	// CountRunning counts a queue's running jobs.
	CountRunning(ctx context.Context, queue string) (int, error)

	// CompleteUnclaimed is store.SQSStore.CompleteUnclaimed: it answers
	// each delivery in errs.
	CompleteUnclaimed(ctx context.Context, ds []store.Delivery, errs []error, now time.Time) error

	// RedriveDead is store.SQSStore.RedriveDead on checked params. It wakes
	// the waiters of p.To.
	RedriveDead(ctx context.Context, p store.RedriveParams, now time.Time) (int, error)
}

var _ store.SQSStore = (*Store)(nil)

// sqsQueues returns the driver's SQS storage, refusing a closed store.
func (e *Store) sqsQueues(ctx context.Context) (SQSDriver, error) {
	if e.qd == nil {
		return nil, fmt.Errorf("%w: sqs queues", store.ErrUnsupported)
	}
	return e.qd, e.start(ctx)
}

// CreateSQSQueue implements store.SQSStore.
func (e *Store) CreateSQSQueue(ctx context.Context, q store.SQSQueue) (*store.SQSQueue, bool, error) {
	if err := q.Check(); err != nil {
		return nil, false, err
	}
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return nil, false, err
	}
	now := keyTime(e.d.Now())
	row := &store.SQSQueue{Queue: q.Queue, Attributes: maps.Clone(q.Attributes), Tags: maps.Clone(q.Tags), CreatedAt: now, UpdatedAt: now}
	for range 3 { // a row that stops the insert and is removed before it is read: try again
		got, created, err := qd.InsertSQSQueue(ctx, row)
		if err != nil || got != nil {
			return got, created, err
		}
	}
	return nil, false, fmt.Errorf("%w: sqs queue %s is being created and removed by others", store.ErrConflict, q.Queue)
}

// GetSQSQueue implements store.SQSStore.
func (e *Store) GetSQSQueue(ctx context.Context, queue string) (*store.SQSQueue, error) {
	if err := store.ValidName("queue", queue, false); err != nil {
		return nil, err
	}
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return nil, err
	}
	q, err := qd.GetSQSQueue(ctx, queue)
	if err == nil && q == nil {
		err = store.SQSQueueNotFound(queue)
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

// ListSQSQueues implements store.SQSStore.
func (e *Store) ListSQSQueues(ctx context.Context, p store.SQSQueueListParams) ([]*store.SQSQueue, error) {
	if err := p.Normalize(); err != nil {
		return nil, err
	}
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return nil, err
	}
	return qd.ListSQSQueues(ctx, p)
}

// UpdateSQSQueue implements store.SQSStore. updated_at moves when the
// attributes change or the queue is deleted, not for tags.
func (e *Store) UpdateSQSQueue(ctx context.Context, queue string, u store.SQSQueueUpdate) (*store.SQSQueue, error) {
	if err := store.ValidName("queue", queue, false); err != nil {
		return nil, err
	}
	if err := u.Check(); err != nil {
		return nil, err
	}
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return nil, err
	}
	attrs := mergePatch(u.Attributes, nil)
	tags := mergePatch(u.Tags, u.Untag)
	q, err := qd.UpdateSQSQueue(ctx, queue, attrs, tags, keyTime(e.d.Now()), len(u.Attributes) > 0 || u.Delete, u.Delete)
	if err == nil && q == nil {
		err = store.SQSQueueNotFound(queue)
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

// mergePatch is a JSON merge patch (RFC 7396) that sets set (an empty
// value removes the key) and then removes remove; nil when it would change
// nothing.
func mergePatch(set map[string]string, remove []string) []byte {
	if len(set) == 0 && len(remove) == 0 {
		return nil
	}
	p := make(map[string]*string, len(set)+len(remove))
	for k, v := range set {
		if v == "" {
			p[k] = nil
		} else {
			p[k] = &v
		}
	}
	for _, k := range remove {
		p[k] = nil
	}
	b, _ := json.Marshal(p) //nolint:errchkjson // a map of strings always marshals
	return b
}

// EncodeStringMap is a map of strings as the backends store it: a JSON
// object, "{}" for none.
func EncodeStringMap(m map[string]string) []byte {
	if len(m) == 0 {
		return []byte("{}")
	}
	b, _ := json.Marshal(m) //nolint:errchkjson // a map of strings always marshals
	return b
}

// DecodeStringMap reads what EncodeStringMap (or a merge patch applied to
// it) wrote; what names the row, for errors.
func DecodeStringMap(what string, b []byte) (map[string]string, error) {
	m := map[string]string{}
	if len(b) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("spool: %s: decode: %w", what, err)
	}
	return m, nil
}

// RemoveSQSQueue implements store.SQSStore.
func (e *Store) RemoveSQSQueue(ctx context.Context, queue string) error {
	if err := store.ValidName("queue", queue, false); err != nil {
		return err
	}
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return err
	}
	found, err := qd.RemoveSQSQueue(ctx, queue)
	if err == nil && !found {
		err = store.SQSQueueNotFound(queue)
	}
	return err
}

// DeleteQueueJobs implements store.SQSStore.
func (e *Store) DeleteQueueJobs(ctx context.Context, p store.DeleteQueueJobsParams) (int, error) {
	if err := p.Normalize(); err != nil {
		return 0, err
	}
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return 0, err
	}
	return qd.DeleteQueueJobs(ctx, p)
}

// CountQueueJobs implements store.SQSStore.
func (e *Store) CountQueueJobs(ctx context.Context, queue string) (store.QueueDepth, error) {
	if err := store.ValidName("queue", queue, false); err != nil {
		return store.QueueDepth{}, err
	}
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return store.QueueDepth{}, err
	}
	return qd.CountQueueJobs(ctx, queue, e.d.Now())
}

// CountRunning implements store.SQSStore.
func (e *Store) CountRunning(ctx context.Context, queue string) (int, error) {
	if err := store.ValidName("queue", queue, false); err != nil {
		return 0, err
	}
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return 0, err
	}
	return qd.CountRunning(ctx, queue)
}

// CompleteUnclaimed implements store.SQSStore.
func (e *Store) CompleteUnclaimed(ctx context.Context, ds []store.Delivery) ([]error, error) {
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(ds)); err != nil {
		return nil, err
	}
	errs := make([]error, len(ds))
	valid := false
	for i, d := range ds {
		if d.Deliveries < 1 {
			errs[i] = &store.ValidationError{Field: "deliveries", Reason: fmt.Sprintf("%d is not positive", d.Deliveries)}
		} else {
			errs[i] = store.ValidName("queue", d.Queue, false)
		}
		valid = valid || errs[i] == nil
	}
	if !valid {
		return errs, nil
	}
	if err := qd.CompleteUnclaimed(ctx, ds, errs, e.d.Now()); err != nil {
		return nil, err
	}
	return errs, nil
}

// RedriveDead implements store.SQSStore.
func (e *Store) RedriveDead(ctx context.Context, p store.RedriveParams) (int, error) {
	if err := p.Normalize(); err != nil {
		return 0, err
	}
	qd, err := e.sqsQueues(ctx)
	if err != nil {
		return 0, err
	}
	return qd.RedriveDead(ctx, p, e.d.Now())
}
