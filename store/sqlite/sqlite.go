// Package sqlite is Spool's embedded store: one file, pure Go
// (modernc.org/sqlite), in WAL mode, where a job is on disk when Enqueue
// returns.
//
// # Group commit
//
// All writes of a process go through one writer goroutine that commits
// concurrent operations together (group commit): while one transaction is
// being made durable, the next operations queue up and share the next
// commit, so throughput grows with concurrency instead of serialising on
// fsync. Reads use a separate pool of connections and never wait for writes.
//
// # Durability
//
// Commits are made durable by an explicit fsync of the WAL, and an
// operation that must survive a power failure (an enqueue, a settle) is
// answered only once an fsync covering its commit returned. If an fsync
// fails, the store latches the failure: that operation and every write after
// it is refused with an error matching store.ErrDurability, and Close returns
// it, until the file is reopened (which recovers the WAL from what is really
// on disk). Reads go on working.
//
// # Several processes
//
// Several processes on one machine may open the same file: SQLite's file
// locks serialise their writers, and the writer waits out another
// process's write lock for as long as one of its operations still wants to
// run; an operation whose context ends stops waiting, and Close gives up at
// once. A store also notices other connections' commits (another process,
// another Store on the file, the *sql.DB behind EnqueueTx): it watches the
// WAL file for writes (inotify, kqueue; it polls every 50 ms where it
// cannot) and checks PRAGMA data_version, so a worker in one process picks
// up a job enqueued by another within milliseconds, without polling.
//
// # Headroom
//
// When the disk fills, a store that refused every write could not drain
// either. So enqueues (and schedule firings) are refused with an error
// matching store.ErrStoreFull once the database passes Config.MaxSize or
// the disk's free space falls below Config.MinFreeDisk, while claims,
// settles, cancels, purges and retention go on; once workers and retention
// have made room, enqueues resume by themselves.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/internal/signal"
	"github.com/spoolrun/spool/store"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Config tunes a store. The zero value is ready to use; a zero field takes
// its default.
type Config struct {
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives operational messages. Default: discard.
	Logger *slog.Logger
	// BusyTimeout is how long a read waits for a lock held by another
	// connection before it fails, and how long the writer waits for
	// another process's write lock between warnings in the log (it goes on
	// waiting while an operation still wants to write). Default: 5s.
	BusyTimeout time.Duration
	// MaxGroup caps how many operations share one commit. Default: 512.
	MaxGroup int
	// Readers is the size of the read connection pool. Default: 4.
	Readers int
	// CacheMiB is SQLite's page cache per connection, in MiB. Default: 32.
	CacheMiB int
	// MaxSize caps the database, in bytes of pages in use (the file less
	// its free pages, the WAL's newest pages included): past it, enqueues
	// are refused with an error matching store.ErrStoreFull while
	// everything else goes on (see the package doc, Headroom). The check is
	// approximate by about a MiB. Default: 0, no limit.
	MaxSize int64
	// MinFreeDisk is the free space, in bytes, to keep on the file system
	// holding the database: below it, enqueues are refused as past
	// MaxSize. Draining a full store still writes: claims and settles
	// append to the WAL until a checkpoint (every 4 MiB of WAL by default,
	// more while readers hold old snapshots), and retention's deletes do
	// too. The default leaves room for a good many checkpoint cycles of
	// that, yet refuses nothing on a machine with a few hundred MB free,
	// such as a CI runner. It is not enforced where free space cannot be
	// measured (outside Linux, macOS and FreeBSD). Negative: no floor.
	// Default: 64 MiB.
	MinFreeDisk int64
}

// DefaultMinFreeDisk is Config.MinFreeDisk's default.
const DefaultMinFreeDisk = 64 << 20

// maxMaxGroup bounds Config.MaxGroup: a group is one transaction, and its
// queue holds four groups.
const maxMaxGroup = 100_000

// withDefaults fills the zero fields of cfg and returns every mistake in it
// at once, each a *store.ValidationError (matching store.ErrInvalid).
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(field, reason string, args ...any) {
		errs = append(errs, &store.ValidationError{Field: field, Reason: fmt.Sprintf(reason, args...)})
	}
	if cfg.BusyTimeout < 0 {
		bad("BusyTimeout", "%v is negative", cfg.BusyTimeout)
	}
	if cfg.MaxGroup < 0 || cfg.MaxGroup > maxMaxGroup {
		bad("MaxGroup", "%d is outside 1..%d", cfg.MaxGroup, maxMaxGroup)
	}
	if cfg.Readers < 0 {
		bad("Readers", "%d is negative", cfg.Readers)
	}
	if cfg.CacheMiB < 0 {
		bad("CacheMiB", "%d is negative", cfg.CacheMiB)
	}
	if cfg.MaxSize < 0 {
		bad("MaxSize", "%d is negative (0 means no limit)", cfg.MaxSize)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.BusyTimeout = cmp.Or(cfg.BusyTimeout, 5*time.Second)
	cfg.MaxGroup = cmp.Or(cfg.MaxGroup, 512)
	cfg.Readers = cmp.Or(cfg.Readers, 4)
	cfg.CacheMiB = cmp.Or(cfg.CacheMiB, 32)
	cfg.MinFreeDisk = cmp.Or(cfg.MinFreeDisk, DefaultMinFreeDisk)
	return cfg, errors.Join(errs...)
}

