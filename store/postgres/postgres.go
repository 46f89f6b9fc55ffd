// Package postgres is Spool's PostgreSQL store, for many processes on many
// machines sharing one database. It implements store.Store,
// store.SQLTxEnqueuer (for a *sql.Tx of the pgx stdlib driver),
// store.Notifier, store.ScheduleStore (recurring schedules), store.EventStore
// and store.EventSQLTx (topics, subscriptions, streams, the inbox), and
// enqueues and publishes in a caller's pgx.Tx with EnqueuePgxTx, PublishPgx,
// AppendPgx and MarkSeenPgx.
//
// # Layout
//
// The store lives in a schema of its own (Config.Schema, default "spool"):
// a jobs table whose secondary indexes are all partial, so a row sits only
// in the indexes of its current state and finished rows never slow a claim,
// a queues table for settings, a schedules table, and a migrations table.
// Migrations are embedded, versioned up and down, and applied by Open (or by
// Migrate, for the CLI) under an advisory lock.
//
// # Schedules
//
// FireDue takes due schedules with FOR UPDATE SKIP LOCKED, so schedulers in
// any number of processes fire disjoint sets, and enqueues their runs and
// moves next_run_at in the same transaction; run keys make each slot's
// enqueue idempotent. A trigger on the jobs table releases a schedule when
// its live run finishes, in the statement that finishes it, whether a
// settle, a cancel or the reaper.
//
// # Events
//
// A topic's events are numbered from its row in the topics table: a
// publisher takes the row's lock with one upsert, reads the head, inserts
// its events after it and stores the new head, and holds the lock until it
// commits. Publishers of one topic therefore take turns, positions are in
// commit order, and a rolled-back publish gives its positions back, so a
// router that reads "position > cursor" never passes over an event that
// commits later. No sequence is involved, and nothing waits for unrelated
// transactions. A router locks its subscription's row with FOR UPDATE SKIP
// LOCKED (another router holding it reports Busy) and turns the events after
// the cursor into jobs in the same transaction. Publishes wake routers with
// the topic's signal (store.TopicSignal) through the same NOTIFY channel as
// jobs.
//
// # Hot path
//
// Every hot operation is one round trip: a claim pipelines the promotion of
// due scheduled jobs, one UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED) and
// the ordering-key check in one implicit transaction; a settle applies each
// outcome of a batch with one UPDATE … FROM unnest(…) statement, all
// pipelined together; an enqueue inserts the batch with one INSERT … SELECT
// FROM unnest(…) ON CONFLICT DO NOTHING.
//
// # Wake-ups
//
// Changes that make jobs claimable (enqueue, release, reap, requeue, resume)
// and that finish jobs are sent to other processes with NOTIFY on one
// channel per schema, coalesced so a busy process sends a few notifications
// per millisecond at most. One listener connection per store turns them into
// the channels of store.Notifier. In PollOnly mode (for PgBouncer in
// transaction mode, where LISTEN does not work) the store does not listen,
// and its channels report this process's own changes only.
package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/internal/signal"
	"github.com/spoolrun/spool/store"
)

// Config tunes a store. The zero value is ready to use.
type Config struct {
	// Now overrides the store's clock, which every stored time comes from
	// (run_at, locks, reaping, finished_at), so tests can move it. Default:
	// the database's clock (read at Open and every 30 s, advanced by this
	// process's monotonic clock in between), so processes whose own clocks
	// differ agree on when locks expire and jobs are due.
	Now func() time.Time
	// Logger receives operational messages (listener reconnects, failed
	// notifications). Default: discard.
	Logger *slog.Logger
	// Schema is the PostgreSQL schema the store's tables live in: 1 to 57
	// lower-case letters, digits and _. Several stores may share a database
	// in different schemas. Default: "spool".
	Schema string
	// PollOnly turns off LISTEN, for connection poolers that do not keep a
	// session (PgBouncer in transaction mode; use default_query_exec_mode=exec
	// in the URL there too). Workers then wake on this process's own changes
	// and otherwise poll. The store still sends NOTIFY for stores that listen.
	// Default: false.
	PollOnly bool
	// MaxConns caps the connection pool. Default: pool_max_conns from the
	// URL, else pgxpool's default (the larger of 4 and the number of CPUs).
	MaxConns int32
	// SkipMigrate makes Open check the schema version instead of migrating:
	// it refuses a schema that is older or newer than this build, for
	// deployments that run `spool migrate up` as a separate step.
	// Default: false (Open applies pending migrations).
	SkipMigrate bool
	// NotifyInterval is the shortest time between two NOTIFY statements of
	// this store; changes in between are sent together. Default: 2ms.
	NotifyInterval time.Duration
}

// Store is the PostgreSQL backend. It is safe for concurrent use. The
// contract's semantics come from the shared engine (internal/engine); this
// package supplies its narrow operations on the database.
type Store struct {
	*core
	b *backend
}

