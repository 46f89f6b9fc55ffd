package postgres

import (
	"context"
	"errors"
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
// subscriptions is then three round trips, not seven: BEGIN with the
// topic's lock, the events' INSERT with the subscriptions' lock, and the
// cursors, deliveries and COMMIT together. Publishers of a topic take
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

// send sends BEGIN (the first time), the queued statements and last, and
// reads the results of all but last, which it leaves to the caller to read
// from the returned results, and then close.
func (p *pipeExec) send(ctx context.Context, last string, args ...any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	if !p.began {
		b.Queue(beginSQL)
	}
	for _, q := range p.pending {
		b.Queue(q.sql, q.args...)
	}
	b.Queue(last, args...)
	first := !p.began
	pending := p.pending
	p.began, p.pending = true, nil
	br := p.conn.SendBatch(ctx, b)
	if first {
		if _, err := br.Exec(); err != nil {
			return nil, errors.Join(err, br.Close())
		}
	}
	for _, q := range pending {
		if _, err := br.Exec(); err != nil {
			return nil, errors.Join(fmt.Errorf("%s: %w", firstLine(q.sql), err), br.Close())
		}
	}
	return br, nil
}

// firstLine names a statement in an error: its first line.
func firstLine(sql string) string {
	line, _, _ := strings.Cut(sql, "\n")
	return line
}

func (p *pipeExec) execCount(ctx context.Context, sql string, args ...any) (int64, error) {
	br, err := p.send(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag.RowsAffected(), err
}

func (p *pipeExec) queryEach(ctx context.Context, sql string, args []any, row func(scan func(dest ...any) error) error) error {
	br, err := p.send(ctx, sql, args...)
	if err != nil {
		return err
	}
	rows, err := br.Query()
	if err == nil {
		for rows.Next() {
			if err = row(rows.Scan); err != nil {
				break
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
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
	found := false
	err := r.p.queryEach(r.ctx, r.sql, r.args, func(scan func(dest ...any) error) error {
		if found {
			return nil
		}
		found = true
		return scan(dest...)
	})
	if err == nil && !found {
		err = pgx.ErrNoRows
	}
	return err
}

// commit sends what is queued with COMMIT. A transaction that sent
// nothing has nothing to commit.
func (p *pipeExec) commit(ctx context.Context) error {
	if !p.began && len(p.pending) == 0 {
		return nil
	}
	br, err := p.send(ctx, "COMMIT")
	if err != nil {
		return err
	}
	_, err = br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
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
