package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

const demoLong = `Demo runs a mixed workload end to end and shows what Spool does with it.

It enqueues --jobs jobs of five kinds across four queues and works them with an
in-process worker, showing live progress:

  mail.send       fast jobs that complete                      (queue demo.mail)
  image.resize    slow jobs, 20–120ms each                     (queue demo.media)
  report.build    jobs that return a result                    (queue demo.reports)
  webhook.deliver flaky: fails twice, then succeeds on retry   (queue demo.webhooks)
  partner.sync    broken: always fails; dead-lettered after 3  (queue demo.webhooks)
                  attempts

Failed attempts retry after 10–100ms (production retries back off from 1s to
1h). When every job has finished, demo prints each queue's counts, a sample
result and the dead letters with their last error.

Unless --store is given on the command line, demo runs on a fresh temporary
SQLite file that it deletes afterwards ($SPOOL_STORE is ignored). Give --store
to keep the jobs and explore them with spool stats, spool jobs and spool dlq.
On PostgreSQL the demo's jobs go to the schema spool_demo (unless the URL names
one with ?schema=NAME), never to the default schema where real jobs live.`

const demoExample = `  spool demo
  spool demo --jobs 10000
  spool demo --store sqlite:demo.db && spool dlq list --store sqlite:demo.db`

// demoKind is one kind of job in the demo's workload.
type demoKind struct {
	name    string
	queue   string
	percent int // share of the jobs
	opts    spool.EnqueueOptions
	handler func(ctx context.Context, job *spool.Job) ([]byte, error)
}

// demoRetry retries the demo's failures quickly, so it finishes in seconds.
var demoRetry = spool.Backoff{Base: 10 * time.Millisecond, Max: 100 * time.Millisecond}

func demoKinds() []demoKind {
	return []demoKind{
		{name: "partner.sync", queue: "demo.webhooks", percent: 1, opts: spool.EnqueueOptions{MaxAttempts: 3},
			handler: func(context.Context, *spool.Job) ([]byte, error) {
				return nil, errors.New("partner API answered 503 Service Unavailable")
			}},
		{name: "image.resize", queue: "demo.media", percent: 5,
			handler: func(ctx context.Context, _ *spool.Job) ([]byte, error) {
				return nil, work(ctx, 20*time.Millisecond+rand.N(100*time.Millisecond))
			}},
		{name: "webhook.deliver", queue: "demo.webhooks", percent: 15,
			handler: func(ctx context.Context, job *spool.Job) ([]byte, error) {
				if job.Attempts < 2 {
					return nil, fmt.Errorf("POST https://hooks.example.com/orders: connection reset by peer (attempt %d)", job.Attempts+1)
				}
				return nil, work(ctx, time.Millisecond)
			}},
		{name: "report.build", queue: "demo.reports", percent: 20,
			handler: func(ctx context.Context, job *spool.Job) ([]byte, error) {
				rows := 100 + rand.IntN(900)
				if err := work(ctx, 2*time.Millisecond); err != nil {
					return nil, err
				}
				return fmt.Appendf(nil, `{"rows":%d,"total_cents":%d,"built_by":"attempt %d"}`, rows, rows*1999, job.Attempts+1), nil
			}},
		{name: "mail.send", queue: "demo.mail", percent: 59,
			handler: func(ctx context.Context, _ *spool.Job) ([]byte, error) {
				return nil, work(ctx, rand.N(2*time.Millisecond))
			}},
	}
}

// demoQueues are the demo's queues and how many jobs each runs at once.
var demoQueues = map[string]spool.QueueConfig{
	"demo.mail":     {Concurrency: 20},
	"demo.media":    {Concurrency: 20},
	"demo.reports":  {Concurrency: 10},
	"demo.webhooks": {Concurrency: 20},
}

// work stands in for a handler's real work: it takes d, or until ctx ends.
func work(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (a *app) demoCmd() *cobra.Command {
	var jobs int
	cmd := &cobra.Command{
		Use:     "demo [--jobs N]",
		Short:   "Run a mixed workload end to end on a throwaway database",
		Long:    demoLong,
		Example: demoExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobs < 1 || jobs > 1_000_000 {
				return usagef("--jobs must be 1..1000000, not %d", jobs)
			}
			return a.demo(cmd, jobs)
		},
	}
	cmd.Flags().IntVarP(&jobs, "jobs", "n", 10000, "how many jobs to enqueue")
	return cmd
}

// demoDeadline bounds a demo run, so a stuck run fails instead of hanging.
const demoDeadline = 2 * time.Minute

