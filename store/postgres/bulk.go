package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// Bulk actions over a filter (store.BulkStore): each is one statement,
// whatever the number of jobs, whose CTEs do what the per-job calls do
// around it, and which answers how many jobs changed and the queues to
// wake. The engine has narrowed the filter's States to those the action
// applies to; the statement names them on the rows it changes, so a row
// another transaction changed meanwhile is checked again (READ COMMITTED
// re-reads it) and left alone when it no longer qualifies: a job claimed
// since is not requeued or deleted, one settled since is not cancelled.

var _ engine.BulkDriver = (*backend)(nil)

// Bulk implements engine.Driver.
func (s *backend) Bulk() engine.BulkDriver { return s }

// CountFiltered implements engine.BulkDriver.
func (s *backend) CountFiltered(ctx context.Context, f store.ListParams, limit int) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	w := &filter{}
	q := `SELECT 1 FROM {schema}.jobs WHERE ` + w.jobs(f, "")
	if limit > 0 {
		q += ` LIMIT ` + w.param(limit)
	}
	var n int64
	if err := s.pool.QueryRow(ctx, render(`SELECT count(*) FROM (`+q+`) AS c`, s.schema), w.args...).Scan(&n); err != nil {
		return 0, s.fail(ctx, "count jobs", err)
	}
	return int(n), nil
}

// bulkCancelSQL cancels the jobs of a filter (%s, on j) and answers how
// many, with the queues of those that had an ordering key: the next job
// of the key may run. Clearing the lock token is what refuses a running
// job's holder (ErrLockLost); the schedules trigger releases schedules
// whose run it cancels, as for Cancel.
const bulkCancelSQL = `WITH c AS (
	UPDATE {schema}.jobs AS j SET state = 'cancelled', finished_at = $1, lock_token = NULL, locked_until = NULL
	WHERE %s
	RETURNING j.queue, j.ordering_key IS NOT NULL AS keyed
)
SELECT count(*), coalesce(array_agg(DISTINCT queue) FILTER (WHERE keyed), '{}') FROM c`

// BulkCancel implements engine.BulkDriver.
func (s *backend) BulkCancel(ctx context.Context, f store.ListParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	w := &filter{}
	w.param(s.now())
	return s.bulk(ctx, "cancel", fmt.Sprintf(bulkCancelSQL, w.jobs(f, "j.")), w.args)
}

// bulkRequeueSQL requeues, in one statement, the dead and cancelled jobs
// of a filter (%[1]s on t, %[2]s on o) that a requeue may take, and
// answers how many, with their queues:
//
//   - chosen are those jobs without a unique key, and those whose key no
//     other job holds at $1 (a live job, or a finished one whose
//     unique_until is after $1: a probe of jobs_unique, which admits one
//     holder per key) and that hold it themselves or come first in ID
//     order among the selected jobs of their key (a probe of
//     jobs_unique_finished);
//   - released: a finished job that still keeps a chosen job's key,
//     though its window has passed, gives it up (as takeKey does);
//   - requeued: the chosen jobs become available with attempts and
//     deliveries reset. It reads released's count, so that the keys are
//     given up before any requeued job enters the unique index: a
//     data-modifying CTE that nothing reads runs last.
const bulkRequeueSQL = `WITH chosen AS MATERIALIZED (
	SELECT t.id, t.tenant, t.unique_key FROM {schema}.jobs AS t
	WHERE %[1]s AND (t.unique_key IS NULL OR (
		NOT EXISTS (SELECT 1 FROM {schema}.jobs AS h
			WHERE h.tenant = t.tenant AND h.unique_key = t.unique_key AND ` + `(h.state IN ` + live + ` OR h.unique_held)` + `
			  AND h.id <> t.id AND (h.state IN ` + live + ` OR h.unique_until > $1))
		AND ((t.unique_held AND t.unique_until > $1) OR NOT EXISTS (SELECT 1 FROM {schema}.jobs AS o
			WHERE o.tenant = t.tenant AND o.unique_key = t.unique_key AND o.id < t.id AND %[2]s))))
), released AS (
	UPDATE {schema}.jobs AS h SET unique_held = false
	FROM (SELECT DISTINCT tenant, unique_key FROM chosen WHERE unique_key IS NOT NULL) AS k
	WHERE h.tenant = k.tenant AND h.unique_key = k.unique_key AND h.unique_held
	  AND h.state NOT IN ` + live + ` AND h.unique_until <= $1 AND h.id NOT IN (SELECT id FROM chosen)
	RETURNING h.id
), requeued AS (
	UPDATE {schema}.jobs AS j SET state = 'available', attempts = 0, deliveries = 0, run_at = $1,
		finished_at = NULL, dead_reason = NULL, result = NULL, lock_token = NULL, locked_until = NULL
	WHERE j.id IN (SELECT id FROM chosen) AND j.state IN ('cancelled', 'dead')
	  AND (SELECT count(*) FROM released) >= 0
	RETURNING j.queue
)
SELECT count(*), coalesce(array_agg(DISTINCT queue), '{}') FROM requeued`

