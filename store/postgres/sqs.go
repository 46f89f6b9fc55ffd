package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// The queues of the SQS facade (store.SQSStore, migration 0011): the
// engine checks arguments and reads the clock (the database's); these are
// its narrow reads and writes, one statement each but for the rare
// answers that need a second look.

var _ engine.SQSDriver = (*backend)(nil)

// SQS implements engine.Driver.
func (s *backend) SQS() engine.SQSDriver { return s }

// sqsColumns is the column list every SQS queue read returns, in
// scanSQSQueue's order.
const sqsColumns = `queue, attributes, tags, created_at, updated_at, deleted_at`

// The statements of SQS queues.
const (
	insertSQSQueueSQL = `INSERT INTO {schema}.sqs_queues (queue, attributes, tags, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (queue) DO NOTHING RETURNING ` + sqsColumns
	getSQSQueueSQL   = `SELECT ` + sqsColumns + ` FROM {schema}.sqs_queues WHERE queue = $1`
	listSQSQueuesSQL = `SELECT ` + sqsColumns + ` FROM {schema}.sqs_queues
WHERE queue >= $1::text AND queue > $2::text AND starts_with(queue, $1::text)
ORDER BY queue LIMIT $3`
	// updateSQSQueueSQL applies merge patches: || sets, and
	// jsonb_strip_nulls drops the keys the patch set to null.
	updateSQSQueueSQL = `UPDATE {schema}.sqs_queues SET
	attributes = CASE WHEN $2::jsonb IS NULL THEN attributes ELSE jsonb_strip_nulls(attributes || $2::jsonb) END,
	tags = CASE WHEN $3::jsonb IS NULL THEN tags ELSE jsonb_strip_nulls(tags || $3::jsonb) END,
	updated_at = CASE WHEN $5::boolean THEN $4::timestamptz ELSE updated_at END,
	deleted_at = CASE WHEN $6::boolean THEN $4::timestamptz ELSE deleted_at END
WHERE queue = $1 AND deleted_at IS NULL
RETURNING ` + sqsColumns
	removeSQSQueueSQL = `DELETE FROM {schema}.sqs_queues WHERE queue = $1`

	// countQueueSQL counts one queue's jobs, each state through its own
	// partial index.
	countQueueSQL = `SELECT
	(SELECT count(*) FROM {schema}.jobs WHERE queue = $1 AND state = 'available'),
	(SELECT count(*) FROM {schema}.jobs WHERE queue = $1 AND state = 'scheduled' AND run_at <= $2),
	(SELECT count(*) FROM {schema}.jobs WHERE queue = $1 AND state = 'scheduled' AND run_at > $2),
	(SELECT count(*) FROM {schema}.jobs WHERE queue = $1 AND state = 'running'),
	(SELECT count(*) FROM {schema}.jobs WHERE queue = $1 AND state = 'dead')`

	countRunningSQL = `SELECT count(*) FROM {schema}.jobs WHERE queue = $1 AND state = 'running'`

	completeUnclaimedSQL = `UPDATE {schema}.jobs SET state = 'completed', finished_at = $3, lock_token = NULL, locked_until = NULL
WHERE id = $1 AND queue = $4 AND deliveries = $2 AND state IN ('scheduled', 'available')`
	deliveryStateSQL = `SELECT state, deliveries FROM {schema}.jobs WHERE id = $1 AND queue = $2`

	// redriveSQL moves a queue's oldest dead jobs into another queue, as a
	// requeue does, giving up their unique keys and rewriting ordering
	// keys that start with $5 to start with $6. Rows another transaction
	// holds are left for the next call.
	redriveSQL = `WITH picked AS MATERIALIZED (
	SELECT id FROM {schema}.jobs WHERE queue = $1 AND state = 'dead' ORDER BY id LIMIT $7 FOR UPDATE SKIP LOCKED)
UPDATE {schema}.jobs AS j SET queue = $2, state = 'available', run_at = $3, attempts = 0, deliveries = 0,
	max_deliveries = CASE WHEN $4::integer > 0 THEN $4::integer ELSE j.max_deliveries END,
	finished_at = NULL, dead_reason = NULL, result = NULL, lock_token = NULL, locked_until = NULL,
	unique_key = NULL, unique_until = NULL, unique_held = false,
	ordering_key = CASE WHEN $5::text <> '' AND starts_with(j.ordering_key, $5::text)
		THEN $6::text || substr(j.ordering_key, length($5::text) + 1) ELSE j.ordering_key END
FROM picked WHERE j.id = picked.id`
)

