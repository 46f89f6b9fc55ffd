package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// The queues of the SQS facade (store.SQSStore, migration 0011): the
// engine checks arguments and reads the clock; these are its narrow reads
// and writes. Writes go through the writer like every other write.

var _ engine.SQSDriver = (*backend)(nil)

// SQS implements engine.Driver.
func (s *backend) SQS() engine.SQSDriver { return s }

// sqsColumns is the column list every SQS queue read returns, in
// scanSQSQueue's order.
const sqsColumns = `queue, attributes, tags, created_at, updated_at, deleted_at`

// The statements of SQS queues.
const (
	insertSQSQueueSQL = `INSERT INTO spool_sqs_queues (queue, attributes, tags, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (queue) DO NOTHING`
	getSQSQueueSQL = `SELECT ` + sqsColumns + ` FROM spool_sqs_queues WHERE queue = ?`
	// listSQSQueuesSQL walks the primary key from the prefix on; names are
	// ASCII (store.ValidName), so substr compares bytes.
	listSQSQueuesSQL = `SELECT ` + sqsColumns + ` FROM spool_sqs_queues
		WHERE queue >= ?1 AND queue > ?2 AND substr(queue, 1, length(?1)) = ?1
		ORDER BY queue LIMIT ?3`
	// updateSQSQueueSQL applies merge patches with json_patch (RFC 7396).
	updateSQSQueueSQL = `UPDATE spool_sqs_queues SET
		attributes = CASE WHEN ?2 IS NULL THEN attributes ELSE json_patch(attributes, ?2) END,
		tags = CASE WHEN ?3 IS NULL THEN tags ELSE json_patch(tags, ?3) END,
		updated_at = CASE WHEN ?5 THEN ?4 ELSE updated_at END,
		deleted_at = CASE WHEN ?6 THEN ?4 ELSE deleted_at END
		WHERE queue = ?1 AND deleted_at IS NULL
		RETURNING ` + sqsColumns
	removeSQSQueueSQL = `DELETE FROM spool_sqs_queues WHERE queue = ?`

	// countQueueSQL counts one queue's jobs, each state through its own
	// partial index.
	countQueueSQL = `SELECT
		(SELECT count(*) FROM spool_jobs WHERE queue = ?1 AND state = 'available'),
		(SELECT count(*) FROM spool_jobs WHERE queue = ?1 AND state = 'scheduled' AND run_at <= ?2),
		(SELECT count(*) FROM spool_jobs WHERE queue = ?1 AND state = 'scheduled' AND run_at > ?2),
		(SELECT count(*) FROM spool_jobs WHERE queue = ?1 AND state = 'running'),
		(SELECT count(*) FROM spool_jobs WHERE queue = ?1 AND state = 'dead')`

	countRunningSQL = `SELECT count(*) FROM spool_jobs WHERE queue = ? AND state = 'running'`

	completeUnclaimedSQL = `UPDATE spool_jobs SET state = 'completed', finished_at = ?, lock_token = NULL, locked_until = NULL
		WHERE id = ? AND queue = ? AND deliveries = ? AND state IN ('scheduled', 'available')`
	deliveryStateSQL = `SELECT state, deliveries FROM spool_jobs WHERE id = ? AND queue = ?`

	// redriveSQL moves a queue's oldest dead jobs into another queue, as a
	// requeue does, giving up their unique keys and rewriting ordering
	// keys that start with ?5 to start with ?6.
	redriveSQL = `UPDATE spool_jobs SET queue = ?2, state = 'available', run_at = ?3, attempts = 0, deliveries = 0,
		max_deliveries = CASE WHEN ?4 > 0 THEN ?4 ELSE max_deliveries END,
		finished_at = NULL, dead_reason = NULL, result = NULL, lock_token = NULL, locked_until = NULL,
		unique_key = NULL, unique_until = NULL, unique_held = 0,
		ordering_key = CASE WHEN ?5 <> '' AND substr(ordering_key, 1, length(?5)) = ?5
			THEN ?6 || substr(ordering_key, length(?5) + 1) ELSE ordering_key END
		WHERE id IN (SELECT id FROM spool_jobs WHERE queue = ?1 AND state = 'dead' ORDER BY id LIMIT ?7)`
)

