package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// notifyWait bounds how long a notification may take; a failure deadline,
// not a synchronisation delay.
const notifyWait = 10 * time.Second

// open opens a store on the package database in schema.
func open(t *testing.T, schema string, cfg postgres.Config) *postgres.Store {
	t.Helper()
	cfg.Schema = schema
	s, err := postgres.Open(t.Context(), pgtest.URL(t), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func wantClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(notifyWait):
		t.Fatalf("%s: no notification within %v", what, notifyWait)
	}
}

func isOpen(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// txCase is one way of enqueueing in a caller's transaction.
type txCase struct {
	name string
	// enqueue runs fn's enqueue and a caller row insert in one transaction,
	// then commits or rolls back.
	run func(t *testing.T, s *postgres.Store, commit bool, jobs []store.EnqueueParams) ([]store.EnqueueResult, error)
}

var txCases = []txCase{
	{"sql.Tx", func(t *testing.T, s *postgres.Store, commit bool, jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
		db, err := sql.Open("pgx", pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx := t.Context()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+s.Schema()+`.orders (id) VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		res, err := s.EnqueueTx(ctx, tx, jobs)
		// The caller's transaction stays usable whatever the enqueue said.
		if _, xerr := tx.ExecContext(ctx, `INSERT INTO `+s.Schema()+`.orders (id) VALUES (2)`); xerr != nil {
			t.Fatalf("caller's transaction broken after EnqueueTx (%v): %v", err, xerr)
		}
		if commit {
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		return res, err
	}},
	{"pgx.Tx", func(t *testing.T, s *postgres.Store, commit bool, jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
		pool, err := pgxpool.New(t.Context(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		ctx := t.Context()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.Schema()+`.orders (id) VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		res, err := s.EnqueuePgxTx(ctx, tx, jobs)
		if _, xerr := tx.Exec(ctx, `INSERT INTO `+s.Schema()+`.orders (id) VALUES (2)`); xerr != nil {
			t.Fatalf("caller's transaction broken after EnqueuePgxTx (%v): %v", err, xerr)
		}
		if commit {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return res, err
	}},
}

// TestEnqueueInCallersTx: jobs enqueued in a caller's transaction commit or
// roll back with the caller's rows, and a refused batch leaves the
// transaction usable.
func TestEnqueueInCallersTx(t *testing.T) {
	t.Parallel()
	for _, tc := range txCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, pgtest.Schema(t), postgres.Config{})
			ctx := t.Context()
			if _, err := s.Pool().Exec(ctx, `CREATE TABLE `+s.Schema()+`.orders (id int PRIMARY KEY)`); err != nil {
				t.Fatal(err)
			}
			orders := func() int {
				var n int
				if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM `+s.Schema()+`.orders`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}

			// Rolled back: neither the caller's rows nor the job.
			res, err := tc.run(t, s, false, []store.EnqueueParams{{Kind: "mail", UniqueKey: "order-1"}})
			if err != nil {
				t.Fatalf("enqueue in tx: %v", err)
			}
			if _, err := s.Get(ctx, res[0].ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("job of a rolled-back transaction: Get = %v, want ErrNotFound", err)
			}
			if n := orders(); n != 0 {
				t.Fatalf("%d orders after rollback", n)
			}

			// Committed: both, and workers here are woken by the commit.
			woken := s.Capabilities().Notifier.Available(store.DefaultQueue)
			res, err = tc.run(t, s, true, []store.EnqueueParams{{Kind: "mail", UniqueKey: "order-1"}, {Kind: "mail", UniqueKey: "order-1"}})
			if err != nil {
				t.Fatalf("enqueue in tx: %v", err)
			}
			if res[0].Duplicate || !res[1].Duplicate || res[1].ID != res[0].ID {
				t.Errorf("results %+v, want the second a duplicate of the first", res)
			}
			if j, err := s.Get(ctx, res[0].ID); err != nil || j.State != store.StateAvailable {
				t.Fatalf("job of a committed transaction: %v, %v", j, err)
			}
			if n := orders(); n != 2 {
				t.Fatalf("%d orders after commit, want 2", n)
			}
			wantClosed(t, "Available after the caller's commit", woken)

			// Refused: an invalid item writes nothing, the caller's rows commit.
			if _, err := s.Pool().Exec(ctx, `DELETE FROM `+s.Schema()+`.orders`); err != nil {
				t.Fatal(err)
			}
			_, err = tc.run(t, s, true, []store.EnqueueParams{{Kind: "ok", Queue: "refused"}, {Kind: "bad kind"}})
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("invalid item: %v, want ErrInvalid", err)
			}
			// A taken ID is refused in the database, after the savepoint.
			if _, err := s.Pool().Exec(ctx, `DELETE FROM `+s.Schema()+`.orders`); err != nil {
				t.Fatal(err)
			}
			_, err = tc.run(t, s, true, []store.EnqueueParams{{Kind: "ok", Queue: "refused"}, {Kind: "ok", ID: res[0].ID}})
			var ie *store.ItemError
			if !errors.As(err, &ie) || ie.Index != 1 || !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("taken ID: %v, want an ItemError at index 1 matching ErrInvalid", err)
			}
			if page, err := s.List(ctx, store.ListParams{Queue: "refused"}); err != nil || len(page.Jobs) != 0 {
				t.Fatalf("refused batches wrote jobs: %v, %v", page, err)
			}
			if n := orders(); n != 2 {
				t.Fatalf("%d orders after the refused enqueue committed, want 2", n)
			}
		})
	}
}

// TestNotifyAcrossStores: an enqueue or a finished job in one store wakes
// the waiters of another store on the same schema, through LISTEN/NOTIFY.
func TestNotifyAcrossStores(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	a := open(t, schema, postgres.Config{})
	b := open(t, schema, postgres.Config{})
	ctx := t.Context()

	avail := b.Capabilities().Notifier.Available("mail.out")
	if _, err := a.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "mail.out"}}); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, "B's Available after A's Enqueue", avail)

	jobs, err := b.Claim(ctx, store.ClaimParams{Queue: "mail.out", LockFor: time.Minute})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("B's claim: %v, %v", jobs, err)
	}
	fin, release := a.Capabilities().Notifier.Finished(jobs[0].ID)
	defer release()
	if errs, err := b.Settle(ctx, []store.Verdict{{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.Complete}}); err != nil || errs[0] != nil {
		t.Fatalf("Settle: %v %v", errs, err)
	}
	wantClosed(t, "A's Finished after B's Complete", fin)

	// Resume wakes other stores too.
	if err := a.PauseQueue(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	avail = b.Capabilities().Notifier.Available("p")
	if err := a.ResumeQueue(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, "B's Available after A's ResumeQueue", avail)
}

// listeners counts the sessions listening on schema's channel.
func listeners(t *testing.T, s *postgres.Store) int {
	t.Helper()
	var n int
	err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND query = $1`, `LISTEN "spool_`+s.Schema()+`"`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPollOnly: a PollOnly store opens no listener, wakes its own waiters on
// its own changes, and still tells listening stores.
func TestPollOnly(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	p := open(t, schema, postgres.Config{PollOnly: true})
	if n := listeners(t, p); n != 0 {
		t.Fatalf("%d listening sessions with only a PollOnly store open, want 0", n)
	}
	l := open(t, schema, postgres.Config{})
	if n := listeners(t, p); n != 1 {
		t.Fatalf("%d listening sessions with one listening store open, want 1", n)
	}
	ctx := t.Context()

	own, other := p.Capabilities().Notifier.Available(store.DefaultQueue), l.Capabilities().Notifier.Available(store.DefaultQueue)
	if _, err := p.Enqueue(ctx, []store.EnqueueParams{{Kind: "k"}}); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, "PollOnly store's own Available", own)
	wantClosed(t, "listening store's Available after a PollOnly store's enqueue", other)

	// The PollOnly store hears nothing from the listening one.
	own, other = p.Capabilities().Notifier.Available("q2"), l.Capabilities().Notifier.Available("q2")
	if _, err := l.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "q2"}}); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, "listening store's own Available", other)
	if !isOpen(own) {
		t.Error("a PollOnly store was woken by another store's enqueue")
	}
}

