package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spoolrun/spool/store"
)

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id store.ID) (*store.Job, error) {
	j, err := scanJob(s.rdb.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM spool_jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.JobNotFound(id)
	}
	return j, s.readErr(err)
}

func (s *Store) readErr(err error) error {
	if err != nil && s.isClosed() {
		return store.ErrClosed
	}
	return err
}

func (s *Store) isClosed() bool {
	s.writer.mu.RLock()
	defer s.writer.mu.RUnlock()
	return s.writer.closed
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, f store.ListParams) (*store.ListPage, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(clause string, vals ...any) {
		where = append(where, clause)
		args = append(args, vals...)
	}
	if !f.After.IsZero() {
		add("id > ?", f.After)
	}
	if f.Queue != "" {
		add("queue = ?", f.Queue)
	}
	if f.Kind != "" {
		add("kind = ?", f.Kind)
	}
	if f.Tenant != "" {
		add("tenant = ?", f.Tenant)
	}
	if len(f.States) > 0 {
		vals := make([]any, len(f.States))
		for i, st := range f.States {
			vals[i] = string(st)
		}
		add("state IN ("+placeholders(len(vals))+")", vals...)
	}
	q := `SELECT ` + jobColumns + ` FROM spool_jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id LIMIT ?"
	args = append(args, f.Limit+1)
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	page := &store.ListPage{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		page.Jobs = append(page.Jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(page.Jobs) > f.Limit {
		page.Jobs = page.Jobs[:f.Limit]
		page.Next = page.Jobs[f.Limit-1].ID
	}
	return page, nil
}

// perItem runs fn for each item in one write and collects per-item answers.
// check validates the batch first (a whole-call error writes nothing).
func perItem[T any](ctx context.Context, s *Store, items []T, check func([]T) error,
	fn func(x execer, item T, now time.Time) (error, error), after func()) ([]error, error) {
	if err := check(items); err != nil {
		return nil, err
	}
	errs := make([]error, len(items))
	err := s.writer.do(ctx, func(x execer) error {
		now := s.now()
		for i, item := range items {
			var err error
			if errs[i], err = fn(x, item, now); err != nil {
				return err
			}
		}
		return nil
	}, after)
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// checkIDs checks the size of a batch of job IDs.
func checkIDs(ids []store.ID) error { return store.CheckBatch(len(ids)) }

// stateOf explains why a conditional update did not apply: ErrNotFound, or a
// *store.StateError naming the job's state.
func stateOf(x execer, id store.ID, op string) error {
	var st string
	switch err := x.queryRow(`SELECT state FROM spool_jobs WHERE id = ?`, id).Scan(&st); {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	}
	return &store.StateError{ID: id, State: store.State(st), Op: op}
}

// Cancel implements store.Store.
func (s *Store) Cancel(ctx context.Context, ids []store.ID) ([]error, error) {
	return perItem(ctx, s, ids, checkIDs, func(x execer, id store.ID, now time.Time) (error, error) {
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

// Requeue implements store.Store.
func (s *Store) Requeue(ctx context.Context, ids []store.ID) ([]error, error) {
	queues := map[string]bool{}
	return perItem(ctx, s, ids, checkIDs, func(x execer, id store.ID, now time.Time) (error, error) {
		var queue, tenant, state string
		var uniq sql.NullString
		err := x.queryRow(`SELECT queue, tenant, unique_key, state FROM spool_jobs WHERE id = ?`, id).Scan(&queue, &tenant, &uniq, &state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrNotFound, nil
		case err != nil:
			return nil, err
		case state != string(store.StateDead) && state != string(store.StateCancelled):
			return &store.StateError{ID: id, State: store.State(state), Op: "requeue"}, nil
		}
		if uniq.Valid {
			var other store.ID
			var st string
			err := x.queryRow(findLiveUniqueSQL, tenant, uniq.String).Scan(&other, &st)
			if err == nil {
				return fmt.Errorf("%w: job %s holds unique key %q", store.ErrDuplicate, other, uniq.String), nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, err
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

// Purge implements store.Store.
func (s *Store) Purge(ctx context.Context, p store.PurgeParams) (int, error) {
	if err := store.CheckBatch(len(p.IDs)); err != nil {
		return 0, err
	}
	if p.Queue != "" {
		if err := store.ValidName("queue", p.Queue, false); err != nil {
			return 0, err
		}
	}
	var n int64
	err := s.writer.do(ctx, func(x execer) error {
		n = 0
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
	}, nil)
	return int(n), err
}

// PauseQueue implements store.Store.
func (s *Store) PauseQueue(ctx context.Context, queue string) error {
	return s.setPaused(ctx, queue, true)
}

// ResumeQueue implements store.Store.
func (s *Store) ResumeQueue(ctx context.Context, queue string) error {
	return s.setPaused(ctx, queue, false)
}

func (s *Store) setPaused(ctx context.Context, queue string, paused bool) error {
	if err := store.ValidName("queue", queue, false); err != nil {
		return err
	}
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

// Stats implements store.Store.
func (s *Store) Stats(ctx context.Context) ([]store.QueueStats, error) {
	byQueue := map[string]*store.QueueStats{}
	var order []string
	get := func(q string) *store.QueueStats {
		st, ok := byQueue[q]
		if !ok {
			st = &store.QueueStats{Queue: q, Counts: map[store.State]int{}}
			for _, s := range store.States {
				st.Counts[s] = 0
			}
			byQueue[q] = st
			order = append(order, q)
		}
		return st
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT queue, state, count(*), min(run_at) FROM spool_jobs GROUP BY queue, state ORDER BY queue`)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	now := s.now()
	for rows.Next() {
		var q, state string
		var n int
		var oldest sql.NullInt64
		if err := rows.Scan(&q, &state, &n, &oldest); err != nil {
			return nil, err
		}
		st := get(q)
		st.Counts[store.State(state)] = n
		if state == string(store.StateAvailable) && oldest.Valid {
			st.OldestAvailable = max(0, now.Sub(time.UnixMicro(oldest.Int64)))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	qrows, err := s.rdb.QueryContext(ctx, `SELECT name, paused FROM spool_queues ORDER BY name`)
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
		get(q).Paused = paused
	}
	if err := qrows.Err(); err != nil {
		return nil, err
	}
	out := make([]store.QueueStats, 0, len(order))
	for _, q := range order {
		out = append(out, *byQueue[q])
	}
	slices.SortFunc(out, func(a, b store.QueueStats) int { return strings.Compare(a.Queue, b.Queue) })
	return out, nil
}

// Prune implements store.Store.
func (s *Store) Prune(ctx context.Context, p store.PruneParams) (int, error) {
	if p.Limit == 0 {
		p.Limit = 10_000
	}
	if p.Limit < 0 || p.Limit > 100_000 {
		return 0, &store.ValidationError{Field: "prune limit", Reason: fmt.Sprintf("%d is outside 1..100000", p.Limit)}
	}
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
