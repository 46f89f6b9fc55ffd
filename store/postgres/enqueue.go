package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// execer runs the statements of an enqueue on a pgx connection or
// transaction, or on a caller's *sql.Tx.
type execer interface {
	exec(ctx context.Context, sql string, args ...any) error
	// queryIDs runs a statement that returns one uuid column.
	queryIDs(ctx context.Context, sql string, args ...any) ([]store.ID, error)
	queryRow(ctx context.Context, sql string, args ...any) interface{ Scan(...any) error }
}

// pgxQuerier is what pgx.Tx, *pgx.Conn and *pgxpool.Pool have in common.
type pgxQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgxExec struct{ q pgxQuerier }

func (x pgxExec) exec(ctx context.Context, sql string, args ...any) error {
	_, err := x.q.Exec(ctx, sql, args...)
	return err
}

func (x pgxExec) queryIDs(ctx context.Context, sql string, args ...any) ([]store.ID, error) {
	rows, err := x.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ID, error) {
		var id store.ID
		err := r.Scan((*[16]byte)(&id))
		return id, err
	})
}

func (x pgxExec) queryRow(ctx context.Context, sql string, args ...any) interface{ Scan(...any) error } {
	return x.q.QueryRow(ctx, sql, args...)
}

// sqlExec runs statements on a caller's *sql.Tx (pgx stdlib driver, which
// passes arguments through to pgx unchanged).
type sqlExec struct{ tx *sql.Tx }

func (x sqlExec) exec(ctx context.Context, sql string, args ...any) error {
	_, err := x.tx.ExecContext(ctx, sql, args...)
	return err
}