// deleteQueueJobsSQL deletes, per state, up to a limit of a queue's jobs
// created before a time. Each statement names its state as a literal, so
// SQLite walks that state's partial index.
var deleteQueueJobsSQL = func() []string {
	var out []string
	for _, st := range []store.State{store.StateAvailable, store.StateScheduled, store.StateRunning, store.StateDead} {
		out = append(out, `DELETE FROM spool_jobs WHERE id IN (
			SELECT id FROM spool_jobs WHERE queue = ?1 AND state = '`+string(st)+`' AND created_at < ?2 LIMIT ?3)`)
	}
	return out
}()

// InsertSQSQueue implements engine.SQSDriver.
func (s *backend) InsertSQSQueue(ctx context.Context, q *store.SQSQueue) (*store.SQSQueue, bool, error) {
	var (
		out      *store.SQSQueue
		inserted bool
	)
	err := s.writer.do(ctx, func(x execer) error {
		res, err := x.exec(insertSQSQueueSQL, q.Queue, engine.EncodeStringMap(q.Attributes), engine.EncodeStringMap(q.Tags),
			q.CreatedAt.UnixMicro(), q.UpdatedAt.UnixMicro())
		if err != nil {
			return fmt.Errorf("spool: create sqs queue: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		inserted = n == 1
		out, err = scanSQSQueue(x.queryRow(getSQSQueueSQL, q.Queue))
		return err
	}, nil)
	if err != nil {
		return nil, false, err
	}
	return out, inserted, nil
}

// GetSQSQueue implements engine.SQSDriver.
func (s *backend) GetSQSQueue(ctx context.Context, queue string) (*store.SQSQueue, error) {
	q, err := scanSQSQueue(s.rdb.QueryRowContext(ctx, getSQSQueueSQL, queue))
	if err != nil {
		return nil, s.readErr(err)
	}
	return q, nil
}

// ListSQSQueues implements engine.SQSDriver.
func (s *backend) ListSQSQueues(ctx context.Context, p store.SQSQueueListParams) ([]*store.SQSQueue, error) {
	rows, err := s.rdb.QueryContext(ctx, listSQSQueuesSQL, p.Prefix, p.After, p.Limit)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	var out []*store.SQSQueue
	for rows.Next() {
		q, err := scanSQSQueue(rows)
		if err != nil {
			return nil, s.readErr(err)
		}
		out = append(out, q)
	}
	return out, s.readErr(rows.Err())
}

// UpdateSQSQueue implements engine.SQSDriver.
func (s *backend) UpdateSQSQueue(ctx context.Context, queue string, attrs, tags []byte, now time.Time, touch, deleted bool) (*store.SQSQueue, error) {
	var out *store.SQSQueue
	err := s.writer.do(ctx, func(x execer) error {
		var err error
		out, err = scanSQSQueue(x.queryRow(updateSQSQueueSQL, queue, nullBytes(attrs), nullBytes(tags), now.UnixMicro(), touch, deleted))
		if err != nil {
			return fmt.Errorf("spool: update sqs queue: %w", err)
		}
		return nil
	}, nil)
	return out, err
}

// RemoveSQSQueue implements engine.SQSDriver.
func (s *backend) RemoveSQSQueue(ctx context.Context, queue string) (bool, error) {
	var found bool
	err := s.writer.do(ctx, func(x execer) error {
		res, err := x.exec(removeSQSQueueSQL, queue)
		if err != nil {
			return fmt.Errorf("spool: remove sqs queue: %w", err)
		}
		n, err := res.RowsAffected()
		found = n == 1
		return err
	}, nil)
	return found, err
}

// DeleteQueueJobs implements engine.SQSDriver.
func (s *backend) DeleteQueueJobs(ctx context.Context, p store.DeleteQueueJobsParams) (int, error) {
	before := int64(math.MaxInt64)
	if !p.Before.IsZero() {
		before = p.Before.UnixMicro()
	}
	var deleted int
	err := s.writer.do(ctx, func(x execer) error {
		deleted = 0
		for _, q := range deleteQueueJobsSQL {
			if deleted >= p.Limit {
				break
			}
			res, err := x.exec(q, p.Queue, before, p.Limit-deleted)
			if err != nil {
				return fmt.Errorf("spool: delete queue jobs: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			deleted += int(n)
		}
		return nil
	}, func() {
		if deleted > 0 { // a deleted head of an ordering key lets the next job run
			s.available.Fire(p.Queue)
		}
	})
	return deleted, err
}

// CountQueueJobs implements engine.SQSDriver.
func (s *backend) CountQueueJobs(ctx context.Context, queue string, now time.Time) (store.QueueDepth, error) {
	var d store.QueueDepth
	var due int
	err := s.rdb.QueryRowContext(ctx, countQueueSQL, queue, now.UnixMicro()).Scan(&d.Available, &due, &d.Delayed, &d.Running, &d.Dead)
	if err != nil {
		return store.QueueDepth{}, s.readErr(fmt.Errorf("spool: count queue jobs: %w", err))
	}
	d.Available += due
	return d, nil
}

// CountRunning implements engine.SQSDriver.
func (s *backend) CountRunning(ctx context.Context, queue string) (int, error) {
	var n int
	if err := s.rdb.QueryRowContext(ctx, countRunningSQL, queue).Scan(&n); err != nil {
		return 0, s.readErr(fmt.Errorf("spool: count running jobs: %w", err))
	}
	return n, nil
}

// CompleteUnclaimed implements engine.SQSDriver.
func (s *backend) CompleteUnclaimed(ctx context.Context, ds []store.Delivery, errs []error, now time.Time) error {
	checked := slices.Clone(errs) // the writer may run the op twice: start each run from here
	var finished []store.ID
	return s.writer.do(ctx, func(x execer) error {
		copy(errs, checked)
		finished = finished[:0]
		for i, d := range ds {
			if errs[i] != nil {
				continue
			}
			res, err := x.exec(completeUnclaimedSQL, now.UnixMicro(), d.ID, d.Queue, d.Deliveries)
			if err != nil {
				return fmt.Errorf("spool: complete unclaimed: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 1 {
				finished = append(finished, d.ID)
				continue
			}
			var state string
			var deliveries int
			switch err := x.queryRow(deliveryStateSQL, d.ID, d.Queue).Scan(&state, &deliveries); {
			case errors.Is(err, sql.ErrNoRows):
				errs[i] = store.JobNotFound(d.ID)
			case err != nil:
				return err
			case state == string(store.StateCompleted) && deliveries == d.Deliveries:
			default:
				errs[i] = store.ErrLockLost
			}
		}
		return nil
	}, func() { s.finished.Fire(finished...) })
}

// RedriveDead implements engine.SQSDriver.
func (s *backend) RedriveDead(ctx context.Context, p store.RedriveParams, now time.Time) (int, error) {
	var moved int
	err := s.writer.do(ctx, func(x execer) error {
		res, err := x.exec(redriveSQL, p.From, p.To, now.UnixMicro(), p.MaxDeliveries, p.FromKeyPrefix, p.ToKeyPrefix, p.Limit)
		if err != nil {
			return fmt.Errorf("spool: redrive: %w", err)
		}
		n, err := res.RowsAffected()
		moved = int(n)
		return err
	}, func() {
		if moved > 0 {
			s.available.Fire(p.To)
		}
	})
	return moved, err
}

// scanSQSQueue reads the columns of sqsColumns; nil, nil when there is no row.
func scanSQSQueue(r scanner) (*store.SQSQueue, error) {
	var (
		q                store.SQSQueue
		attrs, tags      string
		created, updated int64
		deleted          sql.NullInt64
	)
	err := r.Scan(&q.Queue, &attrs, &tags, &created, &updated, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if q.Attributes, err = engine.DecodeStringMap("sqs queue "+q.Queue+" attributes", []byte(attrs)); err != nil {
		return nil, err
	}
	if q.Tags, err = engine.DecodeStringMap("sqs queue "+q.Queue+" tags", []byte(tags)); err != nil {
		return nil, err
	}
	q.CreatedAt, q.UpdatedAt, q.DeletedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC(), fromMicros(deleted)
	return &q, nil
}

// nullBytes is b as a text parameter, NULL when nil.
func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
