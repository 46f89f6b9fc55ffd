// Command child is a worker or producer process of the multi-process
// PostgreSQL tests in package pgcrash: the test builds it, starts several of
// each against one database, and kills, pauses or outlives them and the
// server. It is not meant to be run by hand.
//
// As a worker (SPOOL_PGCRASH_ROLE=worker) it works the "default" queue with
// a spool.Worker. Its handler for kind "work" appends "S <id> <delivery>" to
// its log when it starts, waits a random moment up to SPOOL_PGCRASH_MAX_WORK
// (honouring its context), appends "E <id> <delivery>", and returns nil.
// Each line is one write(2) on a file opened with O_APPEND, so it survives
// SIGKILL; an "E" line is written before the job's completion can reach the
// store. On SIGTERM it stops the worker gracefully and prints one JSON line
// of its settler's counters on stdout (see stats).
//
// As a producer (SPOOL_PGCRASH_ROLE=producer) it enqueues SPOOL_PGCRASH_JOBS
// jobs of kind "work" in batches, at about SPOOL_PGCRASH_RATE jobs/s. Each
// batch's IDs are chosen before the first attempt, so a batch retried after
// an error whose commit had in fact gone through is recognised (its IDs are
// taken) instead of enqueued twice; the producer logs every failed attempt
// and retries until it succeeds. After each batch commits it appends
// "P <id>" per job to its log, then exits 0 when all are enqueued.
//
// As an events publisher (SPOOL_PGCRASH_ROLE=publisher) or subscriber
// (SPOOL_PGCRASH_ROLE=subscriber) it runs the events workload of package
// internal/eventcrash: it publishes at SPOOL_PGCRASH_RATE events/s (with
// Client.Publish, and with Client.PublishTx in *sql.Tx transactions of its
// own, some rolled back on purpose) until it is killed, or works the
// workload's three subscriptions; either records what it does in
// SPOOL_PGCRASH_RECORDS, the file every process of the run appends to. A
// subscriber prints its settler's counters on SIGTERM as a worker does.
//
// All print "ready" on stdout once running and log to stderr (slog text).
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for PublishTx and MarkSeen

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/childenv"
	"github.com/spoolrun/spool/internal/eventcrash"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// The environment the child reads. Durations are in Go syntax ("1s").
const (
	envRole        = "SPOOL_PGCRASH_ROLE"          // worker, producer, publisher or subscriber; required
	envURL         = "SPOOL_PGCRASH_URL"           // database URL; required
	envSchema      = "SPOOL_PGCRASH_SCHEMA"        // store schema; required
	envLog         = "SPOOL_PGCRASH_LOG"           // the S/E or P log; required
	envID          = "SPOOL_PGCRASH_ID"            // worker ID / producer name; required
	envConcurrency = "SPOOL_PGCRASH_CONCURRENCY"   // worker: default 16
	envPrefetch    = "SPOOL_PGCRASH_PREFETCH"      // worker: default 4
	envLock        = "SPOOL_PGCRASH_LOCK"          // worker: lock duration; default 3s
	envReap        = "SPOOL_PGCRASH_REAP_INTERVAL" // worker: default 200ms
	envMaxWork     = "SPOOL_PGCRASH_MAX_WORK"      // worker: longest handler "work"; default 5ms
	envJobs        = "SPOOL_PGCRASH_JOBS"          // producer: jobs to enqueue; required
	envRate        = "SPOOL_PGCRASH_RATE"          // producer: jobs/s; default 1000
	envBatch       = "SPOOL_PGCRASH_BATCH"         // producer: jobs per enqueue; default 100
	envRecords     = "SPOOL_PGCRASH_RECORDS"       // publisher, subscriber: the run's shared records; required
	envSeed        = "SPOOL_PGCRASH_SEED"          // publisher: what it publishes; default 0
)

// The events workload's application tables, in the store's schema.
const (
	ordersTable  = "app_orders"
	effectsTable = "app_effects"
)

