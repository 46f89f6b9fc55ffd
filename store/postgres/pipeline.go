package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolrun/spool/store"
)

// pipeExec runs one of the store's own event transactions pipelined: a
// statement whose result nobody reads (exec) waits, and goes out with the
// next statement that returns something, or with the COMMIT; the BEGIN
// goes out with the first statement. A publish that routes to caught-up
// subscriptions is then two round trips, not seven: BEGIN with the topic's
// lock and the caught-up subscriptions' (see eventTx.LockTopic), then the
// events, cursors, deliveries and COMMIT together. Publishers of a topic take
// turns on its lock for the length of the transaction, so its round trips
// are what a publish waits for on a loaded machine.
//
// A waiting statement that fails reports its error from the call that
// sends it; the server skips the rest of that pipeline, COMMIT included,
// and the caller rolls back. Only the store's own transactions are
// pipelined: a caller's transaction runs its statements as they come.
type pipeExec struct {
	conn    *pgxpool.Conn
	began   bool          // BEGIN has been sent
	pending []pendingExec // statements not yet sent, in order
}

type pendingExec struct {
	sql  string
	args []any
}

const beginSQL = "BEGIN ISOLATION LEVEL READ COMMITTED"

var _ eventExec = (*pipeExec)(nil)

// exec queues a statement to go out with the next one sent.
func (p *pipeExec) exec(_ context.Context, sql string, args ...any) error {
	p.pending = append(p.pending, pendingExec{sql, args})
	return nil
}

// query is a statement that returns something, sent by run: read reads
// its rows (nil: they are discarded).
type query struct {
	sql  string
	args []any
	read func(rows pgx.Rows) error
}

// run sends BEGIN (the first time), the queued statements and qs in one
// round trip, and reads their results in order. It stops at the first
// error: the server has skipped the rest.
func (p *pipeExec) run(ctx context.Context, qs ...query) (err error) {
	b := &pgx.Batch{}
	if !p.began {
		b.Queue(beginSQL)
	}
	for _, q := range p.pending {
		b.Queue(q.sql, q.args...)
	}
	for _, q := range qs {
		b.Queue(q.sql, q.args...)
	}
	first := !p.began
	pending := p.pending
	p.began, p.pending = true, nil
	br := p.conn.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if first {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	for _, q := range pending {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("%s: %w", firstLine(q.sql), err)
		}
	}
	for _, q := range qs {
		rows, err := br.Query()
		if err == nil && q.read != nil {
			err = q.read(rows)
		}
		if rows != nil {
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// firstLine names a statement in an error: its first line.
func firstLine(sql string) string {
	line, _, _ := strings.Cut(sql, "\n")
	return line
}

// eachRow reads rows with row.
func eachRow(row func(scan func(dest ...any) error) error) func(rows pgx.Rows) error {
	return func(rows pgx.Rows) error {
		for rows.Next() {
			if err := row(rows.Scan); err != nil {
				return err
			}
		}
		return nil
	}
}

func (p *pipeExec) execCount(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := p.run(ctx, query{sql, args, func(rows pgx.Rows) error {
		for rows.Next() {
		}
		rows.Close()
		n = rows.CommandTag().RowsAffected()
		return rows.Err()
	}})
	return n, err
}

func (p *pipeExec) queryEach(ctx context.Context, sql string, args []any, row func(scan func(dest ...any) error) error) error {
	return p.run(ctx, query{sql, args, eachRow(row)})
}

func (p *pipeExec) queryIDs(ctx context.Context, sql string, args ...any) ([]store.ID, error) {
	var out []store.ID
	err := p.queryEach(ctx, sql, args, func(scan func(dest ...any) error) error {
		var id store.ID
		err := scan((*[16]byte)(&id))
		out = append(out, id)
		return err
	})
	return out, err
}

func (p *pipeExec) queryRow(ctx context.Context, sql string, args ...any) interface{ Scan(...any) error } {
	return pipeRow{p, ctx, sql, args}
}

// pipeRow runs its query when scanned, as pgx's QueryRow reports its
// errors from Scan.
type pipeRow struct {
	p    *pipeExec
	ctx  context.Context
	sql  string
	args []any
}

func (r pipeRow) Scan(dest ...any) error {
	return r.p.run(r.ctx, query{r.sql, r.args, scanOne(dest)})
}

// scanOne reads the first row into dest; no row is pgx.ErrNoRows.
func scanOne(dest []any) func(rows pgx.Rows) error {
	return func(rows pgx.Rows) error {
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return pgx.ErrNoRows
		}
		return rows.Scan(dest...)
	}
}

// commit sends what is queued with COMMIT. A transaction that sent
// nothing has nothing to commit.
func (p *pipeExec) commit(ctx context.Context) error {
	if !p.began && len(p.pending) == 0 {
		return nil
	}
	return p.run(ctx, query{sql: "COMMIT"})
}

// rollback ends a transaction that failed or was refused. It runs even
// when ctx has ended, for a bounded time: the connection goes back to the
// pool only outside a transaction (pgxpool closes it otherwise).
func (p *pipeExec) rollback(ctx context.Context) {
	p.pending = nil
	if !p.began {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = p.conn.Exec(ctx, "ROLLBACK")
}

// pipelined runs fn in a pipelined transaction on a connection of the
// pool: committed when fn returns nil, rolled back otherwise.
func (s *backend) pipelined(ctx context.Context, fn func(x *pipeExec) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	p := &pipeExec{conn: conn}
	if err := fn(p); err != nil {
		p.rollback(ctx)
		return err
	}
	if err := p.commit(ctx); err != nil {
		p.rollback(ctx)
		return err
	}
	return nil
}
