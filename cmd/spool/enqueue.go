package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// enqueueBatch is how many jobs one EnqueueMany call writes for --count.
const enqueueBatch = 1000

const enqueueLong = `Enqueue adds a job, or --count copies of it, and prints the new job's ID.
When it returns, the jobs are durable.

The payload must be valid JSON (at most 1 MiB); give it inline or as "-" to
read it from stdin. Without --payload the job has none.

With --unique-key, while a live job (scheduled, available or running) of the
same tenant holds the key, no job is added: the live job's ID is printed
instead, and "duplicate" is true in the --json output. --unique-for makes the
new job keep holding the key for that long after its creation, even once it
has finished: an enqueue of the key within the window prints the finished
job's ID (and with --wait, its result at once). Read a job back by its key
with spool jobs get --unique-key.

Output: the job's ID, or for --count N > 1 a one-line summary. With --json:
{"id": ..., "duplicate": ..., "state": ...} for one job, or
{"enqueued": N, "duplicates": D, "first_id": ..., "last_id": ...}.

With --wait (one job only: not with --count) it then waits for the job to
finish, request and reply, and prints its result instead of its ID: the
result as the worker stored it (JSON; nothing when it has none), or with
--json the job (as spool jobs get --json prints it). It exits 0 when the job
completed, and 1 when it was cancelled or dead-lettered, printing its last
error (with --json, the job). --timeout bounds the wait: when it passes, the
command exits 1 with the error code "timeout", and the job stays queued
(cancel it with spool jobs cancel if the reply is no longer wanted). With
--unique-key, a duplicate waits for the job that holds the key.`

const enqueueExample = `  spool enqueue --queue mail --kind welcome --payload '{"to":"ada@example.com"}'
  echo '{"report":"daily"}' | spool enqueue --kind report --payload - --delay 1h
  spool enqueue --kind ping --count 100000 --priority -10
  spool enqueue --kind sync --payload '{"tenant":42}' --unique-key sync-42 --json
  spool enqueue --kind quote --payload '{"sku":"a1"}' --unique-key quote-a1 --unique-for 5m --wait
  spool enqueue --queue quotes --kind quote --payload '{"sku":"a1"}' --wait --timeout 30s | jq .price`

type enqueueFlags struct {
	queue       string
	kind        string
	payload     string
	count       int
	uniqueKey   string
	uniqueFor   time.Duration
	delay       time.Duration
	priority    int
	tenant      string
	orderingKey string
	maxAttempts int
	wait        bool
	timeout     time.Duration
	metadata    []string
}

func (a *app) enqueueCmd() *cobra.Command {
	var f enqueueFlags
	cmd := &cobra.Command{
		Use:     "enqueue --kind KIND [flags]",
		Short:   "Add a job (or many copies of one) to a queue",
		Long:    enqueueLong,
		Example: enqueueExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.enqueue(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.queue, "queue", "q", store.DefaultQueue, "queue to add the job to")
	fl.StringVarP(&f.kind, "kind", "k", "", "the job's kind: letters, digits and . _ : / - (required)")
	fl.StringVarP(&f.payload, "payload", "p", "", `JSON payload, or "-" to read it from stdin`)
	fl.IntVarP(&f.count, "count", "n", 1, "how many copies of the job to add")
	fl.StringVar(&f.uniqueKey, "unique-key", "", "add nothing while a live job of the tenant holds this key")
	fl.DurationVar(&f.uniqueFor, "unique-for", 0, "with --unique-key: the job holds the key this long after its creation, even once finished (such as 5m; at most 720h)")
	fl.DurationVar(&f.delay, "delay", 0, "run no earlier than this long from now, such as 30s or 2h")
	fl.IntVar(&f.priority, "priority", 0, "lower runs first, -100..100")
	fl.StringVar(&f.tenant, "tenant", "", "tenant the job belongs to")
	fl.StringVar(&f.orderingKey, "ordering-key", "", "jobs sharing this key run one at a time, in enqueue order")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, "failed attempts before the job is dead-lettered (default 25)")
	fl.StringArrayVar(&f.metadata, "meta", nil, "metadata NAME=VALUE kept with the job and handed to its handler (repeatable), such as a W3C traceparent")
	fl.BoolVar(&f.wait, "wait", false, "wait for the job to finish and print its result; exit 1 if it is cancelled or dead")
	fl.DurationVar(&f.timeout, "timeout", 0, "with --wait: give up waiting after this long, exit 1 (code timeout); 0: no limit")
	_ = cmd.MarkFlagRequired("kind")
	return cmd
}

