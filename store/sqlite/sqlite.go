// Package sqlite is Spool's embedded store: one file, pure Go
// (modernc.org/sqlite), WAL with synchronous=FULL so a job is on disk when
// Enqueue returns.
//
// All writes of a process go through one writer goroutine that commits
// concurrent operations together (group commit): while one transaction is
// being made durable, the next operations queue up and share the next
// commit, so throughput grows with concurrency instead of serialising on
// fsync. Reads use a separate pool of connections and never wait for writes.
//
// Several processes on one machine may open the same file: SQLite's file
// locks serialise their writers, and busy waits are absorbed by the busy
// timeout and retried, never surfaced as errors.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/internal/signal"
	"github.com/spoolrun/spool/store"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Config tunes a store. The zero value is ready to use.
type Config struct {
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives operational messages. Default: discard.
	Logger *slog.Logger
	// BusyTimeout is how long one statement waits for another process's
	// write lock before the writer retries. Default: 5s.
	BusyTimeout time.Duration
	// MaxGroup caps how many operations share one commit. Default: 512.
	MaxGroup int
	// Readers is the size of the read connection pool. Default: 4.
	Readers int
	// CacheMiB is SQLite's page cache per connection, in MiB. Default: 32.
	CacheMiB int
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
// build knows, with an error matching store.ErrSchema.
func Open(path string, cfg Config) (*Store, error) {
	if path == "" || strings.Contains(path, ":memory:") || strings.Contains(path, "mode=memory") {
		return nil, &store.ValidationError{Field: "path", Reason: fmt.Sprintf("%q: a file path is required (in-memory databases are not durable)", path)}
	}
	s := &backend{cfg: cfg, path: path}
	s.now = cfg.Now
	if s.now == nil {
		s.now = time.Now
	}
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	busy := cfg.BusyTimeout
	if busy <= 0 {
		busy = 5 * time.Second
	}
	cache := cfg.CacheMiB
	if cache <= 0 {
		cache = 32
	}
	dsn := DSN(path, busy) + fmt.Sprintf("&_pragma=cache_size(-%d)&_pragma=temp_store(MEMORY)", cache*1024)

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

	readers := cfg.Readers
	if readers <= 0 {
		readers = 4
	}
	rdb, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		conn.Close()
		wdb.Close()
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)

	s.wdb, s.rdb = wdb, rdb
	maxGroup := cfg.MaxGroup
	if maxGroup <= 0 {
		maxGroup = 512
	}
	s.writer, err = newWriter(conn, path+"-wal", maxGroup, s.log)
	if err != nil {
		conn.Close()
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	return &Store{core: engine.New(s, s.log), b: s}, nil
}

// Close waits for queued writes, then closes the database. It is idempotent.
func (s *backend) Close() error {
	s.closeOnce.Do(func() {
		s.writer.close()
		s.closeErr = errors.Join(s.rdb.Close(), s.wdb.Close())
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
