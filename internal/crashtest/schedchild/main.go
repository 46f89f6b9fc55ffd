// Command schedchild is the process of the schedule crash test in package
// crashtest: a spool.Worker that fires schedules (with small batches, so a
// kill often lands inside a firing transaction) and completes their runs.
// The test runs two at once against one store, kills them with SIGKILL at
// random moments and restarts them. It is not meant to be run by hand.
//
// Configuration comes from the environment: SPOOL_SCHEDCRASH_DB, the SQLite
// file, or SPOOL_SCHEDCRASH_PG and SPOOL_SCHEDCRASH_SCHEMA, a PostgreSQL URL
// and schema. The child prints "ready" once its worker runs, and on SIGTERM
// stops it gracefully and exits 0.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/sqlite"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "schedule crash child:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var (
		st  store.Store
		err error
	)
	if url := os.Getenv("SPOOL_SCHEDCRASH_PG"); url != "" {
		st, err = postgres.Open(ctx, url, postgres.Config{Schema: os.Getenv("SPOOL_SCHEDCRASH_SCHEMA")})
	} else {
		st, err = sqlite.Open(os.Getenv("SPOOL_SCHEDCRASH_DB"), sqlite.Config{})
	}
	if err != nil {
		return err
	}
	defer st.Close()
	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:     st,
		Queues:    map[string]spool.QueueConfig{"ticks": {Concurrency: 20}},
		Scheduler: spool.SchedulerConfig{Batch: 37, MaxWait: 100 * time.Millisecond},
	})
	if err != nil {
		return err
	}
	spool.HandleRaw(w, "tick", func(context.Context, *spool.Job) ([]byte, error) { return nil, nil }, nil)
	if err := w.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return w.Stop(sctx)
}