func (a *app) demo(cmd *cobra.Command, n int) error {
	st, where, cleanup, err := a.scratchStore(cmd, "spool_demo", true)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, cancel := context.WithTimeoutCause(cmd.Context(), demoDeadline, fmt.Errorf("demo did not finish within %v", demoDeadline))
	defer cancel()
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		return err
	}
	kinds := demoKinds()

	// Enqueue the workload: job i gets the kind whose share covers i%100,
	// so every kind shows up even in a small run.
	start := time.Now()
	items := make([]spool.Item, 0, min(n, enqueueBatch))
	for i := 0; i < n; {
		items = items[:0]
		for ; len(items) < enqueueBatch && i < n; i++ {
			k := pickKind(kinds, i%100)
			opts := k.opts
			opts.Queue = k.queue
			items = append(items, spool.RawItem(k.name, fmt.Appendf(nil, `{"n":%d}`, i), &opts))
		}
		if _, err := client.EnqueueMany(ctx, items...); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	if !a.jsonOut {
		fmt.Fprintf(a.stderr, "demo: enqueued %d jobs on %s in %v; working them\n", n, where, time.Since(start).Round(time.Millisecond))
	}

	w, err := spool.NewWorker(spool.WorkerConfig{
		Store:        st,
		Queues:       demoQueues,
		PollInterval: 20 * time.Millisecond, // notice retries as soon as they come due
	})
	if err != nil {
		return err
	}
	for _, k := range kinds {
		spool.HandleRaw(w, k.name, k.handler, &spool.HandlerOptions{Retry: demoRetry})
	}
	workStart := time.Now()
	if err := w.Start(ctx); err != nil {
		return err
	}
	waitErr := a.demoWait(ctx, client, n)
	stopCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stopCancel()
	stopErr := w.Stop(stopCtx)
	elapsed := time.Since(workStart)
	if waitErr != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause // the demo's own deadline
		}
		return waitErr
	}
	if stopErr != nil {
		return fmt.Errorf("stop worker: %w", stopErr)
	}
	return a.demoSummary(ctx, client, n, elapsed, where, storeFlagGiven(cmd))
}

func pickKind(kinds []demoKind, slot int) demoKind {
	for _, k := range kinds {
		if slot < k.percent {
			return k
		}
		slot -= k.percent
	}
	return kinds[len(kinds)-1]
}

// demoCounts adds up the demo queues' jobs by state.
func demoCounts(ctx context.Context, client *spool.Client) (map[spool.State]int, []spool.QueueStats, error) {
	stats, err := client.Stats(ctx)
	if err != nil {
		return nil, nil, err
	}
	sum := map[spool.State]int{}
	var mine []spool.QueueStats
	for _, s := range stats {
		if _, ok := demoQueues[s.Queue]; !ok {
			continue
		}
		mine = append(mine, s)
		for st, c := range s.Counts {
			sum[st] += c
		}
	}
	return sum, mine, nil
}

func live(c map[spool.State]int) int {
	return c[spool.StateScheduled] + c[spool.StateAvailable] + c[spool.StateRunning]
}

// demoWait shows progress until no demo job is live: a progress bar on a
// terminal, a line a second otherwise (none with --json).
func (a *app) demoWait(ctx context.Context, client *spool.Client, n int) error {
	bar := a.newProgress(n, "demo")
	defer bar.Finish()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastLine := time.Now()
	for {
		counts, _, err := demoCounts(ctx, client)
		if err != nil {
			return err
		}
		left := live(counts)
		done := max(n-left, 0)
		bar.Describe(fmt.Sprintf("completed %d, retrying %d, dead %d",
			counts[spool.StateCompleted], counts[spool.StateScheduled], counts[spool.StateDead]))
		bar.Set(done)
		if left == 0 {
			return nil
		}
		if !a.stderrTTY && !a.jsonOut && time.Since(lastLine) >= time.Second {
			lastLine = time.Now()
			fmt.Fprintf(a.stderr, "demo: %d/%d finished (completed %d, dead %d; running %d, waiting to retry %d)\n",
				done, n, counts[spool.StateCompleted], counts[spool.StateDead], counts[spool.StateRunning], counts[spool.StateScheduled])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// demoSummary prints the queues' final counts, a sample result and the
// dead letters.
func (a *app) demoSummary(ctx context.Context, client *spool.Client, n int, elapsed time.Duration, where string, kept bool) error {
	_, stats, err := demoCounts(ctx, client)
	if err != nil {
		return err
	}
	deadPage, err := client.List(ctx, spool.ListParams{States: []spool.State{spool.StateDead}, Kind: "partner.sync", Limit: store.MaxListLimit})
	if err != nil {
		return err
	}
	reports, err := client.List(ctx, spool.ListParams{Kind: "report.build", States: []spool.State{spool.StateCompleted}, Limit: 1})
	if err != nil {
		return err
	}
	if a.jsonOut {
		out := map[string]any{
			"jobs":         n,
			"seconds":      elapsed.Seconds(),
			"jobs_per_sec": float64(n) / elapsed.Seconds(),
			"queues":       wire.QueueStatsOf(stats),
			"dead":         wire.JobsOf(deadPage.Jobs),
		}
		if len(reports.Jobs) > 0 {
			out["sample_result"] = wire.JobOf(reports.Jobs[0], false)
		}
		a.printJSON(out)
		return nil
	}
	w := a.stdout
	fmt.Fprintf(w, "Worked %d jobs in %.2fs (%.0f jobs/s) on %s.\n\n", n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), where)
	printStatsTable(w, stats)
	if len(reports.Jobs) > 0 {
		j := reports.Jobs[0]
		fmt.Fprintf(w, "\nA result (report.build job %s): %s\n", j.ID, bytesText(j.Result))
	}
	dead := deadPage.Jobs
	fmt.Fprintf(w, "\nDead letters: %d (partner.sync always fails; each was tried %d times)\n", len(dead), 3)
	const show = 10
	if len(dead) > 0 {
		printDeadTable(w, dead[:min(show, len(dead))], time.Now())
	}
	if len(dead) > show {
		fmt.Fprintf(w, "... and %d more\n", len(dead)-show)
	}
	if kept {
		fmt.Fprintf(w, "\nExplore: spool stats --store %s; spool dlq list --store %s; spool jobs get ID --store %s\n", where, where, where)
	} else {
		fmt.Fprintln(w, "\nThe demo's database was temporary; run spool demo --store sqlite:demo.db to keep it and explore it with spool stats, spool jobs and spool dlq.")
	}
	return nil
}
