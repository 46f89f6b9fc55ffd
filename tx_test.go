package spool_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/spoolrun/spool"
)

// openDB opens the caller's own connection pool to the store's file, the way
// an application holding its own tables would.
func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	return db
}

func TestEnqueueTxCommitsAndRollsBackWithTheCaller(t *testing.T) {
	t.Parallel()
	st, path := openStore(t)
	c := newClient(t, st)
	db := openDB(t, path)
	ctx := context.Background()

	// signUp inserts a user and its welcome e-mail job in one transaction.
	signUp := func(userID int, commit bool) spool.ID {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("BeginTx: %v", err)
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, email) VALUES (?, ?)`, userID, "ada@example.com"); err != nil {
			t.Fatalf("insert user: %v", err)
		}
		res, err := sendEmail.EnqueueTx(ctx, c, tx, email{To: "ada@example.com", Subject: "welcome"}, nil)
		if err != nil {
			t.Fatalf("EnqueueTx: %v", err)
		}
		if commit {
			if err := tx.Commit(); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		} else if err := tx.Rollback(); err != nil {
			t.Fatalf("Rollback: %v", err)
		}
		return res.ID
	}
	users := func(id int) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE id = ?`, id).Scan(&n); err != nil {
			t.Fatalf("count users: %v", err)
		}
		return n
	}

	rolledBack := signUp(1, false)
	if users(1) != 0 {
		t.Fatal("the rolled-back user exists")
	}
	if _, err := c.Get(ctx, rolledBack); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("Get of the rolled-back job: %v, want ErrNotFound", err)
	}
	if n := countJobs(t, c); n != 0 {
		t.Fatalf("%d jobs after rollback, want 0", n)
	}

	committed := signUp(2, true)
	if users(2) != 1 {
		t.Fatal("the committed user is missing")
	}
	job := mustGet(t, c, committed)
	if got, err := sendEmail.Decode(job); err != nil || got.Subject != "welcome" || job.State != spool.StateAvailable {
		t.Fatalf("committed job = %+v (payload %+v, %v); want an available welcome e-mail", job, got, err)
	}
	// The committed job is claimable, as a worker would see it.
	if claimed := claim(t, st, "default"); claimed.ID != committed {
		t.Fatalf("claimed %s, want %s", claimed.ID, committed)
	}
}

func TestEnqueueTxManyAndRefusals(t *testing.T) {
	t.Parallel()
	st, path := openStore(t)
	c := newClient(t, st)
	db := openDB(t, path)
	ctx := context.Background()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("BeginTx: %v", err)
	}
	defer func() { _ = tx.Rollback() }()
	// An invalid item refuses the whole call and leaves the transaction usable.
	_, err = c.EnqueueTx(ctx, tx, sendEmail.Item(email{}, nil), sendEmail.Item(email{}, &spool.EnqueueOptions{Delay: -1}))
	if !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("EnqueueTx with a bad item: %v, want ErrInvalid", err)
	}
	res, err := c.EnqueueTx(ctx, tx, sendEmail.Item(email{To: "a"}, nil), spool.RawItem("raw", []byte(`1`), nil))
	if err != nil || len(res) != 2 {
		t.Fatalf("EnqueueTx = %v, %v; want 2 results", res, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if n := countJobs(t, c); n != 2 {
		t.Fatalf("%d jobs after commit, want 2", n)
	}

	if _, err := c.EnqueueTx(ctx, nil, sendEmail.Item(email{}, nil)); !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("EnqueueTx(nil tx): %v, want ErrInvalid", err)
	}
}

func TestEnqueueTxUnsupported(t *testing.T) {
	t.Parallel()
	st, path := openStore(t)
	c := newClient(t, plainStore{st})
	db := openDB(t, path)
	ctx := context.Background()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("BeginTx: %v", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := c.EnqueueTx(ctx, tx, sendEmail.Item(email{}, nil)); !errors.Is(err, spool.ErrTxUnsupported) {
		t.Fatalf("Client.EnqueueTx: %v, want ErrTxUnsupported", err)
	}
	if _, err := sendEmail.EnqueueTx(ctx, c, tx, email{}, nil); !errors.Is(err, spool.ErrTxUnsupported) {
		t.Fatalf("Kind.EnqueueTx: %v, want ErrTxUnsupported", err)
	}
}
