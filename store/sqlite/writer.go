package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/store"
)

// An op is one store operation run by the writer inside a shared
// transaction. fn must only touch the database through x. If fn fails, its
// own changes are rolled back (savepoint) and the rest of the group commits.
// Because a failing neighbour makes the writer run the group again, fn may
// run twice (or more, see runWithSavepoints) and must start each run from
// the same state.
type op struct {
	ctx context.Context
	fn  func(x execer) error
	opts
	done chan error
}

// opts says how the writer treats an op.
type opts struct {
	// after, if set, runs once the op is acknowledged (wake-ups).
	after func()
	// ins carries an enqueue op's jobs, so a group's enqueues can share
	// multi-row INSERT statements instead of running one statement per op.
	ins *insertBatch
	// light marks an op whose loss in a power failure loses nothing (a
	// claim, renewal, reap or prune: the job only falls back to its earlier
	// state). It is answered as soon as its group commits; other ops are
	// answered once an fsync of the WAL covering their commit returned.
	light bool
	// grows marks an op that inserts jobs: an enqueue, or a schedule
	// firing its runs. Past the store's headroom (Config.MaxSize,
	// Config.MinFreeDisk) such ops are refused with an error matching
	// store.ErrStoreFull, and SQLite's own SQLITE_FULL on them is reported
	// the same way; every other op (claims, settles, cancels, purges,
	// retention) still runs, so workers can drain the store. Set by insert,
	// and by whoever queues another op that inserts jobs.
	grows bool
	// onCommit, if set, runs right after the commit, before the fsync: the
	// wake-up for new jobs, so a worker can claim them while the fsync runs.
	onCommit func()
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
	hooks    hooks
	busyWarn time.Duration // how long a busy database is waited for between warnings
	room     *headroom     // refuses growing ops past the store's limits
	changes  *changes      // notices other connections' commits

	// failed latches the first failed fsync (see syncLoop): once set,
	// every write is refused with it until the store is reopened.
	failed atomic.Pointer[error]

	// takeMu orders the syncers: a syncer holds it while it takes a batch
	// from syncQ and links the batch after lastTaken, so batches are
	// answered in the order their commits were made.
	takeMu    sync.Mutex
	lastTaken chan struct{} // closed once the batch taken last was answered

	stats writerStats // updated by the writer goroutine only; read atomically

	mu      sync.RWMutex // guards closed against sends on ops
	closed  bool
	closing chan struct{} // closed by close: a busy wait for the write lock gives up
	done    chan struct{} // closed when the loop has exited
}

// hooks are seams for tests; the zero value is production behaviour.
type hooks struct {
	// sync makes the WAL durable. Default: (*os.File).Sync.
	sync func(*os.File) error
	// freeSpace reports the bytes free for unprivileged users on the file
	// system holding dir. Default: statfs.
	freeSpace func(dir string) (int64, error)
	// pollChanges makes the store poll for other connections' commits
	// instead of watching the WAL for changes.
	pollChanges bool
}

// While another connection holds the write lock, the writer tries again
// after busyFirst, doubling up to busyMax. A commit holds the lock for well
// under a millisecond, and SQLite's own busy handler would sleep 1, 2, 5,
// 10... ms between tries: against another busy process that alone put a
// tail of tens of milliseconds on pickup.
const (
	busyFirst = 50 * time.Microsecond
	busyMax   = 2 * time.Millisecond
)

// newWriter starts the writer on conn, whose synchronous setting it lowers to
// NORMAL: durability comes from the syncer's explicit fsync of walPath. Its
// busy timeout becomes 0: the writer waits out other processes itself (see
// begin), so that Close and cancelled ops need not wait for SQLite.
func newWriter(conn *sql.Conn, walPath string, maxGroup int, busyWarn time.Duration, room *headroom, ch *changes, h hooks, log *slog.Logger) (*writer, error) {
	if _, err := conn.ExecContext(bg, "PRAGMA synchronous = NORMAL"); err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(bg, "PRAGMA busy_timeout = 0"); err != nil {
		return nil, err
	}
	if h.sync == nil {
		h.sync = (*os.File).Sync
	}
	w := &writer{
		conn:     conn,
		stmts:    make(map[string]*sql.Stmt),
		walPath:  walPath,
		syncQ:    make(chan []ack, 4*maxGroup),
		ops:      make(chan *op, 4*maxGroup),
		maxGroup: maxGroup,
		log:      log,
		hooks:    h,
		busyWarn: busyWarn,
		room:     room,
		changes:  ch,
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := ch.start(w); err != nil {
		return nil, err
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
	return w.queue(ctx, fn, opts{after: after})
}

// doLight is do for an op whose loss in a power failure loses nothing (see
// op.light): it is answered when its group commits, without waiting for the
// fsync. The next fsync makes it durable too: WAL frames are synced in order.
func (w *writer) doLight(ctx context.Context, fn func(x execer) error, after func()) error {
	return w.queue(ctx, fn, opts{after: after, light: true})
}

// insert runs an enqueue op: like do, but its rows may share statements with
// other enqueues of the same group, and it is refused past the headroom
// (see opts.grows).
// wake runs right after the commit, before the fsync, so that workers can
// claim the new jobs while their durability is being made.
func (w *writer) insert(ctx context.Context, b *insertBatch, wake func()) error {
	return w.queue(ctx, func(x execer) error { return insertJobs(x, b.jobs, b.results, b.now, b.mayConflict) },
		opts{ins: b, grows: true, onCommit: wake})
}

// queue hands an op to the writer and waits for its answer; how says how
// the writer treats it. An op that inserts jobs by other means than insert
// (a schedule firing or trigger) must set how.grows, or the headroom does
// not hold for it.
func (w *writer) queue(ctx context.Context, fn func(x execer) error, how opts) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.failure(); err != nil {
		return err
	}
	o, _ := opPool.Get().(*op) // the pool's New is its only source of values
	o.ctx, o.fn, o.opts = ctx, fn, how
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
	o.ctx, o.fn, o.opts = nil, nil, opts{}
	opPool.Put(o)
	return err
}

// failure returns the latched fsync failure (matching store.ErrDurability),
// or nil.
func (w *writer) failure() error {
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// latch records the first fsync failure; later ones add nothing.
func (w *writer) latch(cause error) {
	err := fmt.Errorf("%w: fsync of %s failed: %w", store.ErrDurability, w.walPath, cause)
	if w.failed.CompareAndSwap(nil, &err) {
		w.log.Error("spool: sqlite: an fsync of the write-ahead log failed; refusing writes until the store is reopened", "err", cause)
	}
}

// close stops accepting ops, runs those already queued (giving up on any
// that wait for another process's write lock), and waits for the loop and
// the syncers. It returns the latched fsync failure, if any.
func (w *writer) close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.closing)
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
	return w.failure()
}

