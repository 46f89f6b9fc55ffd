package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/bench"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
)

const benchLong = `Bench measures throughput on a store with no-op jobs.

  burn-down   enqueue --jobs jobs, then work them with --workers running at once;
              reports jobs/s from worker start to the last durable completion.
  continuous  enqueue --rate jobs/s for --duration while a worker runs them;
              reports jobs/s and the enqueue→start latency (p50, p95, p99, max).
              The run starts with --warmup (1s) at the same rate, whose jobs
              are worked but not measured: connections open and statements
              are prepared first, as in a process that has been running.
  cross-process
              continuous, with the worker in a second spool process on the
              same store (as a web process and "spool work" would be); then
              the worker is left idle for --idle and its CPU use reported.
  events      publish --jobs events to a topic with --subscriptions subscriptions,
              then work them all (--workers running at once per subscription);
              reports each subscription's delivered events/s.
  events-continuous
              publish --rate events/s for --duration while the subscriptions
              are worked; reports publish→handler latency of every delivery
              (after --warmup, as continuous).
  replay      publish --jobs events, then create a subscription from the start
              and report how fast it catches up (events/s).
  enqueue     enqueue --jobs jobs in calls of --batch from --producers at once,
              with no worker; reports jobs/s and each call's latency.

With --through-server, bench serves the store with spool serve's HTTP API on
a loopback port, in this process, and measures through it: producers and
workers use the store as remote Go workers do (--store http://...).

With --trace, burn-down and continuous runs trace every job with
OpenTelemetry (send, process and settle spans, every span sampled and
exported in batches to an exporter that drops them): compare with a run
without it for the cost of tracing. Without --trace nothing is traced.

Unless --store is given on the command line, bench runs on a fresh temporary
SQLite file that it deletes afterwards ($SPOOL_STORE is ignored), so it never
touches your jobs. With --store postgres://..., it runs in a fresh schema
spool_bench_<random> that it drops afterwards, unless the URL names a schema
(?schema=NAME), which it then uses and leaves in place; jobs go to the queue
"bench". With --json it prints exactly one JSON object:
{"mode", "jobs", "workers", "seconds", "jobs_per_sec", "latency_ms": {"p50",
"p95", "p99", "max"}, ...}.`

const benchExample = `  spool bench
  spool bench --jobs 200000 --workers 200
  spool bench --mode continuous --rate 2000 --duration 30s --json
  spool bench --mode cross-process --rate 1000 --duration 30s --idle 30s
  spool bench --mode events --jobs 100000 --workers 100 --subscriptions 3
  spool bench --mode events-continuous --rate 1000 --duration 30s
  spool bench --mode replay --jobs 1000000
  spool bench --through-server --jobs 100000 --workers 100
  spool bench --trace --jobs 100000 --workers 100
  spool bench --through-server --mode enqueue --batch 100 --producers 16
  spool bench --store postgres://localhost/app --jobs 100000 --workers 100`

type benchFlags struct {
	mode     string
	jobs     int
	workers  int
	rate     int
	duration time.Duration
	warmup   time.Duration
	idle     time.Duration
	subs     int
	// through routes the run through spool serve's HTTP API.
	through   bool
	batch     int
	producers int
	// metrics turns Spool's Prometheus metrics on for the run.
	metrics bool
	// trace records every span of the run (burn-down, continuous).
	trace bool
	// cpuProfile names a file for a CPU profile of the whole run.
	cpuProfile string
}

