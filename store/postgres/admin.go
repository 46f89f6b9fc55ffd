package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolrun/spool/store"
)

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id store.ID) (*store.Job, error) {
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

// List implements store.Store.
func (s *Store) List(ctx context.Context, f store.ListParams) (*store.ListPage, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := f.Check(); err != nil {
		return nil, err
	}
	var after any
	if !f.After.IsZero() {
		after = [16]byte(f.After)
	}
	var states []string
	for _, st := range f.States {
		states = append(states, string(st))
	}
	rows, err := s.pool.Query(ctx, s.q.list, after, f.Queue, f.Kind, f.Tenant, states, f.Limit+1)
	if err != nil {
		return nil, s.fail(ctx, "list", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.Job, error) { return scanJob(r) })
	if err != nil {
		return nil, s.fail(ctx, "list", err)
	}
	page := &store.ListPage{Jobs: jobs}
	if len(jobs) > f.Limit {
		page.Jobs = jobs[:f.Limit]
		page.Next = page.Jobs[f.Limit-1].ID
	}
	return page, nil
}

// jobStates returns the state of each of ids that exists.
func (s *Store) jobStates(ctx context.Context, q querier, want [][16]byte) (map[store.ID]store.State, error) {
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

// Cancel implements store.Store with one UPDATE for the batch. A job named
// twice is cancelled by the first and refused as cancelled by the second.
func (s *Store) Cancel(ctx context.Context, idList []store.ID) ([]error, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(idList)); err != nil {
		return nil, err
	}
	errs := make([]error, len(idList))
	if len(idList) == 0 {
		return errs, nil
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
				errs[i] = store.ErrNotFound
			}
			seen[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "cancel", err)
	}
	var done []store.ID
	for id := range cancelled {
		done = append(done, id)
	}
	s.changed(nil, done)
	return errs, nil
}

// requeueTarget is a job Requeue looked at.
type requeueTarget struct {
	queue, tenant, unique string
	state                 store.State
}

// Requeue implements store.Store. Jobs without a unique key are requeued by
// one UPDATE; a job with one is requeued alone under a savepoint, so that a
// live job holding its key (found by the unique index) refuses it with
// ErrDuplicate and changes nothing.
func (s *Store) Requeue(ctx context.Context, idList []store.ID) ([]error, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckBatch(len(idList)); err != nil {
		return nil, err
	}
	errs := make([]error, len(idList))
	if len(idList) == 0 {
		return errs, nil
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
				errs[i] = store.ErrNotFound
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
		return nil, s.fail(ctx, "requeue", err)
	}
	s.changed(queues, nil)
	return errs, nil
}

// requeueUnique requeues one job with a unique key under a savepoint. The
// first result is the item's answer: nil, or ErrDuplicate when a live job
// holds the key.
func (s *Store) requeueUnique(ctx context.Context, tx pgx.Tx, id store.ID, t *requeueTarget, now time.Time) (error, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	_, err = sp.Exec(ctx, s.q.requeue, now, [][16]byte{id})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation: a live job holds the key
		if rerr := sp.Rollback(ctx); rerr != nil {
			return nil, rerr
		}
		var holder [16]byte
		var st string
		if err := tx.QueryRow(ctx, s.q.findLiveUnique, t.tenant, t.unique).Scan(&holder, &st); err != nil {
			return fmt.Errorf("%w: a live job holds unique key %q", store.ErrDuplicate, t.unique), nil //nolint:nilerr // the holder is only named in the message
		}
		return fmt.Errorf("%w: job %s holds unique key %q", store.ErrDuplicate, store.ID(holder), t.unique), nil
	}
	if err != nil {
		_ = sp.Rollback(ctx)
		return nil, err
	}
	return nil, sp.Commit(ctx)
}

// Purge implements store.Store.
func (s *Store) Purge(ctx context.Context, p store.PurgeParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	if err := store.CheckBatch(len(p.IDs)); err != nil {
		return 0, err
	}
	if p.Queue != "" {
		if err := store.ValidName("queue", p.Queue, false); err != nil {
			return 0, err
		}
	}
	var want [][16]byte
	if p.IDs != nil {
		want = ids(p.IDs)
	}
	tag, err := s.pool.Exec(ctx, s.q.purge, p.Queue, want)
	if err != nil {
		return 0, s.fail(ctx, "purge", err)
	}
	return int(tag.RowsAffected()), nil
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
	if err := s.start(ctx); err != nil {
		return err
	}
	if err := store.ValidName("queue", queue, false); err != nil {
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

// Stats implements store.Store.
func (s *Store) Stats(ctx context.Context) ([]store.QueueStats, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	byQueue := map[string]*store.QueueStats{}
	get := func(q string) *store.QueueStats {
		st, ok := byQueue[q]
		if !ok {
			st = &store.QueueStats{Queue: q, Counts: map[store.State]int{}}
			for _, s := range store.States {
				st.Counts[s] = 0
			}
			byQueue[q] = st
		}
		return st
	}
	now := s.now()
	rows, err := s.pool.Query(ctx, s.q.stats)
	if err != nil {
		return nil, s.fail(ctx, "stats", err)
	}
	var q, state string
	var n int64
	var oldest time.Time
	if _, err := pgx.ForEachRow(rows, []any{&q, &state, &n, &oldest}, func() error {
		st := get(q)
		st.Counts[store.State(state)] = int(n)
		if state == string(store.StateAvailable) {
			st.OldestAvailable = max(0, now.Sub(oldest))
		}
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
		get(q).Paused = paused
		return nil
	}); err != nil {
		return nil, s.fail(ctx, "stats", err)
	}
	out := make([]store.QueueStats, 0, len(byQueue))
	for _, st := range byQueue {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b store.QueueStats) int { return strings.Compare(a.Queue, b.Queue) })
	return out, nil
}

// Prune implements store.Store: per finished state, one DELETE of the
// oldest rows past the cutoff, skipping rows other nodes are deleting, and
// at most Limit rows in all.
func (s *Store) Prune(ctx context.Context, p store.PruneParams) (int, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	if p.Limit == 0 {
		p.Limit = 10_000
	}
	if p.Limit < 0 || p.Limit > 100_000 {
		return 0, &store.ValidationError{Field: "prune limit", Reason: fmt.Sprintf("%d is outside 1..100000", p.Limit)}
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