// core is the shared engine a Store embeds: its methods are the Store's.
type core = engine.Store

// backend is the engine's driver: the pool, the listener and the notifier.
type backend struct {
	now      func() time.Time
	log      *slog.Logger
	schema   string
	q        *queries
	pool     *pgxpool.Pool
	keyClass int32  // advisory lock class of this schema's ordering keys
	channel  string // LISTEN/NOTIFY channel of this schema
	sender   string // marks this store's own notifications

	available signal.Set             // per queue: jobs may have become claimable
	finished  signal.Keyed[store.ID] // per job: it may have finished
	asked     sync.Map               // queue names passed to Available, to wake all after a reconnect

	out *outbox // NOTIFYs waiting to be sent

	closed    atomic.Bool
	stop      context.CancelFunc // ends the background goroutines
	wg        sync.WaitGroup     // the background goroutines
	closeOnce sync.Once
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.SQLTxEnqueuer = (*Store)(nil)
	_ store.Notifier      = (*backend)(nil)
	_ engine.Driver       = (*backend)(nil)
)

// Open connects to the database at url (a postgres:// URL or key=value
// string that pgx understands), migrates the schema to the newest version
// (unless Config.SkipMigrate), and starts the notification listener. It
// refuses a schema newer than this build knows with an error matching
// store.ErrSchema.
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	schema := cmp.Or(cfg.Schema, "spool")
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, &store.ValidationError{Field: "url", Reason: err.Error()}
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	s := &backend{
		now:      cfg.Now,
		log:      cfg.Logger,
		schema:   schema,
		q:        newQueries(schema),
		keyClass: lockClass(schema),
		channel:  "spool_" + schema,
		sender:   newSender(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("spool: connect: %w", err)
	}
	if err := s.prepareSchema(ctx, cfg.SkipMigrate); err != nil {
		s.pool.Close()
		return nil, err
	}
	// Retention deletes finished jobs; only VACUUM makes their space
	// reusable, and Spool relies on autovacuum for it.
	var autovacuum string
	if err := s.pool.QueryRow(ctx, `SELECT current_setting('autovacuum')`).Scan(&autovacuum); err == nil && autovacuum == "off" {
		s.log.Warn("spool: postgres: autovacuum is off; the jobs table will keep the space of deleted jobs until it is vacuumed",
			"schema", s.schema)
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx)) // the goroutines outlive Open's ctx
	s.stop = stop
	if s.now == nil {
		clock := &dbClock{}
		if err := clock.sync(ctx, s.pool); err != nil {
			stop()
			s.pool.Close()
			return nil, fmt.Errorf("spool: read the database's clock: %w", err)
		}
		s.now = clock.Now
		s.wg.Go(func() { s.resyncLoop(bg, clock) })
	}
	s.out = newOutbox(cmp.Or(cfg.NotifyInterval, 2*time.Millisecond))
	if !cfg.PollOnly {
		conn, err := s.listenConn(ctx)
		if err != nil {
			stop()
			s.wg.Wait()
			s.pool.Close()
			return nil, fmt.Errorf("spool: listen: %w", err)
		}
		s.wg.Go(func() { s.listen(bg, conn) })
	}
	s.wg.Go(func() { s.sendLoop(bg) })
	return &Store{core: engine.New(s, s.log), b: s}, nil
}

// prepareSchema migrates the schema, or with skip only checks its version.
func (s *backend) prepareSchema(ctx context.Context, skip bool) error {
	if !skip {
		_, err := Migrate(ctx, s.pool, s.schema, LatestVersion())
		return err
	}
	st, err := MigrationStatus(ctx, s.pool, s.schema)
	if err != nil {
		return err
	}
	switch {
	case st.Current > st.Latest:
		return newerSchemaError(s.schema, st.Current, st.Latest)
	case st.Current < st.Latest:
		return fmt.Errorf("spool: schema %q is at version %d, this build needs %d: run spool migrate up", s.schema, st.Current, st.Latest)
	}
	return nil
}

// lockClass is the first key of the advisory locks this schema's ordering
// keys take, so stores in other schemas never contend with them.
func lockClass(schema string) int32 {
	h := fnv.New32a()
	h.Write([]byte("spool ordering " + schema))
	return int32(h.Sum32()) //nolint:gosec // a lock key: wrapping is fine
}

func newSender() string {
	b := make([]byte, 8)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// Pool returns the store's connection pool, for callers that want to share it.
func (s *Store) Pool() *pgxpool.Pool { return s.b.pool }

// Schema returns the schema the store's tables live in.
func (s *Store) Schema() string { return s.b.schema }

// Close stops the listener, sends pending notifications and closes the pool,
// after waiting for calls in flight. It is idempotent; calls after Close fail
// with store.ErrClosed.
func (s *backend) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.stop()
		s.wg.Wait()
		s.pool.Close()
		s.finished.FireAll()
	})
	return nil
}

