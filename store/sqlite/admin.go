package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// GetJob implements engine.Driver.
func (s *backend) GetJob(ctx context.Context, id store.ID) (*store.Job, error) {
	j, err := scanJob(s.rdb.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM spool_jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.JobNotFound(id)
	}
	return j, s.readErr(err)
}

// uniqueKeySQL reads the job GetByUniqueKey answers: the one holding the
// key (a probe of spool_jobs_unique; its OR is written as in the index's
// predicate), else the newest finished one (spool_jobs_unique_finished).
var uniqueKeySQL = `SELECT ` + jobColumns + ` FROM (
	SELECT ` + jobColumns + `, 0 AS pick FROM spool_jobs
	WHERE tenant = ?1 AND unique_key = ?2 AND (state IN ('scheduled', 'available', 'running') OR unique_held = 1)
	UNION ALL
	SELECT * FROM (
		SELECT ` + jobColumns + `, 1 AS pick FROM spool_jobs
		WHERE tenant = ?1 AND unique_key = ?2 AND state IN ('completed', 'cancelled', 'dead')
		ORDER BY created_at DESC, id DESC LIMIT 1))
ORDER BY pick LIMIT 1`

// GetByUniqueKey implements engine.Driver.
func (s *backend) GetByUniqueKey(ctx context.Context, tenant, key string) (*store.Job, error) {
	j, err := scanJob(s.rdb.QueryRowContext(ctx, uniqueKeySQL, tenant, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.UniqueKeyNotFound(tenant, key)
	}
	return j, s.readErr(err)
}

func (s *backend) readErr(err error) error {
	if err != nil && s.isClosed() {
		return store.ErrClosed
	}
	return err
}

func (s *backend) isClosed() bool {
	s.writer.mu.RLock()
	defer s.writer.mu.RUnlock()
	return s.writer.closed
}

// ListJobs implements engine.Driver in two steps: the IDs of the page,
// from an index when one serves the filter (and without reading the rows
// of the jobs passed over, when the index must be sorted: a queue's
// available or scheduled jobs, which are not in ID order in their
// indexes), then those jobs.
func (s *backend) ListJobs(ctx context.Context, f store.ListParams) ([]*store.Job, error) {
	w := jobFilter(f, "")
	order := "id"
	if f.Newest {
		order = "id DESC"
	}
	if !f.After.IsZero() {
		if f.Newest {
			w.add("id < ?", f.After)
		} else {
			w.add("id > ?", f.After)
		}
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+jobColumns+` FROM spool_jobs WHERE id IN (
		SELECT id FROM spool_jobs WHERE `+w.sql()+` ORDER BY `+order+` LIMIT ?) ORDER BY `+order,
		append(w.args, f.Limit+1)...)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	var jobs []*store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, s.readErr(rows.Err())
}

// perItem runs fn for each item in one write and fills the per-item
// answers.
func perItem[T any](ctx context.Context, s *backend, items []T, errs []error,
	fn func(x execer, item T, now time.Time) (error, error), after func()) error {
	return s.writer.do(ctx, func(x execer) error {
		now := s.now()
		for i, item := range items {
			var err error
			if errs[i], err = fn(x, item, now); err != nil {
				return err
			}
		}
		return nil
	}, after)
}

// stateOf explains why a conditional update did not apply: ErrNotFound, or a
// *store.StateError naming the job's state.
func stateOf(x execer, id store.ID, op string) error {
	var st string
	switch err := x.queryRow(`SELECT state FROM spool_jobs WHERE id = ?`, id).Scan(&st); {
	case errors.Is(err, sql.ErrNoRows):
		return store.JobNotFound(id)
	case err != nil:
		return err
	}
	return &store.StateError{ID: id, State: store.State(st), Op: op}
}

// CancelJobs implements engine.Driver.
func (s *backend) CancelJobs(ctx context.Context, ids []store.ID, errs []error) error {
	return perItem(ctx, s, ids, errs, func(x execer, id store.ID, now time.Time) (error, error) {
		res, err := x.exec(`UPDATE spool_jobs SET state = 'cancelled', finished_at = ?, lock_token = NULL, locked_until = NULL
			WHERE id = ? AND state IN ('scheduled', 'available', 'running')`, now.UnixMicro(), id)
		if err != nil {
			return nil, fmt.Errorf("spool: cancel: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil, nil
		}
		return stateOf(x, id, "cancel"), nil
	}, func() { s.finished.Fire(ids...) })
}

// RequeueJobs implements engine.Driver.
func (s *backend) RequeueJobs(ctx context.Context, ids []store.ID, errs []error) error {
	queues := map[string]bool{}
	return perItem(ctx, s, ids, errs, func(x execer, id store.ID, now time.Time) (error, error) {
		var queue, tenant, state string
		var uniq sql.NullString
		err := x.queryRow(`SELECT queue, tenant, unique_key, state FROM spool_jobs WHERE id = ?`, id).Scan(&queue, &tenant, &uniq, &state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.JobNotFound(id), nil
		case err != nil:
			return nil, err
		case state != string(store.StateDead) && state != string(store.StateCancelled):
			return &store.StateError{ID: id, State: store.State(state), Op: "requeue"}, nil
		}
		if uniq.Valid {
			h, err := takeKey(x, tenant, uniq.String, id, now)
			if err != nil {
				return nil, err
			}
			if h != nil {
				return fmt.Errorf("%w: job %s (%s) holds unique key %q", store.ErrDuplicate, h.id, h.state, uniq.String), nil
			}
		}
		if _, err := x.exec(`UPDATE spool_jobs SET state = 'available', attempts = 0, deliveries = 0, run_at = ?,
			finished_at = NULL, dead_reason = NULL, result = NULL WHERE id = ?`, now.UnixMicro(), id); err != nil {
			return nil, fmt.Errorf("spool: requeue: %w", err)
		}
		queues[queue] = true
		return nil, nil
	}, func() {
		for q := range queues {
			s.available.Fire(q)
		}
	})
}

// PurgeDead implements engine.Driver. Purging dead jobs that hold their
// ordering key lets the next job of each key run, so it wakes their queues.
func (s *backend) PurgeDead(ctx context.Context, p store.PurgeParams) (int, error) {
	var n int64
	var held []string // queues to wake
	err := s.writer.do(ctx, func(x execer) error {
		n = 0
		var err error
		if held, err = heldQueues(x, p.Queue); err != nil {
			return fmt.Errorf("spool: purge: %w", err)
		}
		q := `DELETE FROM spool_jobs WHERE state = 'dead' AND (? = '' OR queue = ?)`
		if len(p.IDs) == 0 {
			res, err := x.exec(q, p.Queue, p.Queue)
			if err != nil {
				return fmt.Errorf("spool: purge: %w", err)
			}
			n, _ = res.RowsAffected()
			return nil
		}
		for _, id := range p.IDs {
			res, err := x.exec(q+` AND id = ?`, p.Queue, p.Queue, id)
			if err != nil {
				return fmt.Errorf("spool: purge: %w", err)
			}
			d, _ := res.RowsAffected()
			n += d
		}
		return nil
	}, func() {
		for _, q := range held {
			s.available.Fire(q)
		}
	})
	return int(n), err
}

// heldQueues returns the queues (queue's, or every one when it is empty)
// that have dead jobs holding their ordering key: spool_jobs_dead_holds,
// usually empty. A purge wakes them; matching by queue only, it may wake
// one too many, which is harmless.
func heldQueues(x execer, queue string) ([]string, error) {
	rows, err := x.query(`SELECT DISTINCT queue FROM spool_jobs
		WHERE state = 'dead' AND hold_when_dead = 1 AND (? = '' OR queue = ?)`, queue, queue)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// SetQueuePaused implements engine.Driver.
func (s *backend) SetQueuePaused(ctx context.Context, queue string, paused bool) error {
	after := func() {}
	if !paused {
		after = func() { s.available.Fire(queue) }
	}
	return s.writer.do(ctx, func(x execer) error {
		_, err := x.exec(`INSERT INTO spool_queues (name, paused, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at`,
			queue, paused, s.now().UnixMicro())
		return err
	}, after)
}

// countLiveSQL counts the live jobs per queue and state, each state from
// its own partial index, with the oldest run_at of the available ones.
const countLiveSQL = `SELECT queue, 'available', count(*), min(run_at) FROM spool_jobs WHERE state = 'available' GROUP BY queue
UNION ALL SELECT queue, 'scheduled', count(*), NULL FROM spool_jobs WHERE state = 'scheduled' GROUP BY queue
UNION ALL SELECT queue, 'running', count(*), NULL FROM spool_jobs WHERE state = 'running' GROUP BY queue`

// finished is the predicate of spool_jobs_queue_finished, written as it
// is there, so that a query containing it may use the index.
const finished = `(state = 'completed' OR state = 'cancelled' OR state = 'dead')`

// countFinishedSQL counts each queue's finished jobs per state up to ?1:
// the queues that have any come from a skip-scan of
// spool_jobs_queue_finished (one probe per queue; named, since without
// statistics SQLite would rather walk spool_jobs_finished, whose predicate
// the query's OR matches too), and each count reads at most ?1 entries of
// it.
var countFinishedSQL = `WITH RECURSIVE q(name) AS (
	SELECT min(queue) FROM spool_jobs INDEXED BY spool_jobs_queue_finished WHERE ` + finished + `
	UNION ALL
	SELECT (SELECT min(queue) FROM spool_jobs INDEXED BY spool_jobs_queue_finished WHERE ` + finished + ` AND queue > q.name)
	FROM q WHERE q.name IS NOT NULL)
SELECT name,
	(SELECT count(*) FROM (SELECT 1 FROM spool_jobs WHERE queue = q.name AND state = 'completed' LIMIT ?1)),
	(SELECT count(*) FROM (SELECT 1 FROM spool_jobs WHERE queue = q.name AND state = 'cancelled' LIMIT ?1)),
	(SELECT count(*) FROM (SELECT 1 FROM spool_jobs WHERE queue = q.name AND state = 'dead' LIMIT ?1))
FROM q WHERE name IS NOT NULL`

// CountJobs implements engine.Driver.
func (s *backend) CountJobs(ctx context.Context, finishedCap int) (*engine.Counts, error) {
	c := &engine.Counts{Paused: map[string]bool{}}
	rows, err := s.rdb.QueryContext(ctx, countLiveSQL)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r engine.CountRow
		var state string
		var oldest sql.NullInt64
		if err := rows.Scan(&r.Queue, &state, &r.N, &oldest); err != nil {
			return nil, s.readErr(err)
		}
		r.State, r.Oldest = store.State(state), fromMicros(oldest)
		c.Rows = append(c.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr(err)
	}
	frows, err := s.rdb.QueryContext(ctx, countFinishedSQL, finishedCap+1)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer frows.Close()
	for frows.Next() {
		var q string
		var n [3]int
		if err := frows.Scan(&q, &n[0], &n[1], &n[2]); err != nil {
			return nil, s.readErr(err)
		}
		for i, st := range []store.State{store.StateCompleted, store.StateCancelled, store.StateDead} {
			c.Rows = append(c.Rows, engine.CountRow{Queue: q, State: st, N: n[i]})
		}
	}
	if err := frows.Err(); err != nil {
		return nil, s.readErr(err)
	}
	qrows, err := s.rdb.QueryContext(ctx, `SELECT name, paused FROM spool_queues`)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer qrows.Close()
	for qrows.Next() {
		var q string
		var paused bool
		if err := qrows.Scan(&q, &paused); err != nil {
			return nil, err
		}
		c.Paused[q] = paused
	}
	return c, s.readErr(qrows.Err())
}

// PruneFinished implements engine.Driver.
func (s *backend) PruneFinished(ctx context.Context, p store.PruneParams) (int, error) {
	var total int64
	err := s.writer.doLight(ctx, func(x execer) error {
		total = 0
		for _, c := range []struct {
			state  store.State
			before time.Time
		}{{store.StateCompleted, p.CompletedBefore}, {store.StateCancelled, p.CancelledBefore}, {store.StateDead, p.DeadBefore}} {
			left := int64(p.Limit) - total
			if c.before.IsZero() || left <= 0 {
				continue
			}
			res, err := x.exec(`DELETE FROM spool_jobs WHERE id IN (
				SELECT id FROM spool_jobs WHERE state = ? AND finished_at < ? ORDER BY finished_at LIMIT ?)`,
				string(c.state), c.before.UnixMicro(), left)
			if err != nil {
				return fmt.Errorf("spool: prune: %w", err)
			}
			n, _ := res.RowsAffected()
			total += n
		}
		return nil
	}, nil)
	return int(total), err
}
