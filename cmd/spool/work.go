package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

const workLong = `Work claims jobs from the given queues and runs COMMAND once per job, any
kind, up to --concurrency at a time per queue:

  stdin        the job's payload
  environment  the parent's, plus SPOOL_JOB_ID, SPOOL_JOB_KIND, SPOOL_JOB_QUEUE,
               SPOOL_JOB_TENANT and SPOOL_JOB_ATTEMPT (1 on the first run); and
               TRACEPARENT (TRACESTATE) when the producer stored a W3C trace
               context with the job, for the command's tracing to continue
  exit 0       completes the job; stdout (up to --max-output bytes) becomes its
               result: as is when it is JSON, else as a JSON string
  exit non-0   fails the attempt; the exit status and the last 2 KiB of stderr
               are recorded in the job's error history. The job is retried with
               exponential backoff until its max attempts, then dead-lettered.

The worker heartbeats while it runs: spool workers lists it.

A command that runs past --timeout is killed with its whole process group,
and the attempt fails. Locks are renewed while commands run, so --lock only
bounds how soon the jobs of a crashed worker run elsewhere.

With --subscription TOPIC/NAME (repeatable; split at its last "/") it works
subscriptions too: it runs COMMAND once per event delivered to each, up to
--concurrency at a time per subscription, killed past --timeout as for jobs.
With --subscription and no --queue it works the subscriptions only; give
--queue as well to work both. Each subscription must exist (spool
subscriptions add); one that does not exits 1. For an event:

  stdin        the event's payload (events whose payload is not JSON are
               dead-lettered: spool publish only takes JSON)
  environment  the parent's, plus SPOOL_TOPIC, SPOOL_SUBSCRIPTION (TOPIC/NAME),
               SPOOL_EVENT_ID, SPOOL_EVENT_KIND, SPOOL_EVENT_POSITION,
               SPOOL_ORDERING_KEY and SPOOL_EVENT_VERSION (the event's key and
               its version in the key's stream; empty without a key),
               SPOOL_EVENT_TENANT, SPOOL_EVENT_HEADERS (a JSON object),
               SPOOL_EVENT_PUBLISHED_AT, SPOOL_DELIVERY_ID (the delivery's job
               ID) and SPOOL_ATTEMPT (1 on the first run)
  exit 0       acknowledges the event; stdout is discarded
  exit non-0   fails the attempt, recorded as for a job; the delivery is
               retried per the subscription's backoff (--retry-base,
               --retry-max) until its max attempts, then dead-lettered in its
               queue, sub/TOPIC/NAME (spool dlq list --queue sub/TOPIC/NAME).
The subscription's lock duration is its own (--lock-for of subscriptions add);
--lock applies to queues.

With --metrics-addr HOST:PORT it serves GET /metrics (Prometheus), /livez
and /readyz there, without keys: bind it where only the scraper and the
probes reach it (docs/operations.md). SIGINT or SIGTERM makes /readyz fail
first, before the drain.

SIGINT or SIGTERM stops claiming and lets running commands finish for up to
--shutdown-timeout; commands still running then are killed and their jobs
released (no attempt spent), and spool exits 0. A second signal kills the
commands and exits 130 at once; their jobs run again when their locks expire.

Logs go to stderr (JSON lines with --json); --log-level debug logs every job.`

const workExample = `  spool work --queue mail -- ./send-mail.sh
  spool work --queue images --concurrency 4 --timeout 5m -- python3 resize.py
  spool work -q mail -q reports -- sh -c 'jq -r .to | xargs ./notify'
  spool work --subscription orders/mail -- ./mail-on-order.sh
  spool work --subscription orders/mail --subscription orders/audit --queue default -- ./handle.sh`

type workFlags struct {
	queues          []string
	subscriptions   []string
	concurrency     int
	lock            time.Duration
	timeout         time.Duration
	maxOutput       int
	shutdownTimeout time.Duration
	poll            time.Duration
	metricsAddr     string
	gaugeInterval   time.Duration
}

