// Command evchild is a process of the events crash test in package
// crashtest: the test builds it, runs several at once against a SQLite
// file, and kills them with SIGKILL at random moments. It is not meant to
// be run by hand.
//
// As a publisher (SPOOL_EVCRASH_ROLE=publisher) it publishes the events of
// the workload in package internal/eventcrash at SPOOL_EVCRASH_RATE events/s,
// with Client.Publish and with Client.PublishTx in transactions of its own
// on the file (some rolled back on purpose), recording intents and
// acknowledgements in the log, until it is killed or told to stop.
//
// As a worker (SPOOL_EVCRASH_ROLE=worker) it works the workload's three
// subscriptions with a spool.Worker whose handlers record each handling in
// the log; the mailer's inbox transactions run on the file too.
//
// Configuration comes from the environment (see the env* constants). The
// child prints "ready" on stdout once it runs, and on SIGTERM or SIGINT
// stops gracefully and exits 0.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/childenv"
	"github.com/spoolrun/spool/internal/eventcrash"
	"github.com/spoolrun/spool/store/sqlite"
)

// The environment the child reads. Durations are in Go syntax ("1s").
const (
	envRole        = "SPOOL_EVCRASH_ROLE"          // publisher or worker; required
	envDB          = "SPOOL_EVCRASH_DB"            // SQLite file; required
	envLog         = "SPOOL_EVCRASH_LOG"           // the log of records; required
	envID          = "SPOOL_EVCRASH_ID"            // the process's name, unique in the run; required
	envSeed        = "SPOOL_EVCRASH_SEED"          // publisher: what it publishes; default 0
	envRate        = "SPOOL_EVCRASH_RATE"          // publisher: events/s; default 100
	envConcurrency = "SPOOL_EVCRASH_CONCURRENCY"   // worker: per subscription; default 8
	envPrefetch    = "SPOOL_EVCRASH_PREFETCH"      // worker: per subscription; default 2
	envReap        = "SPOOL_EVCRASH_REAP_INTERVAL" // worker: default 100ms
)

// The application's tables in the SQLite file.
const (
	ordersTable  = "app_orders"
	effectsTable = "app_effects"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "evchild:", err)
		os.Exit(1)
	}
}

func run() error {
	for _, name := range []string{envRole, envDB, envLog, envID} {
		if os.Getenv(name) == "" {
			return fmt.Errorf("%s is required", name)
		}
	}
	path, id := os.Getenv(envDB), os.Getenv(envID)
	log, err := eventcrash.OpenLog(os.Getenv(envLog))
	if err != nil {
		return err
	}
	defer log.Close()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("proc", id)
	st, err := sqlite.Open(path, sqlite.Config{Logger: logger})
	if err != nil {
		return err
	}
	defer st.Close()
	db, err := sql.Open("sqlite", sqlite.DSN(path, 10*time.Second))
	if err != nil {
		return err
	}
	defer db.Close()
	tables := eventcrash.SQL{DB: db, Orders: ordersTable, Effects: effectsTable}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch role := os.Getenv(envRole); role {
	case "publisher":
		return publish(ctx, st, tables, log, id)
	case "worker":
		return work(ctx, st, tables, log, id, logger)
	default:
		return fmt.Errorf("%s=%q: want publisher or worker", envRole, role)
	}
}

func publish(ctx context.Context, st *sqlite.Store, tables eventcrash.SQL, log *eventcrash.Log, id string) error {
	seed, err := childenv.Int(envSeed, 0)
	if err != nil {
		return err
	}
	rate, err := childenv.Int(envRate, 100)
	if err != nil {
		return err
	}
	c, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		return err
	}
	p := &eventcrash.Publisher{Client: c, SQL: tables, Log: log, Proc: id, Seed: uint64(seed), Rate: rate}
	fmt.Println("ready")
	return p.Run(ctx)
}

func work(ctx context.Context, st *sqlite.Store, tables eventcrash.SQL, log *eventcrash.Log, id string, logger *slog.Logger) error {
	conc, err := childenv.Int(envConcurrency, 8)
	if err != nil {
		return err
	}
	prefetch, err := childenv.Int(envPrefetch, 2)
	if err != nil {
		return err
	}
	reap, err := childenv.Duration(envReap, 100*time.Millisecond)
	if err != nil {
		return err
	}
	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:        st,
		ID:           id,
		Logger:       logger,
		PollInterval: 50 * time.Millisecond,
		Maintenance:  spool.MaintenanceConfig{ReapInterval: reap},
	})
	if err != nil {
		return err
	}
	s := &eventcrash.Subscriber{Log: log, Proc: id, SQL: tables}
	s.Register(w, &spool.SubscribeOptions{Concurrency: conc, Prefetch: prefetch})
	if err := w.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return w.Stop(stopCtx)
}