func (a *app) enqueue(cmd *cobra.Command, f *enqueueFlags) error {
	if f.count < 1 {
		return usagef("--count must be at least 1, not %d", f.count)
	}
	switch {
	case f.wait && f.count > 1:
		return usagef("--wait waits for one job: leave out --count")
	case f.timeout != 0 && !f.wait:
		return usagef("--timeout bounds --wait: give --wait too")
	case f.timeout < 0:
		return usagef("--timeout must not be negative, not %v", f.timeout)
	case f.uniqueFor != 0 && f.uniqueKey == "":
		return usagef("--unique-for holds a unique key: give --unique-key too")
	case f.uniqueFor < 0 || f.uniqueFor > store.MaxUniqueFor:
		return usagef("--unique-for must be 0..%v, not %v", store.MaxUniqueFor, f.uniqueFor)
	}
	// Check the job before opening (and perhaps creating) the store, so
	// that invalid input changes nothing at all.
	payload, err := a.payload(f.payload, "")
	if err != nil {
		return err
	}
	if err := spool.ValidKindName(f.kind); err != nil {
		return err
	}
	md, err := parseKeyValues("--meta", f.metadata)
	if err != nil {
		return err
	}
	opts := &spool.EnqueueOptions{
		Metadata:    md,
		Queue:       f.queue,
		Priority:    f.priority,
		Delay:       f.delay,
		UniqueKey:   f.uniqueKey,
		UniqueFor:   f.uniqueFor,
		Tenant:      f.tenant,
		OrderingKey: f.orderingKey,
		MaxAttempts: f.maxAttempts,
	}
	client, closeStore, err := a.openClient(cmd, true)
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := cmd.Context()
	item := spool.RawItem(f.kind, payload, opts)

	if f.count == 1 {
		res, err := client.EnqueueMany(ctx, item)
		if err != nil {
			return unwrapItem(err)
		}
		r := res[0]
		if f.wait {
			return a.waitFor(ctx, client, r, f.timeout)
		}
		if a.jsonOut {
			a.printJSON(wire.EnqueueResultOf(r))
			return nil
		}
		fmt.Fprintln(a.stdout, r.ID)
		if r.Duplicate {
			fmt.Fprintf(a.stderr, "spool: not added: %s job %s holds unique key %q\n", r.State, r.ID, f.uniqueKey)
		}
		return nil
	}

	bar := a.newProgress(f.count, "enqueue")
	defer bar.Finish()
	batch := make([]spool.Item, 0, min(f.count, enqueueBatch))
	var done, dups int
	var first, last spool.ID
	for done < f.count {
		batch = batch[:0]
		for range min(enqueueBatch, f.count-done) {
			batch = append(batch, item)
		}
		res, err := client.EnqueueMany(ctx, batch...)
		if err != nil {
			if done > 0 {
				fmt.Fprintf(a.stderr, "spool: %d of %d jobs were enqueued before the error\n", done, f.count)
			}
			return unwrapItem(err)
		}
		for _, r := range res {
			if first.IsZero() {
				first = r.ID
			}
			last = r.ID
			if r.Duplicate {
				dups++
			}
		}
		done += len(res)
		bar.Set(done)
	}
	bar.Finish()
	if a.jsonOut {
		a.printJSON(struct {
			Enqueued   int    `json:"enqueued"`
			Duplicates int    `json:"duplicates"`
			FirstID    string `json:"first_id"`
			LastID     string `json:"last_id"`
		}{done - dups, dups, first.String(), last.String()})
		return nil
	}
	if dups > 0 {
		fmt.Fprintf(a.stdout, "enqueued %d jobs to queue %s (%d duplicates not added)\n", done-dups, f.queue, dups)
	} else {
		fmt.Fprintf(a.stdout, "enqueued %d jobs to queue %s\n", done, f.queue)
	}
	return nil
}

// unwrapItem returns the first refused item's own error: every item of an
// enqueue is a copy of the same job, so its mistake is the job's.
func unwrapItem(err error) error {
	var ie *store.ItemError
	if errors.As(err, &ie) {
		return ie.Err
	}
	return err
}

// waitFor waits for the job an enqueue --wait added (or the live job that
// holds its unique key) to finish and prints its result, or the job with
// --json. A job that finished without completing is an error (exit 1);
// so is a timeout, with the catalog's code "timeout".
func (a *app) waitFor(ctx context.Context, client *spool.Client, r spool.EnqueueResult, timeout time.Duration) error {
	if r.Duplicate {
		fmt.Fprintf(a.stderr, "spool: not added: waiting for %s job %s, which holds the unique key\n", r.State, r.ID)
	}
	wctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	job, err := client.Wait(wctx, r.ID)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			state := "not finished"
			if j, gerr := client.Get(ctx, r.ID); gerr == nil {
				state = string(j.State)
			}
			return fmt.Errorf("job %s still %s after --timeout %v; it stays queued (spool jobs cancel %s if the reply is no longer wanted): %w",
				r.ID, state, timeout, r.ID, err)
		}
		return err
	}
	if a.jsonOut {
		a.printJSON(wire.JobOf(job, true))
	} else if len(job.Result) > 0 {
		out := job.Result
		if out[len(out)-1] != '\n' {
			out = append(out[:len(out):len(out)], '\n')
		}
		_, _ = a.stdout.Write(out)
	}
	if job.State != spool.StateCompleted {
		return &reportedError{code: exitFailed, err: &spool.JobFailedError{Job: job}}
	}
	return nil
}
