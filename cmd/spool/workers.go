package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
)

func (a *app) workersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "workers",
		Short: "List the workers online: host, pid, version, queues, busy slots",
		Long: `Workers lists every running worker of the store, whatever runs it: a Go
program's spool.Worker, spool work, or a remote worker attached through
spool serve. Each heartbeats every 10 seconds (by default) with its ID, host,
pid, version of Spool, queues, and how many of its handler slots are busy; a
worker that stops removes itself, and the entry of one that died expires
after three missed heartbeats.

With --json it prints {"workers": [{"id", "host", "pid", "version", "queues",
"tenant", "busy", "slots", "started_at", "seen_at", "expires_at"}]}.`,
		Example: `  spool workers
  spool workers --json | jq '[.workers[] | .busy] | add'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			ws, err := client.Workers(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(wire.WorkerListOf(ws))
				return nil
			}
			if len(ws) == 0 {
				fmt.Fprintln(a.stderr, "no workers online")
				return nil
			}
			printWorkersTable(a.stdout, ws, time.Now())
			return nil
		},
	}
}

func printWorkersTable(w io.Writer, ws []*spool.WorkerInfo, now time.Time) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tHOST\tPID\tVERSION\tBUSY\tUP\tSEEN\tQUEUES")
	for _, x := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d/%d\t%s\t%s ago\t%s\n", x.ID, x.Host, x.PID, x.Version, x.Busy, x.Slots,
			age(now.Sub(x.StartedAt)), age(now.Sub(x.SeenAt)), oneLine(strings.Join(x.Queues, ","), 60))
	}
	_ = tw.Flush()
}