// stats is what a worker prints on stdout after a graceful stop.
type stats struct {
	Settled     int64 `json:"settled"`
	Refused     int64 `json:"refused"`
	LockLost    int64 `json:"lock_lost"`
	Abandoned   int64 `json:"abandoned"`
	FlushErrors int64 `json:"flush_errors"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pgcrash child:", err)
		os.Exit(1)
	}
}

func run() error {
	for _, name := range []string{envRole, envURL, envSchema, envLog, envID} {
		if os.Getenv(name) == "" {
			return fmt.Errorf("%s is required", name)
		}
	}
	logFile, err := os.OpenFile(os.Getenv(envLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	id := os.Getenv(envID)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("proc", id)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := postgres.Open(openCtx, os.Getenv(envURL), postgres.Config{Schema: os.Getenv(envSchema), Logger: logger, SkipMigrate: true})
	if err != nil {
		return err
	}
	defer st.Close()

	switch role := os.Getenv(envRole); role {
	case "worker":
		return work(ctx, st, id, logger, logFile)
	case "producer":
		return produce(ctx, st, logger, logFile)
	case "publisher", "subscriber":
		return events(ctx, st, role, id, logger)
	default:
		return fmt.Errorf("%s=%q: want worker, producer, publisher or subscriber", envRole, role)
	}
}

// events runs a publisher or a subscriber of the events workload.
func events(ctx context.Context, st *postgres.Store, role, id string, logger *slog.Logger) error {
	if os.Getenv(envRecords) == "" {
		return fmt.Errorf("%s is required", envRecords)
	}
	records, err := eventcrash.OpenLog(os.Getenv(envRecords))
	if err != nil {
		return err
	}
	defer records.Close()
	db, err := sql.Open("pgx", os.Getenv(envURL))
	if err != nil {
		return err
	}
	defer db.Close()
	schema := os.Getenv(envSchema)
	tables := eventcrash.SQL{DB: db, Orders: schema + "." + ordersTable, Effects: schema + "." + effectsTable, Dollar: true}
	if role == "publisher" {
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
		p := &eventcrash.Publisher{Client: c, SQL: tables, Log: records, Proc: id, Seed: uint64(seed), Rate: rate}
		fmt.Println("ready")
		return p.Run(ctx)
	}
	conc, err := childenv.Int(envConcurrency, 8)
	if err != nil {
		return err
	}
	prefetch, err := childenv.Int(envPrefetch, 2)
	if err != nil {
		return err
	}
	reap, err := childenv.Duration(envReap, 200*time.Millisecond)
	if err != nil {
		return err
	}
	// The poll interval is short because an ordered key's next delivery
	// becomes claimable when the one before completes, and no notification
	// says so: a worker finds it at its next poll.
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
	s := &eventcrash.Subscriber{Log: records, Proc: id, SQL: tables}
	s.Register(w, &spool.SubscribeOptions{Concurrency: conc, Prefetch: prefetch})
	return runWorker(ctx, w)
}

func work(ctx context.Context, st *postgres.Store, id string, logger *slog.Logger, logFile *os.File) error {
	conc, err := childenv.Int(envConcurrency, 16)
	if err != nil {
		return err
	}
	prefetch, err := childenv.Int(envPrefetch, 4)
	if err != nil {
		return err
	}
	lock, err := childenv.Duration(envLock, 3*time.Second)
	if err != nil {
		return err
	}
	reap, err := childenv.Duration(envReap, 200*time.Millisecond)
	if err != nil {
		return err
	}
	maxWork, err := childenv.Duration(envMaxWork, 5*time.Millisecond)
	if err != nil {
		return err
	}
	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:        st,
		ID:           id,
		Logger:       logger,
		LockDuration: lock,
		PollInterval: 200 * time.Millisecond,
		Queues:       map[string]spool.QueueConfig{store.DefaultQueue: {Concurrency: conc, Prefetch: prefetch}},
		Maintenance:  spool.MaintenanceConfig{ReapInterval: reap},
	})
	if err != nil {
		return err
	}
	record := func(tag string, job *spool.Job) error {
		// One write of the whole line: O_APPEND places it atomically after
		// every earlier line.
		_, err := logFile.WriteString(tag + " " + job.ID.String() + " " + strconv.Itoa(job.Deliveries) + "\n")
		return err
	}
	spool.HandleRaw(w, "work", func(ctx context.Context, job *spool.Job) ([]byte, error) {
		if err := record("S", job); err != nil {
			return nil, err
		}
		if d := rand.N(maxWork + 1); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, context.Cause(ctx)
			}
		}
		if err := record("E", job); err != nil {
			return nil, fmt.Errorf("record execution: %w", err)
		}
		return nil, nil
	}, nil)
	return runWorker(ctx, w)
}

// runWorker starts w, says "ready", and on the end of ctx stops it and
// prints its settler's counters.
func runWorker(ctx context.Context, w *spool.Worker) error {
	if err := w.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	stopErr := w.Stop(stopCtx)
	s := w.Stats().Settle
	b, err := json.Marshal(stats{Settled: s.Settled, Refused: s.Refused, LockLost: s.LockLost, Abandoned: s.Abandoned, FlushErrors: s.FlushErrors})
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return stopErr
}

func produce(ctx context.Context, st *postgres.Store, logger *slog.Logger, logFile *os.File) error {
	jobs, err := childenv.Int(envJobs, 0)
	if err != nil || jobs <= 0 {
		return fmt.Errorf("%s must be a positive number (%w)", envJobs, err)
	}
	rate, err := childenv.Int(envRate, 1000)
	if err != nil {
		return err
	}
	batch, err := childenv.Int(envBatch, 100)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	start := time.Now()
	for done := 0; done < jobs; {
		n := min(batch, jobs-done)
		ps := make([]store.EnqueueParams, n)
		for i := range ps {
			ps[i] = store.EnqueueParams{ID: store.NewID(), Kind: "work", MaxDeliveries: 1000}
		}
		if err := enqueue(ctx, st, logger, ps); err != nil {
			return err
		}
		var b strings.Builder
		for _, p := range ps {
			b.WriteString("P " + p.ID.String() + "\n")
		}
		if _, err := logFile.WriteString(b.String()); err != nil {
			return err
		}
		done += n
		// Pace to the rate: batch k is due at k*batch/rate after the start.
		if wait := time.Until(start.Add(time.Duration(float64(done) / float64(rate) * float64(time.Second)))); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	logger.Info("producer: all jobs enqueued", "jobs", jobs, "seconds", time.Since(start).Seconds())
	return nil
}

// enqueue enqueues one batch, retrying with backoff until it commits. A
// retry refused because the batch's IDs are taken means an earlier attempt
// committed although its caller saw an error (the connection dropped after
// the commit): the batch is in, once.
func enqueue(ctx context.Context, st *postgres.Store, logger *slog.Logger, ps []store.EnqueueParams) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := st.Enqueue(ctx, ps)
		if err == nil {
			if attempt > 1 {
				logger.Info("producer: enqueue recovered", "attempt", attempt, "jobs", len(ps))
			}
			return nil
		}
		var ve *store.ValidationError
		if attempt > 1 && errors.As(err, &ve) && ve.Field == "id" {
			logger.Info("producer: an earlier attempt had committed the batch", "attempt", attempt, "jobs", len(ps))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logger.Warn("producer: enqueue failed; retrying", "attempt", attempt, "jobs", len(ps), "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
