package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/store"
)

// An op is one store operation run by the writer inside a shared
// transaction. fn must only touch the database through x. If fn fails, its
// own changes are rolled back (savepoint) and the rest of the group commits.
// Because a failing neighbour makes the writer run the group again, fn may
// run twice and must start each run from the same state.
// after, if set, runs once the group committed (wake-ups).
//
// Enqueue ops also carry their jobs (ins), so a group's enqueues can share
// multi-row INSERT statements instead of running one statement per op.
type op struct {
	ctx   context.Context
	fn    func(x execer) error
	after func()
	ins   *insertBatch
	// light marks an op whose loss in a power failure loses nothing (a
	// claim, renewal, reap or prune: the job only falls back to its earlier
	// state). It is answered as soon as its group commits; other ops are
	// answered once an fsync of the WAL covering their commit returned.
	light bool
	// onCommit, if set, runs right after the commit, before the fsync: the
	// wake-up for new jobs, so a worker can claim them while the fsync runs.
	onCommit func()
	done     chan error
}

// insertBatch is an enqueue op's rows and where its results go.
type insertBatch struct {
	jobs    []store.EnqueueParams
	results []store.EnqueueResult
	now     time.Time
	// mayConflict is set when a row may be skipped by the INSERT: it has a
	// unique key or a caller-chosen ID. Rows with neither (a fresh UUIDv7
	// and no key) are inserted without the savepoint that sorts out skips.
	mayConflict bool
}

// writer owns the single write connection. One goroutine drains queued ops
// and commits them in groups: while a commit is being made durable, new ops
// queue up and ride the next one.
type writer struct {
	conn     *sql.Conn
	stmts    map[string]*sql.Stmt // prepared on conn; only the writer goroutine touches it
	ops      chan *op
	maxGroup int
	merged   insertBatch    // scratch for merging a group's enqueues
	walPath  string         // the WAL file the syncer fsyncs
	syncQ    chan []ack     // committed durable ops waiting for an fsync; closed after the loop ends
	syncers  sync.WaitGroup // the syncer goroutines
	log      *slog.Logger

	stats writerStats // updated by the writer goroutine only; read atomically

	mu     sync.RWMutex // guards closed against sends on ops
	closed bool
	done   chan struct{} // closed when the loop has exited
}

// newWriter starts the writer on conn, whose synchronous setting it lowers to
// NORMAL: durability comes from the syncer's explicit fsync of walPath.
func newWriter(conn *sql.Conn, walPath string, maxGroup int, log *slog.Logger) (*writer, error) {
	if _, err := conn.ExecContext(bg, "PRAGMA synchronous = NORMAL"); err != nil {
		return nil, err
	}
	w := &writer{
		conn:     conn,
		stmts:    make(map[string]*sql.Stmt),
		walPath:  walPath,
		syncQ:    make(chan []ack, 4*maxGroup),
		ops:      make(chan *op, 4*maxGroup),
		maxGroup: maxGroup,
		log:      log,
		done:     make(chan struct{}),
	}
	go w.loop()
	for range syncers {
		w.syncers.Go(w.syncLoop)
	}
	return w, nil
}

var opPool = sync.Pool{New: func() any { return &op{done: make(chan error, 1)} }}

// do runs fn in the next group commit and returns its error, or the commit's.
// Once queued, an op always runs to its verdict (unless its ctx ends before
// its turn), so a caller never returns while its write might still land.
func (w *writer) do(ctx context.Context, fn func(x execer) error, after func()) error {
	return w.submit(ctx, fn, after, nil, false, nil)
}

// doLight is do for an op whose loss in a power failure loses nothing (see
// op.light): it is answered when its group commits, without waiting for the
// fsync. The next fsync makes it durable too: WAL frames are synced in order.
func (w *writer) doLight(ctx context.Context, fn func(x execer) error, after func()) error {
	return w.submit(ctx, fn, after, nil, true, nil)
}

