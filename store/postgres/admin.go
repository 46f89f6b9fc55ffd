package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// GetJob implements engine.Driver.
func (s *backend) GetJob(ctx context.Context, id store.ID) (*store.Job, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	j, err := scanJob(s.pool.QueryRow(ctx, s.q.get, [16]byte(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.JobNotFound(id)
	}
	if err != nil {
		return nil, s.fail(ctx, "get", err)
	}
	return j, nil
}

// GetByUniqueKey implements engine.Driver.
func (s *backend) GetByUniqueKey(ctx context.Context, tenant, key string) (*store.Job, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	j, err := scanJob(s.pool.QueryRow(ctx, s.q.uniqueKey, tenant, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.UniqueKeyNotFound(tenant, key)
	}
	if err != nil {
		return nil, s.fail(ctx, "get by unique key", err)
	}
	return j, nil
}

// ListJobs implements engine.Driver.
func (s *backend) ListJobs(ctx context.Context, f store.ListParams) ([]*store.Job, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	w := &filter{}
	w.jobs(f, "")
	order := "id"
	if f.Newest {
		order = "id DESC"
	}
	if !f.After.IsZero() {
		if f.Newest {
			w.add("id < " + w.param([16]byte(f.After)))
		} else {
			w.add("id > " + w.param([16]byte(f.After)))
		}
	}
	q := render(`SELECT `+jobColumns+` FROM {schema}.jobs WHERE `+w.sql()+` ORDER BY `+order+` LIMIT `+w.param(f.Limit+1), s.schema)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Job, error) { return scanJob(r) })
	if err != nil {
		return nil, s.fail(ctx, "list", err)
	}
	return jobs, nil
}

// jobStates returns the state of each of ids that exists.
func (s *backend) jobStates(ctx context.Context, q querier, want [][16]byte) (map[store.ID]store.State, error) {
	out := map[store.ID]store.State{}
	if len(want) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, s.q.jobStates, want)
	if err != nil {
		return nil, err
	}
	var id [16]byte
	var st string
	_, err = pgx.ForEachRow(rows, []any{&id, &st}, func() error {
		out[id] = store.State(st)
		return nil
	})
	return out, err
}

// CancelJobs implements engine.Driver with one UPDATE for the batch. A job
// named twice is cancelled by the first and refused as cancelled by the
// second.
func (s *backend) CancelJobs(ctx context.Context, idList []store.ID, errs []error) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	cancelled := map[store.ID]bool{}
	err := pgx.BeginTxFunc(ctx, s.pool, txOptions, func(tx pgx.Tx) error {
		clear(cancelled)
		rows, err := tx.Query(ctx, s.q.cancel, s.now(), ids(idList))
		if err != nil {
			return err
		}
		var id [16]byte
		if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			cancelled[id] = true
			return nil
		}); err != nil {
			return err
		}
		var others [][16]byte
		for _, id := range idList {
			if !cancelled[id] {
				others = append(others, id)
			}
		}
		states, err := s.jobStates(ctx, tx, others)
		if err != nil {
			return err
		}
		seen := map[store.ID]bool{}
		for i, id := range idList {
			switch st, ok := states[id]; {
			case cancelled[id] && !seen[id]:
				errs[i] = nil
			case cancelled[id]:
				errs[i] = &store.StateError{ID: id, State: store.StateCancelled, Op: "cancel"}
			case ok:
				errs[i] = &store.StateError{ID: id, State: st, Op: "cancel"}
			default:
				errs[i] = store.JobNotFound(id)
			}
			seen[id] = true
		}
		return nil
	})
	if err != nil {
		return s.fail(ctx, "cancel", err)
	}
	var done []store.ID
	for id := range cancelled {
		done = append(done, id)
	}
	s.changed(nil, done)
	return nil
}

// requeueTarget is a job Requeue looked at.
type requeueTarget struct {
	queue, tenant, unique string
	state                 store.State
}