// BulkRequeue implements engine.BulkDriver. A job that another
// transaction gave a selected job's unique key meanwhile (an enqueue that
// committed after the statement's snapshot) makes the statement fail on
// the unique index; it is run again, and then sees that holder.
func (s *backend) BulkRequeue(ctx context.Context, f store.ListParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	var err error
	for range 5 {
		w := &filter{}
		w.param(s.now())
		var n int
		n, err = s.bulk(ctx, "requeue", fmt.Sprintf(bulkRequeueSQL, w.jobs(f, "t."), w.jobs(f, "o.")), w.args)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23505" {
			return n, err
		}
	}
	return 0, err
}

// bulkDeleteSQL deletes the jobs of a filter (%s, on j) and answers how
// many, with the queues whose next jobs may now run: those of a deleted
// live job with an ordering key (it may have headed its key's line) and
// of a deleted dead job that held its key. A deleted live job that was a
// schedule's run releases the schedule as finishing would (the trigger
// does it for updates only): a fixed-delay schedule's next slot is $1,
// rounded up to the second, plus its delay.
const bulkDeleteSQL = `WITH gone AS (
	DELETE FROM {schema}.jobs AS j WHERE %s
	RETURNING j.id, j.queue, j.state, j.ordering_key IS NOT NULL AS keyed, j.hold_when_dead
), runs AS (
	UPDATE {schema}.schedules AS sc SET live_job_id = NULL,
		next_run_at = CASE WHEN sc.release_delay > 0
			THEN (date_trunc('second', $1::timestamptz AT TIME ZONE 'UTC')
				+ CASE WHEN date_trunc('second', $1::timestamptz AT TIME ZONE 'UTC') < $1::timestamptz AT TIME ZONE 'UTC'
					THEN interval '1 second' ELSE interval '0' END) AT TIME ZONE 'UTC'
				+ sc.release_delay * interval '1 microsecond'
			ELSE sc.next_run_at END
	WHERE sc.live_job_id IN (SELECT id FROM gone WHERE state IN ` + live + `)
)
SELECT count(*), coalesce(array_agg(DISTINCT queue) FILTER (WHERE (keyed AND state IN ` + live + `) OR (state = 'dead' AND hold_when_dead)), '{}')
FROM gone`

// BulkDelete implements engine.BulkDriver.
func (s *backend) BulkDelete(ctx context.Context, f store.ListParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	w := &filter{}
	w.param(s.now())
	return s.bulk(ctx, "delete", fmt.Sprintf(bulkDeleteSQL, w.jobs(f, "j.")), w.args)
}

// bulk runs one bulk statement, which answers (count, queues to wake), and
// wakes the queues and every waiter for a job.
func (s *backend) bulk(ctx context.Context, op, sql string, args []any) (int, error) {
	var n int64
	var queues []string
	if err := s.pool.QueryRow(ctx, render(sql, s.schema), args...).Scan(&n, &queues); err != nil {
		return 0, s.fail(ctx, "bulk "+op, err)
	}
	s.changedMany(queues)
	return int(n), nil
}
