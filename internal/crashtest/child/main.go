// Command child is the worker process of the crash test in package
// crashtest: the test builds it, runs it against a SQLite file and kills it
// with SIGKILL at random moments. It is not meant to be run by hand.
//
// The child works the "default" queue with a spool.Worker. Its handler for
// kind "work" waits a random moment (the job's "work", honouring its
// context), then appends the job's ID and a newline to the executions log in
// one write(2) on a file opened with O_APPEND, and only then returns nil. A
// line in the log is therefore written before the job's completion can
// reach the store, and it survives SIGKILL: the kernel keeps what write
// returned for. (Power loss would also need an fsync; the crash test kills
// processes, not machines.)
//
// Configuration comes from the environment (see the env* constants). The
// child prints "ready" on stdout once its worker runs, and on SIGTERM or
// SIGINT stops the worker gracefully and exits 0.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/childenv"
	"github.com/spoolrun/spool/store/sqlite"
)

// The environment the child reads. Durations are in Go syntax ("1s").
const (
	envDB           = "SPOOL_CRASH_DB"            // SQLite file; required
	envExecLog      = "SPOOL_CRASH_EXEC_LOG"      // executions log; required
	envConcurrency  = "SPOOL_CRASH_CONCURRENCY"   // default 16
	envPrefetch     = "SPOOL_CRASH_PREFETCH"      // default 4
	envLock         = "SPOOL_CRASH_LOCK"          // lock duration; default 1s
	envReap         = "SPOOL_CRASH_REAP_INTERVAL" // default 100ms
	envMaxWork      = "SPOOL_CRASH_MAX_WORK"      // longest handler "work"; default 10ms
	envWorkerID     = "SPOOL_CRASH_WORKER_ID"     // default "crash-child"
	defaultWorkerID = "crash-child"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(1)
	}
}

func run() error {
	dbPath, logPath := os.Getenv(envDB), os.Getenv(envExecLog)
	if dbPath == "" || logPath == "" {
		return fmt.Errorf("%s and %s are required", envDB, envExecLog)
	}
	conc, err := childenv.Int(envConcurrency, 16)
	if err != nil {
		return err
	}
	prefetch, err := childenv.Int(envPrefetch, 4)
	if err != nil {
		return err
	}
	lock, err := childenv.Duration(envLock, time.Second)
	if err != nil {
		return err
	}
	reap, err := childenv.Duration(envReap, 100*time.Millisecond)
	if err != nil {
		return err
	}
	maxWork, err := childenv.Duration(envMaxWork, 10*time.Millisecond)
	if err != nil {
		return err
	}
	id := os.Getenv(envWorkerID)
	if id == "" {
		id = defaultWorkerID
	}

	execLog, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer execLog.Close()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("worker", id)
	st, err := sqlite.Open(dbPath, sqlite.Config{Logger: logger})
	if err != nil {
		return err
	}
	defer st.Close()

	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:        st,
		ID:           id,
		Logger:       logger,
		LockDuration: lock,
		PollInterval: 50 * time.Millisecond,
		Queues:       map[string]spool.QueueConfig{"default": {Concurrency: conc, Prefetch: prefetch}},
		Maintenance:  spool.MaintenanceConfig{ReapInterval: reap},
	})
	if err != nil {
		return err
	}
	spool.HandleRaw(w, "work", func(ctx context.Context, job *spool.Job) ([]byte, error) {
		if d := rand.N(maxWork + 1); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, context.Cause(ctx)
			}
		}
		// One write of the whole line: O_APPEND places it atomically after
		// every earlier line.
		if _, err := execLog.Write([]byte(job.ID.String() + "\n")); err != nil {
			return nil, fmt.Errorf("record execution: %w", err)
		}
		return nil, nil
	}, nil)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := w.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return w.Stop(stopCtx)
}