func (a *app) benchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:     "bench [flags]",
		Short:   "Measure jobs/s and latency with no-op jobs on a throwaway database",
		Long:    benchLong,
		Example: benchExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.cpuProfile == "" {
				return a.bench(cmd, &f)
			}
			out, err := os.Create(f.cpuProfile)
			if err != nil {
				return err
			}
			defer out.Close()
			if err := pprof.StartCPUProfile(out); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
			return a.bench(cmd, &f)
		},
	}
	cmd.AddCommand(a.benchSchedulesCmd(), a.benchWorkerCmd())
	fl := cmd.Flags()
	fl.StringVarP(&f.mode, "mode", "m", "burn-down", "burn-down, continuous, cross-process, events, events-continuous, replay or enqueue")
	fl.IntVarP(&f.jobs, "jobs", "n", 100_000, "burn-down: how many jobs to enqueue and work; events, replay: how many events to publish")
	fl.IntVar(&f.subs, "subscriptions", 3, "events, events-continuous: subscriptions of the topic")
	fl.IntVarP(&f.workers, "workers", "w", 100, "jobs running at once")
	fl.IntVar(&f.rate, "rate", 1_000, "continuous, cross-process: jobs enqueued per second")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "continuous, cross-process: how long to enqueue")
	fl.DurationVar(&f.warmup, "warmup", time.Second, "continuous, events-continuous: how long to enqueue at --rate first, unmeasured (0: none)")
	fl.DurationVar(&f.idle, "idle", 30*time.Second, "cross-process: how long to measure the idle worker's CPU (0: not)")
	fl.BoolVar(&f.through, "through-server", false, "measure through spool serve's HTTP API (served in this process on loopback)")
	fl.IntVar(&f.batch, "batch", 100, "enqueue: jobs per call")
	fl.BoolVar(&f.metrics, "metrics", false, "burn-down, continuous, enqueue: count Prometheus metrics while measuring (their cost; scraped once at the end)")
	fl.IntVar(&f.producers, "producers", 16, "enqueue: calls in flight at once")
	fl.BoolVar(&f.trace, "trace", false, "burn-down, continuous: trace every job with OpenTelemetry (an SDK tracer provider sampling everything, batching spans to an exporter that drops them), to measure tracing's cost")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof reads it)")
	return cmd
}