// RequeueJobs implements engine.Driver. Jobs without a unique key are requeued by
// one UPDATE; a job with one is requeued alone under a savepoint, so that
// another job holding its key (found by the unique index: a live one, or a
// finished one within its window) refuses it with ErrDuplicate and changes
// nothing.
func (s *backend) RequeueJobs(ctx context.Context, idList []store.ID, errs []error) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	var queues []string
	err := pgx.BeginTxFunc(ctx, s.pool, txOptions, func(tx pgx.Tx) error {
		queues = queues[:0]
		now := s.now()
		rows, err := tx.Query(ctx, s.q.requeueLock, ids(idList))
		if err != nil {
			return err
		}
		targets := map[store.ID]*requeueTarget{}
		var id [16]byte
		var t requeueTarget
		var st string
		if _, err := pgx.ForEachRow(rows, []any{&id, &t.queue, &t.tenant, &t.unique, &st}, func() error {
			t.state = store.State(st)
			c := t
			targets[id] = &c
			return nil
		}); err != nil {
			return err
		}
		var bulk [][16]byte
		for i, id := range idList {
			t := targets[id]
			switch {
			case t == nil:
				errs[i] = store.JobNotFound(id)
				continue
			case t.state != store.StateDead && t.state != store.StateCancelled:
				errs[i] = &store.StateError{ID: id, State: t.state, Op: "requeue"}
				continue
			case t.unique == "":
				bulk = append(bulk, id)
			default:
				if errs[i], err = s.requeueUnique(ctx, tx, id, t, now); err != nil {
					return err
				}
				if errs[i] != nil {
					continue
				}
			}
			t.state = store.StateAvailable // a second mention of the job finds it requeued
			if !slices.Contains(queues, t.queue) {
				queues = append(queues, t.queue)
			}
		}
		if len(bulk) > 0 {
			if _, err := tx.Exec(ctx, s.q.requeue, now, bulk); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail(ctx, "requeue", err)
	}
	s.changed(queues, nil)
	return nil
}

// requeueUnique requeues one job with a unique key under a savepoint. The
// first result is the item's answer: nil, or ErrDuplicate when another job
// holds the key. A finished job holding it for a window that has passed
// gives it up, and the requeue is tried again.
func (s *backend) requeueUnique(ctx context.Context, tx pgx.Tx, id store.ID, t *requeueTarget, now time.Time) (error, error) {
	for range 5 {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return nil, err
		}
		_, err = sp.Exec(ctx, s.q.requeue, now, [][16]byte{id})
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23505" {
			if err != nil {
				_ = sp.Rollback(ctx)
				return nil, err
			}
			return nil, sp.Commit(ctx)
		}
		// unique_violation: another job holds the key.
		if rerr := sp.Rollback(ctx); rerr != nil {
			return nil, rerr
		}
		h, err := s.takeKey(ctx, pgxExec{tx}, t.tenant, t.unique, id, now)
		if err != nil {
			return nil, err
		}
		if h != nil {
			return fmt.Errorf("%w: job %s (%s) holds unique key %q", store.ErrDuplicate, h.id, h.state, t.unique), nil
		}
	}
	return fmt.Errorf("%w: the jobs holding unique key %q keep changing", store.ErrDuplicate, t.unique), nil
}

// PurgeDead implements engine.Driver.
func (s *backend) PurgeDead(ctx context.Context, p store.PurgeParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	var want [][16]byte
	if p.IDs != nil {
		want = ids(p.IDs)
	}
	var n int
	var held []string
	if err := s.pool.QueryRow(ctx, s.q.purge, p.Queue, want).Scan(&n, &held); err != nil {
		return 0, s.fail(ctx, "purge", err)
	}
	s.changed(held, nil) // the next job of a key a purged dead job held may run
	return n, nil
}

// SetQueuePaused implements engine.Driver.
func (s *backend) SetQueuePaused(ctx context.Context, queue string, paused bool) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, s.q.setPaused, queue, paused, s.now()); err != nil {
		return s.fail(ctx, "pause queue", err)
	}
	if !paused {
		s.changed([]string{queue}, nil)
	}
	return nil
}

// CountJobs implements engine.Driver.
func (s *backend) CountJobs(ctx context.Context, finishedCap int) (*engine.Counts, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	c := &engine.Counts{Paused: map[string]bool{}}
	rows, err := s.pool.Query(ctx, s.q.stats, finishedCap+1)
	if err != nil {
		return nil, s.fail(ctx, "stats", err)
	}
	var q, state string
	var n int64
	var oldest *time.Time
	if _, err := pgx.ForEachRow(rows, []any{&q, &state, &n, &oldest}, func() error {
		r := engine.CountRow{Queue: q, State: store.State(state), N: int(n)}
		if oldest != nil {
			r.Oldest = *oldest
		}
		c.Rows = append(c.Rows, r)
		return nil
	}); err != nil {
		return nil, s.fail(ctx, "stats", err)
	}
	rows, err = s.pool.Query(ctx, s.q.queueStates)
	if err != nil {
		return nil, s.fail(ctx, "stats", err)
	}
	var paused bool
	if _, err := pgx.ForEachRow(rows, []any{&q, &paused}, func() error {
		c.Paused[q] = paused
		return nil
	}); err != nil {
		return nil, s.fail(ctx, "stats", err)
	}
	return c, nil
}

// PruneFinished implements engine.Driver: per finished state, one DELETE of the
// oldest rows past the cutoff, skipping rows other nodes are deleting, and
// at most Limit rows in all.
func (s *backend) PruneFinished(ctx context.Context, p store.PruneParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	total := 0
	for _, c := range []struct {
		state  store.State
		before time.Time
	}{{store.StateCompleted, p.CompletedBefore}, {store.StateCancelled, p.CancelledBefore}, {store.StateDead, p.DeadBefore}} {
		left := p.Limit - total
		if c.before.IsZero() || left <= 0 {
			continue
		}
		tag, err := s.pool.Exec(ctx, s.q.prune, string(c.state), c.before, left)
		if err != nil {
			return total, s.fail(ctx, "prune", err)
		}
		total += int(tag.RowsAffected())
	}
	return total, nil
}