// deleteQueueJobsSQL deletes, per state, up to a limit of a queue's jobs
// created before a time. Each statement names its state as a literal, so
// the planner takes that state's partial index; the picked rows are
// materialized first, so a rescan cannot pick more than the limit.
var deleteQueueJobsSQL = func() []string {
	var out []string
	for _, st := range []store.State{store.StateAvailable, store.StateScheduled, store.StateRunning, store.StateDead} {
		out = append(out, `WITH picked AS MATERIALIZED (
	SELECT id FROM {schema}.jobs WHERE queue = $1 AND state = '`+string(st)+`' AND created_at < $2 LIMIT $3)
DELETE FROM {schema}.jobs AS j USING picked WHERE j.id = picked.id`)
	}
	return out
}()

// sqsQueries are the statements of SQS queues rendered for one schema.
type sqsQueries struct {
	insert, get, list, update, remove, count, running, complete, deliveryState, redrive string
	deleteJobs                                                                          []string
}

func newSQSQueries(schema string) *sqsQueries {
	r := func(s string) string { return render(s, schema) }
	q := &sqsQueries{insert: r(insertSQSQueueSQL), get: r(getSQSQueueSQL), list: r(listSQSQueuesSQL), update: r(updateSQSQueueSQL),
		remove: r(removeSQSQueueSQL), count: r(countQueueSQL), running: r(countRunningSQL), complete: r(completeUnclaimedSQL), deliveryState: r(deliveryStateSQL),
		redrive: r(redriveSQL)}
	for _, d := range deleteQueueJobsSQL {
		q.deleteJobs = append(q.deleteJobs, r(d))
	}
	return q
}

// InsertSQSQueue implements engine.SQSDriver.
func (s *backend) InsertSQSQueue(ctx context.Context, q *store.SQSQueue) (*store.SQSQueue, bool, error) {
	if err := s.start(ctx); err != nil {
		return nil, false, err
	}
	got, err := scanSQSQueue(s.pool.QueryRow(ctx, s.q.sqs.insert, q.Queue, engine.EncodeStringMap(q.Attributes), engine.EncodeStringMap(q.Tags),
		q.CreatedAt, q.UpdatedAt))
	if err != nil {
		return nil, false, s.fail(ctx, "create sqs queue", err)
	}
	if got != nil {
		return got, true, nil
	}
	got, err = s.GetSQSQueue(ctx, q.Queue)
	return got, false, err
}

// GetSQSQueue implements engine.SQSDriver.
func (s *backend) GetSQSQueue(ctx context.Context, queue string) (*store.SQSQueue, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	q, err := scanSQSQueue(s.pool.QueryRow(ctx, s.q.sqs.get, queue))
	if err != nil {
		return nil, s.fail(ctx, "get sqs queue", err)
	}
	return q, nil
}

// ListSQSQueues implements engine.SQSDriver.
func (s *backend) ListSQSQueues(ctx context.Context, p store.SQSQueueListParams) ([]*store.SQSQueue, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, s.q.sqs.list, p.Prefix, p.After, p.Limit)
	if err != nil {
		return nil, s.fail(ctx, "list sqs queues", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.SQSQueue, error) { return scanSQSQueue(r) })
	if err != nil {
		return nil, s.fail(ctx, "list sqs queues", err)
	}
	return out, nil
}

// UpdateSQSQueue implements engine.SQSDriver.
func (s *backend) UpdateSQSQueue(ctx context.Context, queue string, attrs, tags []byte, now time.Time, touch, deleted bool) (*store.SQSQueue, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	q, err := scanSQSQueue(s.pool.QueryRow(ctx, s.q.sqs.update, queue, nullJSON(attrs), nullJSON(tags), now, touch, deleted))
	if err != nil {
		return nil, s.fail(ctx, "update sqs queue", err)
	}
	return q, nil
}

