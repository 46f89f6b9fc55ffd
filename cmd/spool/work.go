package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

const workLong = `Work claims jobs from the given queues and runs COMMAND once per job, any
kind, up to --concurrency at a time per queue:

  stdin        the job's payload
  environment  the parent's, plus SPOOL_JOB_ID, SPOOL_JOB_KIND, SPOOL_JOB_QUEUE,
               SPOOL_JOB_TENANT and SPOOL_JOB_ATTEMPT (1 on the first run)
  exit 0       completes the job; stdout (up to --max-output bytes) becomes its
               result: as is when it is JSON, else as a JSON string
  exit non-0   fails the attempt; the exit status and the last 2 KiB of stderr
               are recorded in the job's error history. The job is retried with
               exponential backoff until its max attempts, then dead-lettered.

A command that runs past --timeout is killed with its whole process group,
and the attempt fails. Locks are renewed while commands run, so --lock only
bounds how soon the jobs of a crashed worker run elsewhere.

SIGINT or SIGTERM stops claiming and lets running commands finish for up to
--shutdown-timeout; commands still running then are killed and their jobs
released (no attempt spent), and spool exits 0. A second signal kills the
commands and exits 130 at once; their jobs run again when their locks expire.

Logs go to stderr (JSON lines with --json); --log-level debug logs every job.`

const workExample = `  spool work --queue mail -- ./send-mail.sh
  spool work --queue images --concurrency 4 --timeout 5m -- python3 resize.py
  spool work -q mail -q reports -- sh -c 'jq -r .to | xargs ./notify'`

type workFlags struct {
	queues          []string
	concurrency     int
	lock            time.Duration
	timeout         time.Duration
	maxOutput       int
	shutdownTimeout time.Duration
	poll            time.Duration
}

func (a *app) workCmd() *cobra.Command {
	var f workFlags
	cmd := &cobra.Command{
		Use:     "work [flags] -- COMMAND [ARGS...]",
		Short:   "Run a command once per job, as a worker for one or more queues",
		Long:    workLong,
		Example: workExample,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.work(cmd, &f, args)
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false) // everything from COMMAND on belongs to COMMAND
	fl.StringSliceVarP(&f.queues, "queue", "q", []string{store.DefaultQueue}, "queues to work (repeat or separate with commas)")
	fl.IntVarP(&f.concurrency, "concurrency", "c", 10, "commands running at once, per queue")
	fl.DurationVar(&f.lock, "lock", 30*time.Second, "lock duration of a claimed job (renewed while it runs)")
	fl.DurationVar(&f.timeout, "timeout", time.Minute, "kill a command that runs longer than this (0: no limit)")
	fl.IntVar(&f.maxOutput, "max-output", 64<<10, "bytes of stdout kept as the job's result, at most 1 MiB")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long running commands may finish")
	fl.DurationVar(&f.poll, "poll", time.Second, "how often idle queues look for jobs from other processes")
	return cmd
}

func (a *app) work(cmd *cobra.Command, f *workFlags, argv []string) error {
	var errs []error
	if f.concurrency < 1 || f.concurrency > store.MaxClaim {
		errs = append(errs, usagef("--concurrency must be 1..%d, not %d", store.MaxClaim, f.concurrency))
	}
	if f.maxOutput < 0 || f.maxOutput > store.MaxResultBytes {
		errs = append(errs, usagef("--max-output must be 0..%d bytes, not %d", store.MaxResultBytes, f.maxOutput))
	}
	if f.timeout < 0 || f.shutdownTimeout < 0 || f.poll <= 0 {
		errs = append(errs, usagef("--timeout and --shutdown-timeout must not be negative, and --poll must be positive"))
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		errs = append(errs, usagef("cannot run %q: %v", argv[0], err))
	}
	log, err := a.logger()
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return err
	}

	queues := make(map[string]spool.QueueConfig, len(f.queues))
	for _, q := range f.queues {
		queues[q] = spool.QueueConfig{Concurrency: f.concurrency}
	}
	ctx := cmd.Context()
	timeout := f.timeout
	if timeout == 0 {
		timeout = -1 // the Worker's "no timeout"
	}
	st, err := openStore(ctx, a.storeURL(cmd), store.OpenOptions{Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:           st,
		Queues:          queues,
		LockDuration:    f.lock,
		JobTimeout:      timeout,
		PollInterval:    f.poll,
		ShutdownTimeout: f.shutdownTimeout,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	runner := &commandRunner{argv: argv, maxOutput: f.maxOutput, procs: a.procs, log: log}
	spool.HandleAll(w, runner.run, nil)

	if err := w.Start(ctx); err != nil {
		return err
	}
	log.Info("working", "queues", f.queues, "concurrency", f.concurrency, "command", argv, "store", displayURL(a.storeURL(cmd)))
	<-ctx.Done()
	log.Info("shutting down: no new jobs; waiting for running commands (signal again to kill them)",
		"timeout", f.shutdownTimeout)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop worker: %w", err)
	}
	log.Info("stopped")
	return nil
}