// insert runs an enqueue op: like do, but its rows may share statements with
// other enqueues of the same group.
// wake runs right after the commit, before the fsync, so that workers can
// claim the new jobs while their durability is being made.
func (w *writer) insert(ctx context.Context, b *insertBatch, wake func()) error {
	return w.submit(ctx, func(x execer) error { return insertJobs(x, b.jobs, b.results, b.now, b.mayConflict) }, nil, b, false, wake)
}

func (w *writer) submit(ctx context.Context, fn func(x execer) error, after func(), ins *insertBatch, light bool, onCommit func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o, _ := opPool.Get().(*op) // the pool's New is its only source of values
	o.ctx, o.fn, o.after, o.ins, o.light, o.onCommit = ctx, fn, after, ins, light, onCommit
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		opPool.Put(o)
		return store.ErrClosed
	}
	select {
	case w.ops <- o:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		opPool.Put(o)
		return ctx.Err()
	}
	err := <-o.done
	o.ctx, o.fn, o.after, o.ins, o.onCommit = nil, nil, nil, nil, nil
	opPool.Put(o)
	return err
}

// close stops accepting ops, runs those already queued, and waits for the loop.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ops)
	}
	w.mu.Unlock()
	<-w.done
	close(w.syncQ) // the loop was its only sender
	w.syncers.Wait()
	for _, st := range w.stmts {
		st.Close()
	}
	w.conn.Close()
}

func (w *writer) loop() {
	defer close(w.done)
	group := make([]*op, 0, w.maxGroup)
	for first := range w.ops {
		group = append(group[:0], first)
		// Ops often come in pairs a few microseconds apart (a worker's
		// settle and its next claim). Yield once so that runnable
		// submitters get theirs in before the group is cut; it costs
		// microseconds against a commit's milliseconds.
		runtime.Gosched()
	drain:
		for len(group) < w.maxGroup {
			select {
			case o, ok := <-w.ops:
				if !ok {
					break drain
				}
				group = append(group, o)
			default:
				break drain
			}
		}
		start := time.Now()
		w.commit(group)
		w.stats.groups.Add(1)
		w.stats.ops.Add(int64(len(group)))
		w.stats.busy.Add(int64(time.Since(start)))
	}
}

// writerStats counts the writer's work.
type writerStats struct {
	groups, ops, busy, syncs atomic.Int64
}

// WriterStats describes the group-commit writer's work so far.
type WriterStats struct {
	Groups int64         // transactions committed (or attempted)
	Ops    int64         // operations they carried
	Busy   time.Duration // time spent running and committing groups
	Syncs  int64         // fsyncs of the WAL; each made every commit before it durable
}

// WriterStats reports the group-commit writer's counters: Ops/Groups is the
// average group size, and Busy against wall time is how saturated it is.
func (s *Store) WriterStats() WriterStats {
	st := &s.b.writer.stats
	return WriterStats{Groups: st.groups.Load(), Ops: st.ops.Load(), Busy: time.Duration(st.busy.Load()), Syncs: st.syncs.Load()}
}

// bg is the context statements run under: an op's own context only decides
// whether the op starts, so a cancellation never interrupts a half-done group.
var bg = context.Background()

func (w *writer) commit(group []*op) {
	errs := make([]error, len(group))
	live := 0
	for i, o := range group {
		if err := o.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		live++
	}
	if live == 0 {
		w.finish(group, errs, false)
		return
	}
	if err := w.begin(); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		w.finish(group, errs, false)
		return
	}
	// Optimistic: run every op in the one transaction. Ops rarely fail (per-item
	// refusals are answers, not errors); when one does, undo the whole group and
	// run it again with a savepoint around each op, so only the failing op is
	// rolled back.
	x := stmtExec{w}
	mergeErr := w.insertMerged(group, errs)
	failed := mergeErr != nil
	for i, o := range group {
		if failed {
			break
		}
		if errs[i] != nil || o.ins != nil {
			continue
		}
		if err := o.fn(x); err != nil {
			errs[i], failed = err, true
			break
		}
	}
	if failed {
		w.conn.ExecContext(bg, "ROLLBACK") //nolint:errcheck // undoing the optimistic attempt
		if live == 1 && mergeErr == nil {
			w.finish(group, errs, false) // a lone op: its own error is the answer
			return
		}
		if err := w.begin(); err != nil {
			for i := range errs {
				if errs[i] == nil {
					errs[i] = err
				}
			}
			w.finish(group, errs, false)
			return
		}
		w.runWithSavepoints(group, errs)
	}
	var commitErr error
	if _, err := w.conn.ExecContext(bg, "COMMIT"); err != nil {
		commitErr = err
		w.conn.ExecContext(bg, "ROLLBACK") //nolint:errcheck // best effort after a failed commit
		w.log.Error("spool: sqlite commit failed", "err", err, "ops", live)
		for i := range errs {
			if errs[i] == nil {
				errs[i] = commitErr
			}
		}
	}
	w.finish(group, errs, commitErr == nil)
}