// RemoveSQSQueue implements engine.SQSDriver.
func (s *backend) RemoveSQSQueue(ctx context.Context, queue string) (bool, error) {
	if err := s.start(ctx); err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, s.q.sqs.remove, queue)
	if err != nil {
		return false, s.fail(ctx, "remove sqs queue", err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteQueueJobs implements engine.SQSDriver.
func (s *backend) DeleteQueueJobs(ctx context.Context, p store.DeleteQueueJobsParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	before := p.Before
	if before.IsZero() {
		before = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	deleted := 0
	for _, q := range s.q.sqs.deleteJobs {
		if deleted >= p.Limit {
			break
		}
		tag, err := s.pool.Exec(ctx, q, p.Queue, before, p.Limit-deleted)
		if err != nil {
			return deleted, s.fail(ctx, "delete queue jobs", err)
		}
		deleted += int(tag.RowsAffected())
	}
	if deleted > 0 { // a deleted head of an ordering key lets the next job run
		s.changed([]string{p.Queue}, nil)
	}
	return deleted, nil
}

// CountQueueJobs implements engine.SQSDriver.
func (s *backend) CountQueueJobs(ctx context.Context, queue string, now time.Time) (store.QueueDepth, error) {
	if err := s.start(ctx); err != nil {
		return store.QueueDepth{}, err
	}
	var d store.QueueDepth
	var due int
	if err := s.pool.QueryRow(ctx, s.q.sqs.count, queue, now).Scan(&d.Available, &due, &d.Delayed, &d.Running, &d.Dead); err != nil {
		return store.QueueDepth{}, s.fail(ctx, "count queue jobs", err)
	}
	d.Available += due
	return d, nil
}

// CountRunning implements engine.SQSDriver.
func (s *backend) CountRunning(ctx context.Context, queue string) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	var n int
	if err := s.pool.QueryRow(ctx, s.q.sqs.running, queue).Scan(&n); err != nil {
		return 0, s.fail(ctx, "count running jobs", err)
	}
	return n, nil
}

// CompleteUnclaimed implements engine.SQSDriver.
func (s *backend) CompleteUnclaimed(ctx context.Context, ds []store.Delivery, errs []error, now time.Time) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	var finished []store.ID
	for i, d := range ds {
		if errs[i] != nil {
			continue
		}
		tag, err := s.pool.Exec(ctx, s.q.sqs.complete, d.ID, d.Deliveries, now, d.Queue)
		if err != nil {
			return s.fail(ctx, "complete unclaimed", err)
		}
		if tag.RowsAffected() == 1 {
			finished = append(finished, d.ID)
			continue
		}
		var state string
		var deliveries int
		switch err := s.pool.QueryRow(ctx, s.q.sqs.deliveryState, d.ID, d.Queue).Scan(&state, &deliveries); {
		case errors.Is(err, pgx.ErrNoRows):
			errs[i] = store.JobNotFound(d.ID)
		case err != nil:
			return s.fail(ctx, "complete unclaimed", err)
		case state == string(store.StateCompleted) && deliveries == d.Deliveries:
		default:
			errs[i] = store.ErrLockLost
		}
	}
	if len(finished) > 0 {
		s.changed(nil, finished)
	}
	return nil
}

// RedriveDead implements engine.SQSDriver.
func (s *backend) RedriveDead(ctx context.Context, p store.RedriveParams, now time.Time) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, s.q.sqs.redrive, p.From, p.To, now, p.MaxDeliveries, p.FromKeyPrefix, p.ToKeyPrefix, p.Limit)
	if err != nil {
		return 0, s.fail(ctx, "redrive", err)
	}
	moved := int(tag.RowsAffected())
	if moved > 0 {
		s.changed([]string{p.To}, nil)
	}
	return moved, nil
}

// scanSQSQueue reads the columns of sqsColumns; nil, nil when there is no row.
func scanSQSQueue(r pgx.Row) (*store.SQSQueue, error) {
	var (
		q           store.SQSQueue
		attrs, tags []byte
		deleted     *time.Time
	)
	err := r.Scan(&q.Queue, &attrs, &tags, &q.CreatedAt, &q.UpdatedAt, &deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if q.Attributes, err = engine.DecodeStringMap("sqs queue "+q.Queue+" attributes", attrs); err != nil {
		return nil, err
	}
	if q.Tags, err = engine.DecodeStringMap("sqs queue "+q.Queue+" tags", tags); err != nil {
		return nil, err
	}
	q.CreatedAt, q.UpdatedAt = q.CreatedAt.UTC(), q.UpdatedAt.UTC()
	if deleted != nil {
		q.DeletedAt = deleted.UTC()
	}
	return &q, nil
}

// nullJSON is a JSON document as a jsonb parameter, NULL when nil.
func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
