package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

func (a *app) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, requeue and purge dead letters",
		Long: `A job is dead-lettered when its last allowed attempt fails, when its lock
expires on its last allowed delivery, or when its handler asks for it. Dead
letters keep their payload and error history until they are requeued or
purged.`,
	}
	cmd.AddCommand(a.dlqListCmd(), a.dlqRequeueCmd(), a.dlqPurgeCmd())
	return cmd
}

func (a *app) dlqListCmd() *cobra.Command {
	var queue, after string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List dead letters with their last error",
		Long: `List prints dead letters, oldest first, with why they died and their last
error; spool jobs get ID shows a job's whole history. With --json it prints
{"jobs": [...], "next": "ID or empty"}.`,
		Example: `  spool dlq list
  spool dlq list --queue mail --json | jq -r '.jobs[].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := spool.ListParams{Queue: queue, States: []spool.State{spool.StateDead}, Limit: limit}
			return a.listPage(cmd, p, after, true)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&queue, "queue", "q", "", "only dead letters of this queue")
	fl.IntVarP(&limit, "limit", "l", store.DefaultListLimit, fmt.Sprintf("most jobs to print, 1..%d", store.MaxListLimit))
	fl.StringVar(&after, "after", "", "cursor: only jobs enqueued after this job ID (the previous page's next)")
	return cmd
}

func (a *app) dlqRequeueCmd() *cobra.Command {
	var queue string
	var all bool
	cmd := &cobra.Command{
		Use:   "requeue ID... | --all [--queue Q]",
		Short: "Run dead letters again",
		Long: `Requeue makes dead letters available again with their attempts reset; their
error history is kept. Name the jobs, or use --all (with --queue, only that
queue's). If any job is refused (not dead, not found, or a live job now holds
its unique key) the command says which and exits 1.

With --json it prints {"done": [IDs], "refused": [{"id", "error"}]}.`,
		Example: `  spool dlq requeue 0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f
  spool dlq requeue --all --queue mail`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := idsOrAll(args, all, queue); err != nil {
				return err
			}
			if !all {
				return a.perJob(cmd, args, "requeued", func(c *spool.Client, ctx context.Context, ids ...spool.ID) ([]error, error) {
					return requeueDead(ctx, c, ids)
				})
			}
			return a.requeueAllDead(cmd, queue)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&all, "all", false, "requeue every dead letter (of --queue, if given)")
	fl.StringVarP(&queue, "queue", "q", "", "with --all: only this queue's dead letters")
	return cmd
}

// idsOrAll checks that a command got job IDs or --all, not both.
func idsOrAll(args []string, all bool, queue string) error {
	switch {
	case all && len(args) > 0:
		return usagef("give job IDs or --all, not both")
	case !all && len(args) == 0:
		return usagef("give the job IDs, or --all")
	case !all && queue != "":
		return usagef("--queue only applies with --all")
	}
	return nil
}

// requeueDead requeues the jobs among ids that are dead, and answers per
// job like Client.RequeueEach; the others are refused with a
// *store.StateError, like any job that cannot be requeued. (RequeueEach also
// takes cancelled jobs; the dead-letter queue does not.)
func requeueDead(ctx context.Context, c *spool.Client, ids []spool.ID) ([]error, error) {
	errs := make([]error, len(ids))
	var dead []spool.ID
	var at []int // dead[k] is ids[at[k]]
	for i, id := range ids {
		j, err := c.Get(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			errs[i] = err
		case err != nil:
			return nil, err
		case j.State != spool.StateDead:
			errs[i] = &store.StateError{ID: id, State: j.State, Op: "requeue from the dead-letter queue"}
		default:
			dead, at = append(dead, id), append(at, i)
		}
	}
	res, err := c.RequeueEach(ctx, dead...)
	if err != nil {
		return nil, err
	}
	for k, i := range at {
		errs[i] = res[k]
	}
	return errs, nil
}

// requeueAllDead requeues every dead letter of queue ("" for all), a page at
// a time, with a progress bar.
func (a *app) requeueAllDead(cmd *cobra.Command, queue string) error {
	client, closeStore, err := a.openClient(cmd, false)
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := cmd.Context()
	total, err := deadCount(ctx, client, queue)
	if err != nil {
		return err
	}
	bar := a.newProgress(total, "requeue")
	defer bar.Finish()
	var answers []jobAnswer
	p := spool.ListParams{Queue: queue, States: []spool.State{spool.StateDead}, Limit: store.MaxListLimit}
	for {
		page, err := client.List(ctx, p)
		if err != nil {
			return err
		}
		batch := make([]spool.ID, len(page.Jobs))
		for i, j := range page.Jobs {
			batch[i] = j.ID
		}
		errs, err := client.RequeueEach(ctx, batch...)
		if err != nil {
			return err
		}
		answers = appendAnswers(answers, batch, errs)
		bar.Set(len(answers))
		if page.Next.IsZero() {
			break
		}
		p.After = page.Next
	}
	bar.Finish()
	return a.reportPerJob("requeued", answers)
}

// deadCount returns how many dead letters queue ("" for all) holds, for a
// progress bar: Stats counts each queue's up to store.StatsCountCap, so
// past that the bar's total is low.
func deadCount(ctx context.Context, c *spool.Client, queue string) (int, error) {
	stats, err := c.Stats(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range stats {
		if queue == "" || s.Queue == queue {
			n += s.Counts[spool.StateDead]
		}
	}
	return n, nil
}

func (a *app) dlqPurgeCmd() *cobra.Command {
	var queue string
	var all, yes bool
	cmd := &cobra.Command{
		Use:   "purge ID... | --all [--queue Q] --yes",
		Short: "Delete dead letters for good",
		Long: `Purge deletes dead letters and their history. Name the jobs, or use --all
(with --queue, only that queue's); --all also needs --yes, since deleting
every dead letter should be deliberate: without it purge refuses and exits 2.
Named jobs that are not dead letters are left alone, and the command exits 1
saying how many were not purged.

With --json it prints {"purged": N}.`,
		Example: `  spool dlq purge 0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f
  spool dlq purge --all --queue mail --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := idsOrAll(args, all, queue); err != nil {
				return err
			}
			if all && !yes {
				what := "every dead letter"
				if queue != "" {
					what = "every dead letter of queue " + queue
				}
				return usagef("refusing to delete %s without --yes", what)
			}
			ids, err := parseIDs(args)
			if err != nil {
				return err
			}
			st, err := a.openExisting(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			n := 0
			if all {
				if n, err = st.Purge(cmd.Context(), store.PurgeParams{Queue: queue}); err != nil {
					return err
				}
			}
			for chunk := range slices.Chunk(ids, store.MaxBatch) {
				k, err := st.Purge(cmd.Context(), store.PurgeParams{IDs: chunk})
				n += k
				if err != nil {
					return err
				}
			}
			if a.jsonOut {
				a.printJSON(map[string]int{"purged": n})
			} else {
				fmt.Fprintf(a.stdout, "purged %d dead letter(s)\n", n)
			}
			if !all && n < len(ids) {
				return &reportedError{code: exitFailed,
					err: fmt.Errorf("%d of %d job(s) not purged: not dead letters, or not found", len(ids)-n, len(ids))}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&all, "all", false, "purge every dead letter (of --queue, if given); needs --yes")
	fl.StringVarP(&queue, "queue", "q", "", "with --all: only this queue's dead letters")
	fl.BoolVarP(&yes, "yes", "y", false, "confirm --all")
	return cmd
}