// benchWarmup maps --warmup to bench.Config.Warmup, where zero is the
// default and none is negative.
func benchWarmup(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func (a *app) bench(cmd *cobra.Command, f *benchFlags) error {
	var run func(context.Context, bench.Config) (*bench.Result, error)
	total := f.jobs
	switch f.mode {
	case "events", "events-continuous", "replay":
		if f.metrics {
			return usagef("--metrics applies to burn-down, continuous and enqueue")
		}
		return a.benchEvents(cmd, f)
	case "burn-down", "burndown":
		run = bench.BurnDown
	case "continuous":
		run = bench.Continuous
		total = int(float64(f.rate) * (f.duration + f.warmup).Seconds())
	case "cross-process":
		total = int(float64(f.rate) * f.duration.Seconds())
		if f.through || f.metrics {
			return usagef("--through-server and --metrics do not apply to cross-process")
		}
	case "enqueue":
		run = func(ctx context.Context, cfg bench.Config) (*bench.Result, error) {
			return bench.Enqueue(ctx, cfg, f.batch, f.producers)
		}
	default:
		return usagef("unknown --mode %q: use burn-down, continuous, cross-process, events, events-continuous, replay or enqueue", f.mode)
	}
	if f.jobs < 1 || f.workers < 1 || f.rate < 1 || f.duration <= 0 || f.idle < 0 || f.warmup < 0 {
		return usagef("--jobs, --workers, --rate and --duration must be positive, --idle and --warmup not negative")
	}
	st, where, storeURL, cleanup, err := a.scratchStoreURL(cmd, "spool_bench", false)
	if err != nil {
		return err
	}
	defer cleanup()
	if run == nil {
		run = a.crossProcess(storeURL, total, f)
		where += ", worker in another process"
	}
	if f.through {
		remote, stopServer, err := serveForBench(cmd.Context(), st)
		if err != nil {
			return err
		}
		defer stopServer()
		st, where = remote, where+" through spool serve"
	}

	var metrics *spool.Metrics
	if f.metrics {
		if metrics, err = spool.NewMetrics(spool.MetricsConfig{}); err != nil {
			return err
		}
	}
	var tracer *benchTracer
	if f.trace {
		if f.mode != "burn-down" && f.mode != "burndown" && f.mode != "continuous" {
			return usagef("--trace applies to burn-down and continuous")
		}
		tracer = newBenchTracer()
		where += ", traced"
	}
	bar := a.newProgress(total, f.mode)
	defer bar.Finish()
	res, err := run(cmd.Context(), bench.Config{
		Store:          st,
		Jobs:           f.jobs,
		Workers:        f.workers,
		Rate:           f.rate,
		Duration:       f.duration,
		Warmup:         benchWarmup(f.warmup),
		Progress:       func(done, _ int) { bar.Set(done) },
		Metrics:        metrics,
		TracerProvider: tracer.provider(),
	})
	bar.Finish()
	if err != nil {
		return err
	}
	if metrics != nil {
		if _, err := metricsRegistry(metrics).Gather(); err != nil {
			return fmt.Errorf("gather metrics: %w", err)
		}
	}
	if tracer != nil {
		res.Spans = tracer.shutdown(cmd.Context())
	}
	if a.jsonOut {
		a.printJSON(res)
		return nil
	}
	w := a.stdout
	who := "workers"
	if res.Batch > 0 {
		who = "producers"
	}
	fmt.Fprintf(w, "%s on %s: %d jobs in %.2fs = %.0f jobs/s (%d %s)\n",
		res.Mode, where, res.Jobs, res.Seconds, res.JobsPerSec, res.Workers, who)
	if res.Batch > 0 {
		fmt.Fprintf(w, "  calls:         %d jobs each, %d at once; latency (ms) p50 %.2f  p95 %.2f  p99 %.2f  max %.2f\n",
			res.Batch, res.Workers, res.LatencyMS.P50, res.LatencyMS.P95, res.LatencyMS.P99, res.LatencyMS.Max)
	} else if l := res.LatencyMS; l != nil {
		fmt.Fprintf(w, "  latency (ms):  p50 %.2f  p95 %.2f  p99 %.2f  max %.2f  (enqueue to handler start)\n", l.P50, l.P95, l.P99, l.Max)
	}
	if res.EnqueueSeconds > 0 {
		fmt.Fprintf(w, "  enqueue:       %.2fs (%.0f jobs/s, batches of 1000)\n", res.EnqueueSeconds, float64(res.Jobs)/res.EnqueueSeconds)
	}
	if res.Rate > 0 {
		fmt.Fprintf(w, "  target rate:   %d jobs/s\n", res.Rate)
	}
	if res.SettleBatch > 0 {
		fmt.Fprintf(w, "  settle batch:  %.1f verdicts per commit on average\n", res.SettleBatch)
	}
	if res.Spans > 0 {
		fmt.Fprintf(w, "  traced:        %d spans exported (%.1f per job)\n", res.Spans, float64(res.Spans)/float64(res.Jobs))
	}
	if i := res.Idle; i != nil {
		fmt.Fprintf(w, "  idle worker:   %.2f%% of a core (%.3fs CPU in %.1fs)\n", i.CPUPercent, i.CPUSeconds, i.Seconds)
	}
	return nil
}

// scratchStore opens the store named by --store when it was given on the
// command line, else a fresh SQLite file in a new temporary directory that
// cleanup deletes. On PostgreSQL, unless the URL names a schema
// (?schema=NAME, then used and left in place), it never works in the
// default schema where real jobs live: with keep it uses the schema named
// prefix and leaves it for the user to explore, else a fresh schema
// prefix_<random> that cleanup drops. where describes the store for people.
func (a *app) scratchStore(cmd *cobra.Command, prefix string, keep bool) (st store.Store, where string, cleanup func(), err error) {
	st, where, _, cleanup, err = a.scratchStoreURL(cmd, prefix, keep)
	return st, where, cleanup, err
}

// scratchStoreURL is scratchStore that also returns the store's URL, for
// another process to open the same store.
func (a *app) scratchStoreURL(cmd *cobra.Command, prefix string, keep bool) (st store.Store, where, storeURL string, cleanup func(), err error) {
	ctx := cmd.Context()
	if storeFlagGiven(cmd) {
		b, err := store.Lookup(a.storeFlag)
		if err != nil {
			return nil, "", "", nil, err
		}
		if b.Namespaces != nil {
			return a.scratchNamespace(ctx, b.Namespaces, prefix, keep)
		}
		st, err := a.openOrCreate(cmd)
		if err != nil {
			return nil, "", "", nil, err
		}
		return st, displayURL(a.storeFlag), a.storeFlag, func() { st.Close() }, nil
	}
	dir, err := os.MkdirTemp("", strings.ReplaceAll(prefix, "_", "-")+"-*")
	if err != nil {
		return nil, "", "", nil, fmt.Errorf("make a temporary directory: %w", err)
	}
	path := filepath.Join(dir, "spool.db")
	st, err = openStore(ctx, "sqlite:"+path, store.OpenOptions{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", "", nil, err
	}
	return st, "a temporary SQLite file", "sqlite:" + path, func() {
		st.Close()
		os.RemoveAll(dir)
	}, nil
}

// scratchNamespace opens the store --store names in a namespace (a
// PostgreSQL schema) of its own, unless the URL names one, which is then
// used and left in place: with keep, the namespace named prefix, left for
// the user to explore; else a fresh one named prefix_<random> that cleanup
// drops.
func (a *app) scratchNamespace(ctx context.Context, ns *store.Namespaces, prefix string, keep bool) (store.Store, string, string, func(), error) {
	name := prefix
	if !keep {
		b := make([]byte, 6)
		rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
		name = prefix + "_" + hex.EncodeToString(b)
	}
	raw, fresh, err := ns.In(a.storeFlag, name)
	if err != nil {
		return nil, "", "", nil, err
	}
	st, err := openStore(ctx, raw, store.OpenOptions{})
	if err != nil {
		return nil, "", "", nil, err
	}
	if !fresh || keep {
		return st, displayURL(raw), raw, func() { st.Close() }, nil
	}
	drop := func() {
		st.Close()
		// The schema must go even when the run was interrupted.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := ns.Drop(dctx, raw); err != nil {
			fmt.Fprintf(a.stderr, "spool: could not drop the scratch schema %s: %v (drop it by hand)\n", name, err)
		}
	}
	return st, fmt.Sprintf("%s in a temporary schema %s", displayURL(a.storeFlag), name), raw, drop, nil
}

// benchEvents runs the events modes.
func (a *app) benchEvents(cmd *cobra.Command, f *benchFlags) error {
	if f.through {
		return usagef("--through-server measures jobs: the remote store does not carry events")
	}
	if f.jobs < 1 || f.workers < 1 || f.rate < 1 || f.duration <= 0 || f.subs < 1 || f.warmup < 0 {
		return usagef("--jobs, --workers, --rate, --duration and --subscriptions must be positive, --warmup not negative")
	}
	run, total := bench.EventsBurnDown, f.jobs*f.subs
	switch f.mode {
	case "events-continuous":
		run, total = bench.EventsContinuous, int(float64(f.rate)*(f.duration+f.warmup).Seconds())*f.subs
	case "replay":
		run, total = bench.Replay, f.jobs
	}
	st, where, _, cleanup, err := a.scratchStoreURL(cmd, "spool_bench", false)
	if err != nil {
		return err
	}
	defer cleanup()
	bar := a.newProgress(total, f.mode)
	defer bar.Finish()
	res, err := run(cmd.Context(), bench.EventsConfig{
		Store: st, Events: f.jobs, Subscriptions: f.subs, Workers: f.workers, Rate: f.rate, Duration: f.duration,
		Warmup:   benchWarmup(f.warmup),
		Progress: func(done, _ int) { bar.Set(done) },
	})
	bar.Finish()
	if err != nil {
		return err
	}
	if a.jsonOut {
		a.printJSON(res)
		return nil
	}
	w := a.stdout
	fmt.Fprintf(w, "%s on %s: %d events, %d subscription(s), %d workers each: all delivered in %.2fs\n",
		res.Mode, where, res.Events, res.Subscriptions, res.Workers, res.Seconds)
	fmt.Fprintf(w, "  delivered:     %.0f events/s per subscription (slowest), %.0f (mean)\n", res.Slowest, res.Mean)
	if res.PublishPerSec > 0 {
		fmt.Fprintf(w, "  publish:       %.2fs (%.0f events/s, batches of 1000)\n", res.PublishSecond, res.PublishPerSec)
	}
	if l := res.LatencyMS; l != nil {
		fmt.Fprintf(w, "  latency (ms):  p50 %.2f  p95 %.2f  p99 %.2f  max %.2f  (publish to handler start, every delivery)\n", l.P50, l.P95, l.P99, l.Max)
	}
	return nil
}

// serveForBench serves st with spool serve's API on a loopback port and
// returns a remote store on it, as a Go worker attached with --store
// http://... has, and the function that stops both.
func serveForBench(ctx context.Context, st store.Store) (store.Store, func(), error) {
	srv, err := server.New(server.Config{Store: st, Insecure: true})
	if err != nil {
		return nil, nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	stopServer := func() {
		srv.Drain()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		<-served
	}
	remote, err := store.Open(ctx, "http://"+ln.Addr().String(), store.OpenOptions{})
	if err != nil {
		stopServer()
		return nil, nil, err
	}
	return remote, func() {
		remote.Close()
		stopServer()
	}, nil
}
