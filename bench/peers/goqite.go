package peers

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/store/sqlite"
	"maragu.dev/goqite"
	"maragu.dev/goqite/jobs"
)

const (
	goqiteQueue = "bench"
	goqiteJob   = "noop"
	// goqitePoll is the jobs runner's PollInterval. The runner receives one
	// message per tick, so this caps its rate at 1/goqitePoll; its README
	// example uses 10ms.
	goqitePoll = time.Millisecond
)

// Goqite is goqite (maragu.dev/goqite) with its jobs runner, on SQLite with
// the very connection settings Spool uses (sqlite.DSN: WAL,
// synchronous=FULL, immediate transactions) and the same SQLite driver
// (modernc.org/sqlite), one connection as goqite's README sets up.
type Goqite struct {
	// Dir is where the database files go. Default: the system's temp dir.
	Dir string

	dir     string
	db      *sql.DB
	conn    *countingConnector
	q       *goqite.Queue
	workers int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (g *Goqite) Name() string { return "goqite (SQLite)" }

func (g *Goqite) Info() Info {
	return Info{
		Version:    moduleVersion("maragu.dev/goqite"),
		Server:     "embedded SQLite (modernc.org/sqlite " + moduleVersion("modernc.org/sqlite") + ")",
		Durable:    true,
		Durability: "fsync per commit (WAL, synchronous=FULL: Spool's DSN)",
		Settings:   "jobs.Runner with Limit=workers, PollInterval=1ms (README example: 10ms; the runner receives one message per tick); SetMaxOpenConns(1) as its README; batches in one transaction with jobs.CreateTx",
		Completion: "the runner's Delete transaction committed; counted by a wrapper around the SQL driver",
	}
}

func (g *Goqite) Probe(context.Context) error { return nil }

func (g *Goqite) Open(ctx context.Context, workers int) (err error) {
	dir, err := os.MkdirTemp(g.Dir, "goqite-bench-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if g.db != nil {
				g.db.Close()
				g.db = nil
			}
			os.RemoveAll(dir)
		}
	}()
	// The driver registered by Spool's SQLite store (modernc.org/sqlite).
	probe, err := sql.Open("sqlite", "")
	if err != nil {
		return err
	}
	drv := probe.Driver()
	probe.Close()
	g.conn = &countingConnector{dsn: sqlite.DSN(filepath.Join(dir, "goqite.db"), 5*time.Second), drv: drv}
	g.db = sql.OpenDB(g.conn)
	g.db.SetMaxOpenConns(1)
	g.db.SetMaxIdleConns(1)
	if err := goqite.Setup(ctx, g.db); err != nil {
		return err
	}
	g.q = goqite.New(goqite.NewOpts{DB: g.db, Name: goqiteQueue})
	g.dir, g.workers = dir, workers
	return nil
}

func (g *Goqite) Enqueue(ctx context.Context, payloads [][]byte) error {
	if g.q == nil {
		return notOpen(g.Name())
	}
	if len(payloads) == 1 {
		return jobs.Create(ctx, g.q, goqiteJob, payloads[0])
	}
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, p := range payloads {
		if err := jobs.CreateTx(ctx, tx, g.q, goqiteJob, p); err != nil {
			return errors.Join(err, tx.Rollback())
		}
	}
	return tx.Commit()
}

func (g *Goqite) Start(ctx context.Context, w Work) error {
	if g.q == nil {
		return notOpen(g.Name())
	}
	g.conn.completed.Store(&w.Completed)
	r := jobs.NewRunner(jobs.NewRunnerOpts{Limit: g.workers, PollInterval: goqitePoll, Queue: g.q})
	r.Register(goqiteJob, func(_ context.Context, m []byte) error {
		w.Started(m)
		return nil
	})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel = cancel
	g.wg.Go(func() { r.Start(rctx) })
	return nil
}

func (g *Goqite) Stop(context.Context) error {
	if g.cancel == nil {
		return nil
	}
	// Start returns once the running jobs have finished.
	g.cancel()
	g.wg.Wait()
	g.cancel = nil
	return nil
}

func (g *Goqite) Remaining(ctx context.Context) (int, error) {
	if g.db == nil {
		return 0, notOpen(g.Name())
	}
	var n int
	err := g.db.QueryRowContext(ctx, "select count(*) from goqite where queue = ?", goqiteQueue).Scan(&n)
	return n, err
}

func (g *Goqite) Close(ctx context.Context) error {
	if g.db == nil {
		return nil
	}
	err := errors.Join(g.Stop(ctx), g.db.Close(), os.RemoveAll(g.dir))
	g.db, g.q, g.dir = nil, nil, ""
	return err
}

// countingConnector opens connections whose committed deletes from the
// goqite table are reported as completions: goqite's runner deletes a job's
// message, in a transaction of its own, once the job has succeeded.
type countingConnector struct {
	dsn       string
	drv       driver.Driver
	completed atomic.Pointer[func(int)]
}

func (c *countingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, owner: c}, nil
}

func (c *countingConnector) Driver() driver.Driver { return c.drv }

// countingConn forwards to the driver's connection, counting the rows its
// goqite deletes remove until the transaction commits.
type countingConn struct {
	driver.Conn
	owner   *countingConnector
	pending int64 // rows deleted in the open transaction; database/sql uses a conn from one goroutine at a time
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	b, ok := c.Conn.(driver.ConnBeginTx)
	if !ok {
		return nil, errors.New("goqite bench: driver lacks BeginTx")
	}
	tx, err := b.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.pending = 0
	return &countingTx{Tx: tx, conn: c}, nil
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.Prepare(query)
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	if err == nil && strings.HasPrefix(strings.TrimSpace(query), "delete from goqite") {
		if n, err := res.RowsAffected(); err == nil {
			c.pending += n
		}
	}
	return res, err
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	return q.QueryContext(ctx, query, args)
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

type countingTx struct {
	driver.Tx
	conn *countingConn
}

func (t *countingTx) Commit() error {
	err := t.Tx.Commit()
	n := t.conn.pending
	t.conn.pending = 0
	if err == nil && n > 0 {
		if f := t.conn.owner.completed.Load(); f != nil {
			(*f)(int(n))
		}
	}
	return err
}

func (t *countingTx) Rollback() error {
	t.conn.pending = 0
	return t.Tx.Rollback()
}
