package sqlite

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// Bulk actions over a filter (store.BulkStore): each is one write of the
// single writer, one set-based statement over the filter, so a million
// jobs are one statement rather than a million. The engine has narrowed
// the filter's States to those the action applies to. Afterwards every
// waiter of this process wakes: which queues and jobs changed is not
// collected (it could be every row), and a spurious wake-up costs one
// look; other processes notice the commit on the file.

var _ engine.BulkDriver = (*backend)(nil)

// Bulk implements engine.Driver.
func (s *backend) Bulk() engine.BulkDriver { return s }

// CountFiltered implements engine.BulkDriver.
func (s *backend) CountFiltered(ctx context.Context, f store.ListParams, limit int) (int, error) {
	w := jobFilter(f, "")
	if limit <= 0 {
		limit = -1 // SQLite's "no limit"
	}
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM spool_jobs WHERE `+w.sql()+` LIMIT ?)`,
		append(w.args, limit)...).Scan(&n)
	return n, s.readErr(err)
}

// wakeEveryone wakes every waiter of this process.
func (s *backend) wakeEveryone() {
	s.available.FireAll()
	s.finished.FireAll()
}

// bulkWrite runs one bulk action in the writer and returns the rows its
// last statement changed. The writer may run fn twice; each run starts
// from scratch.
func (s *backend) bulkWrite(ctx context.Context, op string, fn func(x execer, now int64) (int64, error)) (int, error) {
	var n int64
	err := s.writer.do(ctx, func(x execer) error {
		var err error
		if n, err = fn(x, s.now().UnixMicro()); err != nil {
			return fmt.Errorf("spool: bulk %s: %w", op, err)
		}
		return nil
	}, s.wakeEveryone)
	return int(n), err
}

// BulkCancel implements engine.BulkDriver: one UPDATE. Clearing the lock
// token is what refuses a running job's holder (ErrLockLost), and the
// schedules trigger releases runs of schedules as a Cancel does.
func (s *backend) BulkCancel(ctx context.Context, f store.ListParams) (int, error) {
	w := jobFilter(f, "")
	return s.bulkWrite(ctx, "cancel", func(x execer, now int64) (int64, error) {
		res, err := x.exec(`UPDATE spool_jobs SET state = 'cancelled', finished_at = ?, lock_token = NULL, locked_until = NULL
			WHERE `+w.sql(), append([]any{now}, w.args...)...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}

// chosenSQL selects, among the dead and cancelled jobs a filter selects
// (alias t), those a bulk requeue takes: a job without a unique key, or
// one whose key no other job holds now (a live job, or a finished one
// whose unique_until is after ?1) and that is the first of the selected
// jobs of its key in ID order, unless it holds the key itself. The
// holder probe is written as the unique index's predicate, and the
// earlier-job probe reads spool_jobs_unique_finished. %[1]s is the
// filter on t, %[2]s the same filter on o.
const chosenSQL = `SELECT t.id, t.tenant, t.unique_key FROM spool_jobs AS t
WHERE %[1]s AND (t.unique_key IS NULL OR (
	NOT EXISTS (SELECT 1 FROM spool_jobs AS h
		WHERE h.tenant = t.tenant AND h.unique_key = t.unique_key
		  AND (h.state IN ('scheduled', 'available', 'running') OR h.unique_held = 1)
		  AND h.id <> t.id AND (h.state IN ('scheduled', 'available', 'running') OR h.unique_until > ?1))
	AND ((t.unique_held = 1 AND t.unique_until > ?1) OR NOT EXISTS (SELECT 1 FROM spool_jobs AS o
		WHERE o.tenant = t.tenant AND o.unique_key = t.unique_key AND o.id < t.id AND %[2]s))))`

// BulkRequeue implements engine.BulkDriver with two statements in one
// transaction (SQLite has no data-modifying CTEs): the finished jobs that
// still keep a key a requeued job takes, though their window has passed,
// give it up (as takeKey does for one job: each found by a probe of the
// unique index from a chosen job's key); then one UPDATE requeues the
// chosen jobs (chosenSQL).
func (s *backend) BulkRequeue(ctx context.Context, f store.ListParams) (int, error) {
	t, o := jobFilter(f, "t."), jobFilter(f, "o.")
	chosen, args := numbered(fmt.Sprintf(chosenSQL, t.sql(), o.sql()), t.args, o.args)
	return s.bulkWrite(ctx, "requeue", func(x execer, now int64) (int64, error) {
		a := append([]any{now}, args...)
		if _, err := x.exec(`WITH chosen AS MATERIALIZED (`+chosen+`)
			UPDATE spool_jobs SET unique_held = 0 WHERE id IN (
				SELECT h.id FROM chosen AS c JOIN spool_jobs AS h
				  ON h.tenant = c.tenant AND h.unique_key = c.unique_key
				 AND (h.state IN ('scheduled', 'available', 'running') OR h.unique_held = 1)
				WHERE c.unique_key IS NOT NULL AND h.unique_held = 1 AND h.state IN ('completed', 'cancelled', 'dead')
				  AND h.unique_until <= ?1 AND h.id NOT IN (SELECT id FROM chosen))`, a...); err != nil {
			return 0, err
		}
		res, err := x.exec(`WITH chosen AS (`+chosen+`)
			UPDATE spool_jobs SET state = 'available', attempts = 0, deliveries = 0, run_at = ?1,
				finished_at = NULL, dead_reason = NULL, result = NULL, lock_token = NULL, locked_until = NULL
			WHERE id IN (SELECT id FROM chosen)`, a...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}

// BulkDelete implements engine.BulkDriver: one DELETE, after releasing the
// schedules whose live run it deletes (a deleted run has finished, for its
// schedule: a fixed-delay schedule's next slot counts from now).
func (s *backend) BulkDelete(ctx context.Context, f store.ListParams) (int, error) {
	w := jobFilter(f, "")
	runs := jobFilter(f, "")
	runs.add("state IN ('scheduled', 'available')")
	return s.bulkWrite(ctx, "delete", func(x execer, now int64) (int64, error) {
		if _, err := x.exec(`UPDATE spool_schedules SET live_job_id = NULL,
				next_run_at = CASE WHEN release_delay > 0 THEN (? + 999999) / 1000000 * 1000000 + release_delay ELSE next_run_at END
			WHERE live_job_id IN (SELECT id FROM spool_jobs WHERE `+runs.sql()+`)`, append([]any{now}, runs.args...)...); err != nil {
			return 0, err
		}
		res, err := x.exec(`DELETE FROM spool_jobs WHERE `+w.sql(), w.args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
}

// numbered turns the ? parameters of q, which takes the arguments of each
// group in turn, into numbered ones from ?2 on (?1 is the caller's first
// argument), and returns q with the arguments in order.
func numbered(q string, groups ...[]any) (string, []any) {
	var args []any
	for _, g := range groups {
		args = append(args, g...)
	}
	out := make([]byte, 0, len(q)+2*len(args))
	n := 1
	for i := 0; i < len(q); i++ {
		if q[i] == '?' && (i+1 == len(q) || q[i+1] < '0' || q[i+1] > '9') {
			n++
			out = append(out, '?')
			out = strconv.AppendInt(out, int64(n), 10)
			continue
		}
		out = append(out, q[i])
	}
	return string(out), args
}
