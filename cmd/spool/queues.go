package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

func (a *app) statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Show each queue's job counts by state, pause flag and backlog age",
		Long: `Stats prints, for every queue that has jobs or settings, whether it is paused,
how many jobs it holds in each state, and how long its oldest available job
has been waiting (the backlog's age: a number that grows when workers cannot
keep up).

With --json it prints {"queues": [{"queue", "paused", "counts": {state: n},
"oldest_available_seconds"}]}.`,
		Example: `  spool stats
  spool stats --json | jq '.queues[] | select(.counts.dead > 0) | .queue'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			stats, err := client.Stats(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(map[string]any{"queues": wire.QueueStatsOf(stats)})
				return nil
			}
			if len(stats) == 0 {
				fmt.Fprintln(a.stderr, "no queues")
				return nil
			}
			printStatsTable(a.stdout, stats)
			return nil
		},
	}
}

func printStatsTable(w io.Writer, stats []spool.QueueStats) {
	tw := newTable(w)
	fmt.Fprint(tw, "QUEUE\tPAUSED")
	for _, s := range store.States {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(string(s)))
	}
	fmt.Fprintln(tw, "\tOLDEST AVAILABLE")
	for _, q := range stats {
		paused := "no"
		if q.Paused {
			paused = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s", q.Queue, paused)
		for _, s := range store.States {
			if slices.Contains(q.Capped, s) {
				fmt.Fprintf(tw, "\t%d+", q.Counts[s]) // at least
				continue
			}
			fmt.Fprintf(tw, "\t%d", q.Counts[s])
		}
		oldest := "-"
		if q.OldestAvailable > 0 {
			oldest = age(q.OldestAvailable)
		}
		fmt.Fprintf(tw, "\t%s\n", oldest)
	}
	_ = tw.Flush()
}

func (a *app) queuesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "Pause and resume queues",
		Long: `A paused queue keeps its jobs and accepts new ones, but hands none out:
workers claim nothing from it until it is resumed. Jobs already running finish
normally. spool stats shows which queues are paused.`,
	}
	cmd.AddCommand(a.queuePauseCmd(true), a.queuePauseCmd(false))
	return cmd
}

func (a *app) queuePauseCmd(pause bool) *cobra.Command {
	use, short, done := "resume QUEUE", "Let workers claim a paused queue's jobs again", "resumed"
	if pause {
		use, short, done = "pause QUEUE", "Stop workers from claiming a queue's jobs", "paused"
	}
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: "  spool queues " + use[:len(use)-len(" QUEUE")] + " mail",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue := args[0]
			if err := store.ValidName("queue", queue, false); err != nil {
				return err
			}
			st, err := a.openOrCreate(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			if pause {
				err = st.PauseQueue(cmd.Context(), queue)
			} else {
				err = st.ResumeQueue(cmd.Context(), queue)
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(map[string]any{"queue": queue, "paused": pause})
			} else {
				fmt.Fprintf(a.stdout, "queue %s %s\n", queue, done)
			}
			return nil
		},
	}
}