// TestSettleStoresAnyText: error messages and stacks that PostgreSQL text
// cannot hold (NUL, invalid UTF-8) are stored with U+FFFD instead of failing
// the settle; keys with NUL are refused at enqueue.
func TestSettleStoresAnyText(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.Schema(t), postgres.Config{})
	ctx := t.Context()
	res, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, LockFor: time.Minute})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Claim: %v, %v", jobs, err)
	}
	v := store.Verdict{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.Fail,
		Error: &store.AttemptError{Message: "bad\x00byte \xff", Stack: "s\x00"}}
	if errs, err := s.Settle(ctx, []store.Verdict{v}); err != nil || errs[0] != nil {
		t.Fatalf("Settle: %v %v", errs, err)
	}
	j, err := s.Get(ctx, res[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Errors) != 1 || j.Errors[0].Message != "bad\uFFFDbyte \uFFFD" || j.Errors[0].Stack != "s\uFFFD" {
		t.Errorf("error history %+v", j.Errors)
	}
	_, err = s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", UniqueKey: "a\x00b"}})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unique key with NUL: %v, want ErrInvalid", err)
	}
}

// TestMigrations: up, down and up again; a script from MigrationSQL applied
// by hand; concurrent openers; a newer schema is refused.
func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	schema := pgtest.Schema(t)
	latest := postgres.LatestVersion()
	tables := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename IN ('jobs', 'queues')`, schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	status := func() *postgres.Status {
		st, err := postgres.MigrationStatus(ctx, pool, schema)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); st.Current != 0 || st.Latest != latest || len(st.Pending) != knownAbove(t, 0) {
		t.Fatalf("fresh schema: %+v", st)
	}
	for round := range 2 {
		steps, err := postgres.Migrate(ctx, pool, schema, latest)
		if err != nil || len(steps) != knownAbove(t, 0) || steps[0].Down {
			t.Fatalf("round %d: up: %+v, %v", round, steps, err)
		}
		if st := status(); st.Current != latest || len(st.Pending) != 0 || len(st.Applied) != knownAbove(t, 0) {
			t.Fatalf("round %d: after up: %+v", round, st)
		}
		if n := tables(); n != 2 {
			t.Fatalf("round %d: %d tables after up", round, n)
		}
		if steps, err := postgres.Migrate(ctx, pool, schema, latest); err != nil || len(steps) != 0 {
			t.Fatalf("round %d: up again: %+v, %v; want nothing to do", round, steps, err)
		}
		steps, err = postgres.Migrate(ctx, pool, schema, 0)
		if err != nil || len(steps) != knownAbove(t, 0) || !steps[0].Down {
			t.Fatalf("round %d: down: %+v, %v", round, steps, err)
		}
		if n := tables(); n != 0 {
			t.Fatalf("round %d: %d tables after down", round, n)
		}
	}

	// A script printed for review applies by hand, and Open accepts the result.
	script, err := postgres.MigrationSQL(schema, 0, latest)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(script, "CREATE TABLE "+schema+".jobs") {
		t.Fatalf("script does not create %s.jobs:\n%s", schema, script)
	}
	if err := execScript(ctx, pool, script); err != nil {
		t.Fatalf("applying the printed script: %v", err)
	}
	open(t, schema, postgres.Config{SkipMigrate: true})
	down, err := postgres.MigrationSQL(schema, latest, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := execScript(ctx, pool, down); err != nil {
		t.Fatalf("applying the printed down script: %v", err)
	}
	if _, err := postgres.Open(ctx, pgtest.URL(t), postgres.Config{Schema: schema, SkipMigrate: true}); err == nil {
		t.Fatal("Open with SkipMigrate accepted a schema without tables")
	}

	// Concurrent openers of a fresh schema apply each migration once.
	fresh := pgtest.Schema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := postgres.Open(ctx, pgtest.URL(t), postgres.Config{Schema: fresh, PollOnly: true})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	st, err := postgres.MigrationStatus(ctx, pool, fresh)
	if err != nil || len(st.Applied) != knownAbove(t, 0) {
		t.Fatalf("after concurrent opens: %+v, %v", st, err)
	}

	// A newer schema, as left by a later build, is refused.
	if _, err := pool.Exec(ctx, `INSERT INTO `+fresh+`.migrations (version, name) VALUES ($1, 'from the future')`, latest+1); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []postgres.Config{{Schema: fresh}, {Schema: fresh, SkipMigrate: true}} {
		s, err := postgres.Open(ctx, pgtest.URL(t), cfg)
		if !errors.Is(err, store.ErrSchema) || store.Code(err) != "schema" {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(SkipMigrate %v) of a newer schema = %v, want ErrSchema", cfg.SkipMigrate, err)
		}
	}
	if _, err := postgres.Migrate(ctx, pool, fresh, 0); !errors.Is(err, store.ErrSchema) {
		t.Errorf("Migrate of a newer schema = %v, want ErrSchema", err)
	}
}

// execScript runs a multi-statement script in one transaction, as
// psql --single-transaction would.
func execScript(ctx context.Context, pool *pgxpool.Pool, script string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, script, pgx.QueryExecModeSimpleProtocol)
		return err
	})
}

// TestOpenRefusesBadConfig: a bad schema name or URL is refused before
// anything is written.
func TestOpenRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for _, schema := range []string{"Upper", "1digit", "has-dash", strings.Repeat("s", 58), "semi;colon"} {
		if _, err := postgres.Open(t.Context(), pgtest.URL(t), postgres.Config{Schema: schema}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Open(schema %q) = %v, want ErrInvalid", schema, err)
		}
	}
	if _, err := postgres.Open(t.Context(), "postgres://%zz", postgres.Config{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Open(bad URL) = %v, want ErrInvalid", err)
	}
}

// TestListenerReconnects: when the listener's session dies, the store
// reconnects, wakes every waiter (notifications may have been lost
// meanwhile), and hears notifications again.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	a := open(t, schema, postgres.Config{PollOnly: true})
	b := open(t, schema, postgres.Config{})
	ctx := t.Context()
	waiting := b.Capabilities().Notifier.Available("q")
	var killed int
	err := a.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = $1`, `LISTEN "spool_`+schema+`"`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d listener sessions (%v), want 1", killed, err)
	}
	wantClosed(t, "Available after the listener reconnected", waiting)
	waiting = b.Capabilities().Notifier.Available("q")
	if _, err := a.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "q"}}); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, "Available after another store's enqueue, on the new session", waiting)
}
