package postgres_test

import (
	"context"
	"log"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// Open a store, enqueue a job in the same transaction as the caller's own
// rows, then claim and complete it. (Not run: it needs a database.)
func Example() {
	ctx := context.Background()
	url := "postgres://app@db.internal/app"
	s, err := postgres.Open(ctx, url, postgres.Config{Schema: "spool"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// The job commits or rolls back with the order.
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orders (id) VALUES (42)`); err != nil {
			return err
		}
		_, err := s.EnqueuePgxTx(ctx, tx, []store.EnqueueParams{{Kind: "send_receipt", Payload: []byte(`{"order":42}`), UniqueKey: "receipt:42"}})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	jobs, err := s.Claim(ctx, store.ClaimParams{Queue: store.DefaultQueue, Limit: 10, LockFor: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	verdicts := make([]store.Verdict, len(jobs))
	for i, j := range jobs {
		verdicts[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Complete}
	}
	if _, err := s.Settle(ctx, verdicts); err != nil {
		log.Fatal(err)
	}
}

// Migrate a schema as a separate deployment step, the way `spool migrate up`
// does, and print the script a DBA would review. (Not run.)
func ExampleMigrate() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, "postgres://admin@db.internal/app")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	st, err := postgres.MigrationStatus(ctx, conn, "spool")
	if err != nil {
		log.Fatal(err)
	}
	script, err := postgres.MigrationSQL("spool", st.Current, postgres.LatestVersion())
	if err != nil {
		log.Fatal(err)
	}
	log.Print(script)
	steps, err := postgres.Migrate(ctx, conn, "spool", postgres.LatestVersion())
	if err != nil {
		log.Fatal(err)
	}
	for _, step := range steps {
		log.Printf("applied %04d_%s", step.Version, step.Name)
	}
}