// Now implements engine.Driver: the database's clock (see Config.Now).
func (s *backend) Now() time.Time { return s.now() }

// Notifier implements engine.Driver: notifications work in PollOnly mode
// too, for this process's own changes.
func (s *backend) Notifier() store.Notifier { return s }

// SQLTx implements engine.Driver: enqueue in a caller's *sql.Tx of the pgx
// stdlib driver.
func (s *backend) SQLTx() engine.TxInserter { return s }

// Schedules implements engine.Driver.
func (s *backend) Schedules() engine.ScheduleDriver { return s }

// Available implements store.Notifier.
func (s *backend) Available(queue string) <-chan struct{} {
	s.asked.Store(queue, true)
	return s.available.Get(queue).C()
}

// Finished implements store.Notifier.
func (s *backend) Finished(id store.ID) (<-chan struct{}, func()) { return s.finished.Watch(id) }

// start refuses a call on a closed store or with a finished context.
func (s *backend) start(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// fail wraps a database error for op, or says the store closed under it.
func (s *backend) fail(ctx context.Context, op string, err error) error {
	switch {
	case s.closed.Load():
		return store.ErrClosed
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		return fmt.Errorf("spool: %s: %w", op, errors.Join(ctx.Err(), err))
	}
	return fmt.Errorf("spool: %s: %w", op, err)
}

// changed wakes this process's waiters at once and queues a notification
// for other processes: queues whose jobs may have become claimable, and
// jobs that finished.
func (s *backend) changed(queues []string, finished []store.ID) {
	for _, q := range queues {
		s.available.Fire(q)
	}
	s.finished.Fire(finished...)
	s.out.add(queues, finished)
}

// changedMany is changed for a bulk action: jobs may have become
// claimable in queues, and too many jobs may have finished to name them,
// so every waiter for a job looks.
func (s *backend) changedMany(queues []string) {
	for _, q := range queues {
		s.available.Fire(q)
	}
	s.finished.FireAll()
	s.out.addEveryFinished(queues)
}

// txOptions is how the store's explicit transactions run.
var txOptions = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}

// ids converts IDs to the form pgx encodes as uuid.
func ids(in []store.ID) [][16]byte {
	out := make([][16]byte, len(in))
	for i, id := range in {
		out[i] = id
	}
	return out
}

// scanJob reads the columns of jobColumns.
func scanJob(r pgx.Row) (*store.Job, error) {
	var (
		j                           store.Job
		state                       string
		uniq, ord, dead             *string
		token                       *int64
		lockedUntil, finished       *time.Time
		uniqueUntil                 *time.Time
		errs                        []byte
		priority                    int16
		attempts, maxAtt, del, maxD int32
		meta                        []byte
		attempted                   *time.Time
		took                        *int64
	)
	if err := r.Scan((*[16]byte)(&j.ID), &j.Queue, &j.Kind, &j.Payload, &priority, &j.RunAt, &state, &j.Tenant, &uniq, &ord,
		&attempts, &maxAtt, &del, &maxD, &token, &lockedUntil,
		&errs, &j.Result, &dead, &j.CreatedAt, &finished, &j.HoldKeyWhenDead, &uniqueUntil,
		&meta, &attempted, &took); err != nil {
		return nil, err
	}
	var err error
	if j.Metadata, err = engine.DecodeMetadata(j.ID, meta); err != nil {
		return nil, err
	}
	if attempted != nil {
		j.AttemptedAt = attempted.UTC()
	}
	if took != nil {
		j.LastAttemptDuration = time.Duration(*took) * time.Microsecond
	}
	j.Priority, j.Attempts, j.MaxAttempts, j.Deliveries, j.MaxDeliveries = int(priority), int(attempts), int(maxAtt), int(del), int(maxD)
	j.State = store.State(state)
	j.RunAt, j.CreatedAt = j.RunAt.UTC(), j.CreatedAt.UTC()
	if uniq != nil {
		j.UniqueKey = *uniq
	}
	if ord != nil {
		j.OrderingKey = *ord
	}
	if dead != nil {
		j.DeadReason = *dead
	}
	if token != nil {
		j.LockToken = store.LockToken(*token)
	}
	if lockedUntil != nil {
		j.LockedUntil = lockedUntil.UTC()
	}
	if finished != nil {
		j.FinishedAt = finished.UTC()
	}
	if uniqueUntil != nil {
		j.UniqueUntil = uniqueUntil.UTC()
	}
	if len(errs) > 0 {
		if err := json.Unmarshal(errs, &j.Errors); err != nil {
			return nil, fmt.Errorf("job %s: decode error history: %w", j.ID, err)
		}
	}
	return &j, nil
}