func (a *app) workCmd() *cobra.Command {
	var f workFlags
	cmd := &cobra.Command{
		Use:     "work [flags] -- COMMAND [ARGS...]",
		Short:   "Run a command once per job or event, as a worker for queues and subscriptions",
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
	fl.StringSliceVar(&f.subscriptions, "subscription", nil, "subscriptions to work, as TOPIC/NAME (repeat or separate with commas); alone, without --queue, only them")
	fl.IntVarP(&f.concurrency, "concurrency", "c", 10, "commands running at once, per queue and per subscription")
	fl.DurationVar(&f.lock, "lock", 30*time.Second, "lock duration of a claimed job (renewed while it runs)")
	fl.DurationVar(&f.timeout, "timeout", time.Minute, "kill a command that runs longer than this (0: no limit)")
	fl.IntVar(&f.maxOutput, "max-output", 64<<10, "bytes of stdout kept as the job's result, at most 1 MiB")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long running commands may finish")
	fl.DurationVar(&f.poll, "poll", time.Second, "how often idle queues look for jobs from other processes")
	fl.DurationVar(&f.gaugeInterval, "gauge-interval", 15*time.Second, "with --metrics-addr: how often the cluster gauges are computed, by the one node holding their lease")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics, /livez and /readyz on this host:port, without keys (port 0 picks a free one; default: off)")
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
	subs, err := parseSubscriptionRefs(f.subscriptions)
	errs = append(errs, err)
	log, err := a.logger()
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// With subscriptions and no --queue, no queue: an empty map, which the
	// Worker takes as "none" (nil would be the default queue).
	queues := make(map[string]spool.QueueConfig, len(f.queues))
	if len(subs) == 0 || cmd.Flags().Changed("queue") {
		for _, q := range f.queues {
			queues[q] = spool.QueueConfig{Concurrency: f.concurrency}
		}
	}
	ctx := cmd.Context()
	timeout := f.timeout
	if timeout == 0 {
		timeout = -1 // the Worker's "no timeout"
	}
	if f.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			return usagef("--metrics-addr %q: %v", f.metricsAddr, err)
		}
	}
	st, err := openStore(ctx, a.storeURL(cmd), store.OpenOptions{Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	var metrics *spool.Metrics
	if f.metricsAddr != "" {
		if metrics, err = spool.NewMetrics(spool.MetricsConfig{GaugeInterval: f.gaugeInterval}); err != nil {
			return usagef("--gauge-interval: %v", err)
		}
	}
	tp, stopTracing, err := otlpTracing(ctx, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	w, err := spool.NewWorker(spool.WorkerConfig{
		TracerProvider:  tp,
		Metrics:         metrics,
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
	names := make([]string, 0, len(subs))
	for _, s := range subs {
		spool.Subscribe(w, s.topic, s.name, runner.runEvent, &spool.SubscribeOptions{Concurrency: f.concurrency})
		names = append(names, s.topic+"/"+s.name)
	}

	if err := w.Start(ctx); err != nil {
		return err
	}
	var health *spool.Health
	if metrics != nil {
		if health, err = spool.NewHealth(spool.HealthConfig{Store: st, Workers: []*spool.Worker{w}}); err != nil {
			return errors.Join(err, w.Stop(context.WithoutCancel(ctx)))
		}
		ops, err := startOps(ctx, f.metricsAddr, metricsRegistry(metrics), health, log)
		if err != nil {
			return errors.Join(err, w.Stop(context.WithoutCancel(ctx)))
		}
		if a.jsonOut {
			a.printJSON(map[string]string{"metrics_url": "http://" + ops.addr() + "/metrics"})
		}
		defer func() {
			if err := ops.stop(); err != nil {
				log.Warn("stopping the metrics server", "err", err)
			}
		}()
	}
	attrs := []any{"queues", slices.Sorted(maps.Keys(queues))}
	if len(subs) > 0 {
		attrs = append(attrs, "subscriptions", names)
	}
	log.Info("working", append(attrs, "concurrency", f.concurrency, "command", argv, "store", displayURL(a.storeURL(cmd)))...)
	<-ctx.Done()
	if health != nil {
		health.Drain() // readiness fails before the drain begins
	}
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

// subscriptionRef names a subscription given as TOPIC/NAME.
type subscriptionRef struct{ topic, name string }

// parseSubscriptionRefs reads --subscription values, TOPIC/NAME each, split
// at the last "/" (a topic may hold "/", a name given this way may not),
// leaving out repeats.
func parseSubscriptionRefs(refs []string) ([]subscriptionRef, error) {
	var out []subscriptionRef
	seen := map[subscriptionRef]bool{}
	for _, r := range refs {
		i := strings.LastIndexByte(r, '/')
		if i <= 0 || i == len(r)-1 {
			return nil, usagef("--subscription %q: want TOPIC/NAME", r)
		}
		ref := subscriptionRef{topic: r[:i], name: r[i+1:]}
		if err := store.ValidSubscriptionRef(ref.topic, ref.name); err != nil {
			return nil, err
		}
		if !seen[ref] {
			seen[ref] = true
			out = append(out, ref)
		}
	}
	return out, nil
}