// Store is the SQLite backend. It implements store.Store with every
// capability: schedules, notifications and enqueue in a caller's *sql.Tx.
// The contract's semantics come from the shared engine (internal/engine);
// this package supplies its narrow operations on the file.
type Store struct {
	*core
	b *backend
}

// core is the shared engine a Store embeds: its methods are the Store's.
type core = engine.Store

// backend is the engine's driver: the file, its single writer and its
// wake-ups.
type backend struct {
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	path   string
	rdb    *sql.DB // read pool
	wdb    *sql.DB // holds the writer's single connection
	writer *writer
	// changes wakes waiters on other connections' commits; its watcher
	// goroutine runs from Open to Close.
	changes *changes
	// others counts the times other connections' commits woke the
	// waiters (WriterStats.OtherCommits).
	others atomic.Int64

	available signal.Set             // per queue: jobs became claimable
	finished  signal.Keyed[store.ID] // per job: it may have finished

	closeOnce sync.Once
	closeErr  error
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.SQLTxEnqueuer = (*Store)(nil)
	_ store.Notifier      = (*backend)(nil)
	_ engine.Driver       = (*backend)(nil)
)

// DSN returns the database/sql data source name Spool uses for path, with
// the pragmas every connection to a Spool file needs (WAL, synchronous=FULL,
// a busy timeout). Open your own *sql.DB with driver "sqlite" and this DSN to
// pass its transactions to EnqueueTx.
func DSN(path string, busyTimeout time.Duration) string {
	if busyTimeout <= 0 {
		busyTimeout = 5 * time.Second
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the Spool database at path and migrates it
// to the current schema. It refuses a file whose schema is newer than this
// build knows, with an error matching store.ErrSchema, and a bad path or
// Config with every mistake at once, matching store.ErrInvalid.
func Open(path string, cfg Config) (*Store, error) {
	return open(path, cfg, hooks{})
}

func open(path string, cfg Config, h hooks) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if path == "" || strings.Contains(path, ":memory:") || strings.Contains(path, "mode=memory") {
		err = errors.Join(&store.ValidationError{Field: "path", Reason: fmt.Sprintf("%q: a file path is required (in-memory databases are not durable)", path)}, err)
	}
	if err != nil {
		return nil, err
	}
	s := &backend{cfg: cfg, path: path, now: cfg.Now, log: cfg.Logger}
	dsn := DSN(path, cfg.BusyTimeout) + fmt.Sprintf("&_pragma=cache_size(-%d)&_pragma=temp_store(MEMORY)", cfg.CacheMiB*1024)

	wdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	ctx := context.Background()
	if err := migrate(ctx, wdb, s.log); err != nil {
		wdb.Close()
		return nil, err
	}
	conn, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}

	rdb, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		conn.Close()
		wdb.Close()
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(cfg.Readers)
	rdb.SetMaxIdleConns(cfg.Readers)

	s.wdb, s.rdb = wdb, rdb
	if h.freeSpace == nil {
		h.freeSpace = statfsFree
	}
	room := &headroom{maxSize: cfg.MaxSize, minFree: cfg.MinFreeDisk, dir: filepath.Dir(path), freeSpace: h.freeSpace, log: s.log}
	s.changes = newChanges(path+"-wal", h.pollChanges, s.wakeAll, s.log)
	s.writer, err = newWriter(conn, path+"-wal", cfg.MaxGroup, cfg.BusyTimeout, room, s.changes, h, s.log)
	if err != nil {
		conn.Close()
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	return &Store{core: engine.New(s, s.log), b: s}, nil
}

// wakeAll wakes every waiter: another connection committed, and this store
// cannot tell what. It may run before Open has set s.writer (the writer's
// loop checks for changes as soon as it starts), so it counts in s.others.
func (s *backend) wakeAll() {
	s.others.Add(1)
	s.available.FireAll()
	s.finished.FireAll()
}

// Close waits for queued writes, then closes the database. It is
// idempotent. After a failed fsync it returns that failure (matching
// store.ErrDurability): writes acknowledged before it are durable, later
// ones were refused.
func (s *backend) Close() error {
	s.closeOnce.Do(func() {
		s.changes.close()
		failed := s.writer.close()
		s.closeErr = errors.Join(failed, s.rdb.Close(), s.wdb.Close())
		s.finished.FireAll()
	})
	return s.closeErr
}

// Now implements engine.Driver: the process's clock (Config.Now), which
// every process on the machine shares.
func (s *backend) Now() time.Time { return s.now() }

// Notifier implements engine.Driver.
func (s *backend) Notifier() store.Notifier { return s }

// SQLTx implements engine.Driver.
func (s *backend) SQLTx() engine.TxInserter { return s }

// Schedules implements engine.Driver.
func (s *backend) Schedules() engine.ScheduleDriver { return s }

// Available implements store.Notifier.
func (s *backend) Available(queue string) <-chan struct{} { return s.available.Get(queue).C() }

// Finished implements store.Notifier.
func (s *backend) Finished(id store.ID) (<-chan struct{}, func()) { return s.finished.Watch(id) }

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