// insertMerged runs every enqueue op of the group as one list of rows, so
// they share multi-row INSERT statements. Enqueues are concurrent requests, so
// running them ahead of the group's other ops is as good as any order.
func (w *writer) insertMerged(group []*op, errs []error) error {
	m := &w.merged
	m.jobs, m.results, m.now, m.mayConflict = m.jobs[:0], m.results[:0], time.Time{}, false
	for i, o := range group {
		if o.ins == nil || errs[i] != nil {
			continue
		}
		m.jobs = append(m.jobs, o.ins.jobs...)
		m.mayConflict = m.mayConflict || o.ins.mayConflict
		if o.ins.now.After(m.now) {
			m.now = o.ins.now
		}
	}
	if len(m.jobs) == 0 {
		return nil
	}
	m.results = append(m.results, make([]store.EnqueueResult, len(m.jobs))...)
	err := insertJobs(stmtExec{w}, m.jobs, m.results, m.now, m.mayConflict)
	if err != nil {
		return err // the group falls back to one savepoint per op, which finds the culprit
	}
	k := 0
	for i, o := range group {
		if o.ins == nil || errs[i] != nil {
			continue
		}
		k += copy(o.ins.results, m.results[k:k+len(o.ins.jobs)])
	}
	clear(m.jobs) // drop payload references
	return nil
}

// runWithSavepoints runs each op that has no error yet inside its own
// savepoint; a failing op is rolled back alone and gets its error.
func (w *writer) runWithSavepoints(group []*op, errs []error) {
	x := stmtExec{w}
	for i, o := range group {
		if errs[i] != nil && o.ctx.Err() != nil {
			continue
		}
		errs[i] = nil
		if _, err := w.conn.ExecContext(bg, "SAVEPOINT op"); err != nil {
			errs[i] = err
			continue
		}
		if err := o.fn(x); err != nil {
			errs[i] = err
			if _, rerr := w.conn.ExecContext(bg, "ROLLBACK TO op"); rerr != nil {
				errs[i] = errors.Join(err, rerr)
			}
		}
		if _, err := w.conn.ExecContext(bg, "RELEASE op"); err != nil && errs[i] == nil {
			errs[i] = err
		}
	}
}

func (w *writer) finish(group []*op, errs []error, committed bool) {
	var durable []ack
	for i, o := range group {
		if !committed || errs[i] != nil {
			o.done <- errs[i]
			continue
		}
		if o.onCommit != nil {
			o.onCommit()
		}
		if o.light {
			if o.after != nil {
				o.after()
			}
			o.done <- nil
			continue
		}
		durable = append(durable, ack{o})
	}
	if len(durable) > 0 {
		w.syncQ <- durable
	}
}

// ack is a committed op waiting for the fsync that makes it durable.
type ack struct{ o *op }

// syncers is how many fsyncs of the WAL may be in flight at once. An fsync
// makes durable everything written before it began, so a second one can
// start as soon as new commits exist instead of waiting for the first to
// finish: an op then waits about one fsync after its commit, not one and a
// half.
const syncers = 2