func (w *writer) loop() {
	defer close(w.done)
	defer w.changes.stopTimer()
	group := make([]*op, 0, w.maxGroup)
	for {
		var first *op
		select {
		case o, ok := <-w.ops:
			if !ok {
				return
			}
			first = o
		case <-w.changes.nudged():
			w.changes.onNudge(stmtExec{w})
			continue
		case <-w.changes.followUp():
			w.changes.onFollowUp(stmtExec{w})
			continue
		}
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
	// OtherCommits counts the times the store noticed that other
	// connections had committed (another process, another Store on the
	// file, EnqueueTx's caller) and woke its waiters.
	OtherCommits int64
}

// WriterStats reports the group-commit writer's counters: Ops/Groups is the
// average group size, and Busy against wall time is how saturated it is.
func (s *Store) WriterStats() WriterStats {
	st := &s.b.writer.stats
	return WriterStats{Groups: st.groups.Load(), Ops: st.ops.Load(), Busy: time.Duration(st.busy.Load()), Syncs: st.syncs.Load(), OtherCommits: s.b.others.Load()}
}

// bg is the context statements run under: an op's own context only decides
// whether the op starts, so a cancellation never interrupts a half-done group.
var bg = context.Background()

func (w *writer) commit(group []*op) {
	errs := make([]error, len(group))
	// final marks ops whose answer is decided before they run: their ctx
	// ended, the headroom refused them, or they lost the transaction.
	final := make([]bool, len(group))
	decide := func(i int, err error) { errs[i], final[i] = err, true }
	if err := w.failure(); err != nil {
		for i := range group {
			decide(i, err)
		}
		w.finish(group, errs, false)
		return
	}
	for i, o := range group {
		if err := o.ctx.Err(); err != nil {
			decide(i, err)
		}
	}
	if countLive(errs) == 0 {
		w.finish(group, errs, false)
		return
	}
	if err := w.begin(group, final, decide); err != nil {
		w.refuseAll(group, errs, err)
		return
	}
	x := stmtExec{w}
	w.changes.inTx(x)
	w.admit(x, group, decide)
	live := countLive(errs)
	if live == 0 {
		w.conn.ExecContext(bg, "ROLLBACK") //nolint:errcheck // nothing was written
		w.finish(group, errs, false)
		return
	}
	// Optimistic: run every op in the one transaction. Ops rarely fail (per-item
	// refusals are answers, not errors); when one does, undo the whole group and
	// run it again with a savepoint around each op, so only the failing op is
	// rolled back.
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
		for {
			if err := w.begin(group, final, decide); err != nil {
				w.refuseAll(group, errs, err)
				return
			}
			if !w.runWithSavepoints(group, errs, final) {
				break
			}
			// An op's failure took the whole transaction with it (SQLite
			// does that for some errors, such as SQLITE_FULL outside a
			// statement journal): its neighbours' work is gone too. Run
			// them again without it.
			w.conn.ExecContext(bg, "ROLLBACK") //nolint:errcheck // the transaction is normally gone already
			if countLive(errs) == 0 {
				w.finish(group, errs, false)
				return
			}
		}
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
	} else {
		w.changes.committed()
		w.room.grew(group, errs)
	}
	w.finish(group, errs, commitErr == nil)
}

// refuseAll answers every op without an answer yet with err.
func (w *writer) refuseAll(group []*op, errs []error, err error) {
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	w.finish(group, errs, false)
}

func countLive(errs []error) int {
	n := 0
	for _, err := range errs {
		if err == nil {
			n++
		}
	}
	return n
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

// runWithSavepoints runs each op that has no final answer inside its own
// savepoint; a failing op is rolled back alone and gets its error. It
// reports whether an op's failure rolled back the whole transaction: that
// op's answer is then final, and the others' work is lost.
func (w *writer) runWithSavepoints(group []*op, errs []error, final []bool) (lost bool) {
	x := stmtExec{w}
	for i, o := range group {
		if final[i] {
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
				// The savepoint is gone, so is the transaction.
				errs[i], final[i] = errors.Join(err, rerr), true
				return true
			}
		}
		if _, err := w.conn.ExecContext(bg, "RELEASE op"); err != nil && errs[i] == nil {
			errs[i] = err
		}
	}
	return false
}

func (w *writer) finish(group []*op, errs []error, committed bool) {
	var durable []ack
	for i, o := range group {
		if !committed || errs[i] != nil {
			if o.grows {
				errs[i] = storeFull(errs[i])
			}
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