func (x sqlExec) queryIDs(ctx context.Context, sql string, args ...any) ([]store.ID, error) {
	rows, err := x.tx.QueryContext(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.ID
	for rows.Next() {
		var id store.ID
		if err := rows.Scan(idText{&id}); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (x sqlExec) queryRow(ctx context.Context, sql string, args ...any) interface{ Scan(...any) error } {
	return sqlRow{x.tx.QueryRowContext(ctx, sql, args...)}
}

// sqlRow scans uuid columns (which database/sql hands over as text) into
// *store.ID destinations.
type sqlRow struct{ r *sql.Row }

func (r sqlRow) Scan(dest ...any) error {
	for i, d := range dest {
		if b, ok := d.(*[16]byte); ok {
			dest[i] = idText{(*store.ID)(b)}
		}
	}
	return r.r.Scan(dest...)
}

// idText scans a uuid in its text or binary form.
type idText struct{ id *store.ID }

func (s idText) Scan(src any) error {
	switch v := src.(type) {
	case string:
		id, err := store.ParseID(v)
		*s.id = id
		return err
	case []byte:
		if len(v) == len(s.id) {
			copy(s.id[:], v)
			return nil
		}
		return s.Scan(string(v))
	case [16]byte:
		*s.id = v
		return nil
	}
	return fmt.Errorf("spool: cannot scan %T into a job id", src)
}

// InsertJobs implements engine.Driver. A fresh batch (no unique keys, no
// caller-chosen IDs) cannot conflict and is one INSERT statement; so is a
// single job without history, whose statements need no transaction: a row
// the INSERT skipped wrote nothing, and resolving it (finding the key's
// holder, or inserting again once the key is free) is a statement of its
// own either way. Otherwise the batch runs in a transaction that also
// resolves each skipped row, so that a refused row leaves none of the
// others behind.
func (s *backend) InsertJobs(ctx context.Context, in engine.Insert) ([]store.EnqueueResult, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	results := make([]store.EnqueueResult, len(in.Jobs))
	var err error
	if in.Fresh || len(in.Jobs) == 1 && !in.Jobs[0].HasHistory() {
		err = s.insertJobs(ctx, pgxExec{s.pool}, in.Jobs, results, in.Now)
	} else {
		err = pgx.BeginTxFunc(ctx, s.pool, txOptions, func(tx pgx.Tx) error {
			return s.insertJobs(ctx, pgxExec{tx}, in.Jobs, results, in.Now)
		})
	}
	if err != nil {
		var ie *store.ItemError
		if errors.As(err, &ie) {
			return nil, err
		}
		return nil, s.fail(ctx, "enqueue", err)
	}
	s.changed(availableQueues(in.Jobs, results), nil)
	return results, nil
}

// InsertJobsTx implements engine.TxInserter: the jobs are inserted on the
// caller's transaction and become visible, durable and claimable only when
// it commits; they vanish if it rolls back. tx must come from a *sql.DB of
// the pgx stdlib driver ("pgx") on the store's database. Workers are woken
// by a notification PostgreSQL delivers at commit (not in PollOnly mode,
// where they notice on their next poll).
func (s *backend) InsertJobsTx(ctx context.Context, tx *sql.Tx, jobs []store.EnqueueParams, now time.Time) ([]store.EnqueueResult, error) {
	return s.insertIn(ctx, jobs, now, func() (execer, func(ok bool) error, error) {
		x := sqlExec{tx}
		if err := x.exec(ctx, "SAVEPOINT spool_enqueue"); err != nil {
			return nil, nil, err
		}
		return x, func(ok bool) error {
			if ok {
				return x.exec(ctx, "RELEASE SAVEPOINT spool_enqueue")
			}
			return x.exec(ctx, "ROLLBACK TO SAVEPOINT spool_enqueue")
		}, nil
	})
}

// EnqueuePgxTx is EnqueueTx for a caller's pgx transaction (from a pgx.Conn
// or pgxpool.Pool on the store's database): the jobs commit or roll back
// with the caller's rows.
func (s *Store) EnqueuePgxTx(ctx context.Context, tx pgx.Tx, jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
	if tx == nil {
		return nil, &store.ValidationError{Field: "tx", Reason: "is nil"}
	}
	return s.EnqueueWith(ctx, jobs, func(jobs []store.EnqueueParams, now time.Time) ([]store.EnqueueResult, error) {
		return s.b.insertIn(ctx, jobs, now, func() (execer, func(ok bool) error, error) {
			sp, err := tx.Begin(ctx) // a savepoint
			if err != nil {
				return nil, nil, err
			}
			return pgxExec{sp}, func(ok bool) error {
				if ok {
					return sp.Commit(ctx)
				}
				return sp.Rollback(ctx)
			}, nil
		})
	})
}

// insertIn inserts normalized jobs inside a savepoint of a caller's
// transaction, made by savepoint, so that a refused batch leaves the
// caller's transaction usable; end(ok) releases or rolls back the savepoint.
func (s *backend) insertIn(ctx context.Context, jobs []store.EnqueueParams, now time.Time, savepoint func() (execer, func(ok bool) error, error)) ([]store.EnqueueResult, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	x, end, err := savepoint()
	if err != nil {
		return nil, s.fail(ctx, "enqueue in tx", err)
	}
	results := make([]store.EnqueueResult, len(jobs))
	err = s.insertJobs(ctx, x, jobs, results, now)
	if err == nil {
		err = s.notifyInTx(ctx, x, availableQueues(jobs, results))
	}
	if err != nil {
		if rerr := end(false); rerr != nil {
			err = errors.Join(err, rerr)
		}
		var ie *store.ItemError
		if errors.As(err, &ie) {
			return nil, err
		}
		return nil, s.fail(ctx, "enqueue in tx", err)
	}
	if err := end(true); err != nil {
		return nil, s.fail(ctx, "enqueue in tx", err)
	}
	return results, nil
}

// availableQueues lists the queues that got claimable jobs.
func availableQueues(jobs []store.EnqueueParams, results []store.EnqueueResult) []string {
	var out []string
	for i := range jobs {
		if !results[i].Duplicate && results[i].State == store.StateAvailable && !slices.Contains(out, jobs[i].Queue) {
			out = append(out, jobs[i].Queue)
		}
	}
	return out
}

// insertArgs are the parallel arrays insertSQL takes.
type insertArgs struct {
	ids                                                [][16]byte
	queues, kinds, states, tenants, uniques, orderings []string
	payloads                                           [][]byte
	priorities                                         []int16
	runAts                                             []time.Time
	maxAttempts, maxDeliveries                         []int32
	holds                                              []bool
	uniqueFor                                          []int64   // microseconds
	metadata                                           []*string // JSON objects; nil for none
	ext                                                bool      // a job has HoldKeyWhenDead, UniqueFor or Metadata: use insertExtSQL
}

func (a *insertArgs) add(p *store.EnqueueParams, state store.State) {
	a.ids = append(a.ids, p.ID)
	a.queues = append(a.queues, p.Queue)
	a.kinds = append(a.kinds, p.Kind)
	a.payloads = append(a.payloads, p.Payload)
	a.priorities = append(a.priorities, int16(p.Priority)) //nolint:gosec // validated to -100..100
	a.runAts = append(a.runAts, p.RunAt)
	a.states = append(a.states, string(state))
	a.tenants = append(a.tenants, p.Tenant)
	a.uniques = append(a.uniques, p.UniqueKey)
	a.orderings = append(a.orderings, p.OrderingKey)
	a.maxAttempts = append(a.maxAttempts, int32(p.MaxAttempts))       //nolint:gosec // validated to 1..10,000
	a.maxDeliveries = append(a.maxDeliveries, int32(p.MaxDeliveries)) //nolint:gosec // validated to 1..10,000
	a.holds = append(a.holds, p.HoldKeyWhenDead)
	a.uniqueFor = append(a.uniqueFor, int64((p.UniqueFor+time.Microsecond-1)/time.Microsecond)) // rounded up: any window is at least 1µs
	var meta *string
	if b := engine.EncodeMetadata(p.Metadata); b != nil {
		m := string(b)
		meta = &m
	}
	a.metadata = append(a.metadata, meta)
	a.ext = a.ext || p.HoldKeyWhenDead || p.UniqueFor > 0 || meta != nil
}

// statement returns the insert for the arrays, and its arguments: the
// common one sends no hold_when_dead nor UniqueFor arrays.
func (a *insertArgs) statement(q *queries, now time.Time) (string, []any) {
	return a.choose(q.insert, q.insertExt, now)
}

// strictStatement is statement's insert that fails instead of skipping a
// row (see insertRowsSQL).
func (a *insertArgs) strictStatement(q *queries, now time.Time) (string, []any) {
	return a.choose(q.insertStrict, q.insertExtStrict, now)
}

func (a *insertArgs) choose(insert, ext string, now time.Time) (string, []any) {
	args := []any{a.ids, a.queues, a.kinds, a.payloads, a.priorities, a.runAts, a.states, a.tenants,
		a.uniques, a.orderings, a.maxAttempts, a.maxDeliveries, now}
	if a.ext {
		return ext, append(args, a.holds, a.uniqueFor, a.metadata)
	}
	return insert, args
}

// newInsertArgs gathers jobs' columns for an insert and fills results as
// the insert leaves a row it inserts: available, or scheduled when it runs
// later than now.
func newInsertArgs(jobs []store.EnqueueParams, results []store.EnqueueResult, now time.Time) *insertArgs {
	a := &insertArgs{}
	for i := range jobs {
		state := store.StateAvailable
		if jobs[i].RunAt.After(now) {
			state = store.StateScheduled
		}
		results[i] = store.EnqueueResult{ID: jobs[i].ID, State: state}
		a.add(&jobs[i], state)
	}
	return a
}

// plainJobs reports whether no job has a unique key or history: their
// insert can only put every row in or fail.
func plainJobs(jobs []store.EnqueueParams) bool {
	for i := range jobs {
		if jobs[i].UniqueKey != "" || jobs[i].HasHistory() {
			return false
		}
	}
	return true
}

// queueInsert queues plain jobs' insert on a pipelined transaction, and
// fills results as the insert will leave them: a row it cannot insert (a
// taken ID) fails the statement, so the transaction, instead of being
// skipped.
func (s *backend) queueInsert(ctx context.Context, p *pipeExec, jobs []store.EnqueueParams, results []store.EnqueueResult, now time.Time) {
	a := newInsertArgs(jobs, results, now)
	insert, args := a.strictStatement(s.q, now)
	_ = p.exec(ctx, insert, args...) // queued: it cannot fail here
}

// insertJobs inserts normalized jobs in one statement and fills results. A
// row the INSERT skipped lost to a held unique key (its result then names
// the holder) or to a taken ID (an *ItemError: the caller rolls back). If
// the holder let the key go between the INSERT and the look-up (it
// finished, without a window), or holds it for a window that has passed
// (it then gives the key up), the row is inserted again.
func (s *backend) insertJobs(ctx context.Context, x execer, jobs []store.EnqueueParams, results []store.EnqueueResult, now time.Time) error {
	a := newInsertArgs(jobs, results, now)
	insert, args := a.statement(s.q, now)
	inserted, err := x.queryIDs(ctx, insert, args...)
	if err != nil {
		return err
	}
	if len(inserted) == len(jobs) {
		return s.carryHistory(ctx, x, jobs, results)
	}
	got := make(map[store.ID]bool, len(inserted))
	for _, id := range inserted {
		got[id] = true
	}
	for i := range jobs {
		if got[jobs[i].ID] {
			delete(got, jobs[i].ID) // a repeated caller ID is inserted once
			continue
		}
		if err := s.resolveSkipped(ctx, x, &jobs[i], &results[i], now); err != nil {
			var ve *store.ValidationError
			if errors.As(err, &ve) {
				return &store.ItemError{Index: i, Err: err}
			}
			return err
		}
	}
	return s.carryHistory(ctx, x, jobs, results)
}

// carryHistory records the attempts and errors that jobs start with, on
// the rows just inserted. Only jobs that continue work begun elsewhere have
// any (engine.Insert.Fresh is false for them, so this runs in the insert's
// transaction).
func (s *backend) carryHistory(ctx context.Context, x execer, jobs []store.EnqueueParams, results []store.EnqueueResult) error {
	for i := range jobs {
		p := &jobs[i]
		if !p.HasHistory() || results[i].Duplicate {
			continue
		}
		var errs []byte
		if len(p.Errors) > 0 {
			var err error
			if errs, err = json.Marshal(p.Errors); err != nil {
				return err
			}
		}
		if err := x.exec(ctx, s.q.carry, [16]byte(p.ID), p.Attempts, errs); err != nil {
			return err
		}
	}
	return nil
}

// resolveSkipped explains a row the INSERT skipped, retrying it a few times
// when the job holding its unique key lets it go under it, or gives it up
// because its window has passed.
func (s *backend) resolveSkipped(ctx context.Context, x execer, p *store.EnqueueParams, res *store.EnqueueResult, now time.Time) error {
	for range 5 {
		if p.UniqueKey != "" {
			h, err := s.takeKey(ctx, x, p.Tenant, p.UniqueKey, store.ID{}, now)
			if err != nil {
				return err
			}
			if h != nil {
				*res = store.EnqueueResult{ID: h.id, Duplicate: true, State: h.state}
				return nil
			}
		}
		var taken bool
		if err := x.queryRow(ctx, s.q.idTaken, [16]byte(p.ID)).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return &store.ValidationError{Field: "id", Reason: p.ID.String() + " is already taken"}
		}
		// The holder of the unique key finished since the INSERT: try again.
		var a insertArgs
		a.add(p, res.State)
		insert, args := a.statement(s.q, now)
		ids, err := x.queryIDs(ctx, insert, args...)
		if err != nil {
			return err
		}
		if len(ids) == 1 {
			return nil
		}
	}
	return fmt.Errorf("unique key %q of tenant %q: holder keeps changing", p.UniqueKey, p.Tenant)
}

// holder is the job holding a unique key.
type holder struct {
	id    store.ID
	state store.State
}

// takeKey clears the way for a job that wants (tenant, key): nil when no
// job but skip holds it, or when its holder is a finished job whose window
// has passed (it gives the key up here, in the caller's transaction); else
// the holder, which keeps it. skip is the job being requeued, which does
// not stand in its own way; zero for an enqueue.
func (s *backend) takeKey(ctx context.Context, x execer, tenant, key string, skip store.ID, now time.Time) (*holder, error) {
	var id [16]byte
	var st string
	var open bool
	err := x.queryRow(ctx, s.q.findHolder, tenant, key, now).Scan(&id, &st, &open)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	case store.ID(id) == skip:
		return nil, nil
	case open:
		return &holder{id: id, state: store.State(st)}, nil
	}
	return nil, x.exec(ctx, s.q.release, id, now)
}