// syncLoop makes commits durable: it fsyncs the WAL once for every commit
// that finished since it last looked, then answers their ops. Several run
// at once (see syncers); each acknowledges only ops committed before its own
// fsync began. Commits with
// synchronous=NORMAL plus this fsync are what synchronous=FULL does in WAL
// mode, with one difference: the writer goes on committing while an fsync
// runs, and one fsync covers every commit before it.
func (w *writer) syncLoop() {
	var wal *os.File
	defer func() {
		if wal != nil {
			wal.Close()
		}
	}()
	var batch []ack
	for first := range w.syncQ {
		batch = append(batch[:0], first...)
	drain:
		for {
			select {
			case more, ok := <-w.syncQ:
				if !ok {
					break drain
				}
				batch = append(batch, more...)
			default:
				break drain
			}
		}
		var err error
		if wal == nil {
			wal, err = os.OpenFile(w.walPath, os.O_RDWR, 0)
		}
		if err == nil {
			err = wal.Sync()
		}
		if err != nil {
			// The commit happened but is not known to be durable: say so.
			err = fmt.Errorf("spool: sqlite: fsync of the write-ahead log failed: %w", err)
			w.log.Error("spool: fsync failed", "err", err)
		}
		for _, a := range batch {
			if err == nil && a.o.after != nil {
				a.o.after()
			}
			a.o.done <- err
		}
		w.stats.syncs.Add(1)
		clear(batch)
	}
}

// begin takes the database write lock, waiting out other processes: a busy
// database is retried with backoff rather than reported.
func (w *writer) begin() error {
	delay := time.Millisecond
	for {
		_, err := w.conn.ExecContext(bg, "BEGIN IMMEDIATE")
		if err == nil || !isBusy(err) {
			return err
		}
		w.log.Warn("spool: sqlite database is busy; retrying", "err", err, "after", delay)
		time.Sleep(delay)
		delay = min(2*delay, time.Second)
	}
}

func isBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// execer is what an operation uses to reach the database: the writer's
// cached prepared statements, or a caller's transaction.
type execer interface {
	exec(q string, args ...any) (sql.Result, error)
	query(q string, args ...any) (*sql.Rows, error)
	queryRow(q string, args ...any) *sql.Row
}

type stmtExec struct{ w *writer }

func (x stmtExec) stmt(q string) (*sql.Stmt, error) {
	if st, ok := x.w.stmts[q]; ok {
		return st, nil
	}
	st, err := x.w.conn.PrepareContext(bg, q)
	if err != nil {
		return nil, err
	}
	x.w.stmts[q] = st
	return st, nil
}

func (x stmtExec) exec(q string, args ...any) (sql.Result, error) {
	st, err := x.stmt(q) //nolint:sqlclosecheck // cached in w.stmts for the connection's life; closed by close
	if err != nil {
		return nil, err
	}
	return st.ExecContext(bg, args...)
}

func (x stmtExec) query(q string, args ...any) (*sql.Rows, error) {
	st, err := x.stmt(q) //nolint:sqlclosecheck // cached in w.stmts for the connection's life; closed by close
	if err != nil {
		return nil, err
	}
	return st.QueryContext(bg, args...)
}

func (x stmtExec) queryRow(q string, args ...any) *sql.Row {
	st, err := x.stmt(q) //nolint:sqlclosecheck // cached in w.stmts for the connection's life; closed by close
	if err != nil {
		// Surface the prepare error through Row.Scan.
		return x.w.conn.QueryRowContext(bg, q, args...)
	}
	return st.QueryRowContext(bg, args...)
}

// txExec runs statements on a caller's transaction.
type txExec struct {
	ctx context.Context
	tx  *sql.Tx
}

func (x txExec) exec(q string, args ...any) (sql.Result, error) {
	return x.tx.ExecContext(x.ctx, q, args...)
}

func (x txExec) query(q string, args ...any) (*sql.Rows, error) {
	return x.tx.QueryContext(x.ctx, q, args...)
}

func (x txExec) queryRow(q string, args ...any) *sql.Row {
	return x.tx.QueryRowContext(x.ctx, q, args...)
}
