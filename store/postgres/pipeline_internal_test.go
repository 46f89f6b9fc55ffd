package postgres

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
)

// A pipelined transaction commits its queued statements with COMMIT, and
// when a queued statement fails, the call that sends it reports the error,
// nothing of the transaction is kept, and its connection goes back to the
// pool usable.
func TestPipelinedTransaction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, pgtest.URL(t), Config{Schema: pgtest.Schema(t), PollOnly: true, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	b := s.b
	insert := func(x *pipeExec, id store.ID) {
		t.Helper()
		jobs := []store.EnqueueParams{{ID: id, Queue: "q", Kind: "k", MaxAttempts: 1, MaxDeliveries: 1}}
		b.queueInsert(ctx, x, jobs, make([]store.EnqueueResult, 1), b.now())
	}
	count := func() int {
		t.Helper()
		var n int
		if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM "+b.schema+".jobs").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	first := store.NewID()
	if err := b.pipelined(ctx, func(x *pipeExec) error {
		insert(x, first)
		return nil // the insert goes out with COMMIT
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d jobs after a committed pipelined insert, want 1", n)
	}

	// A second row with first's ID fails the strict insert; the row queued
	// before it is rolled back with it.
	err = b.pipelined(ctx, func(x *pipeExec) error {
		insert(x, store.NewID())
		insert(x, first)
		var one int
		return x.queryRow(ctx, "SELECT 1").Scan(&one)
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("pipelined insert of a taken ID: %v, want a unique violation", err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d jobs after a failed pipelined transaction, want 1", n)
	}

	// The refusal of fn rolls back what was sent, on the pool's only
	// connection, which is then outside any transaction.
	refused := errors.New("refused")
	err = b.pipelined(ctx, func(x *pipeExec) error {
		insert(x, store.NewID())
		if _, err := x.execCount(ctx, "SELECT 1"); err != nil {
			return err
		}
		return refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("pipelined = %v, want the refusal", err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d jobs after a refused pipelined transaction, want 1", n)
	}
}
