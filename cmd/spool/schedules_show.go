package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// defaultNextSlots is how many coming slots spool schedules get shows.
const defaultNextSlots = 5

func (a *app) schedulesListCmd(tenant *string) *cobra.Command {
	var after string
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List a tenant's schedules, by ID, one page at a time",
		Long: `List prints the tenant's schedules in ID order, at most --limit of them. When
there are more, it says so and gives the cursor: pass it as --after to get the
next page, or use --all to print every page.

With --json it prints {"schedules": [...], "next": "ID or empty"}.`,
		Example: `  spool schedules list
  spool schedules list --tenant acme --all --json | jq -r '.schedules[].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := spool.ScheduleListParams{Tenant: *tenant, After: after, Limit: limit}
			if err := p.Normalize(); err != nil {
				return err
			}
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			var scs []*spool.Schedule
			for {
				page, err := client.Schedules().List(cmd.Context(), p)
				if err != nil {
					return err
				}
				scs = append(scs, page.Schedules...)
				p.After = page.Next
				if !all || page.Next == "" {
					break
				}
			}
			a.printSchedules(scs, p.After)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&limit, "limit", "l", store.DefaultListLimit, fmt.Sprintf("most schedules to print (with --all: per page), 1..%d", store.MaxListLimit))
	fl.StringVar(&after, "after", "", "cursor: only schedules whose ID sorts after this one (the previous page's next)")
	fl.BoolVar(&all, "all", false, "follow the cursor and print every page")
	return cmd
}

// printSchedules prints schedules as a table, or as {"schedules", "next"}.
func (a *app) printSchedules(scs []*spool.Schedule, next string) {
	if a.jsonOut {
		a.printJSON(wire.SchedulePage{Schedules: wire.SchedulesOf(scs), Next: next})
		return
	}
	if len(scs) == 0 {
		fmt.Fprintln(a.stderr, "no schedules")
		return
	}
	printScheduleTable(a.stdout, scs, time.Now())
	if next != "" {
		fmt.Fprintf(a.stderr, "more schedules: next page with --after %s (or all of them with --all)\n", next)
	}
}

func printScheduleTable(w io.Writer, scs []*spool.Schedule, now time.Time) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tSPEC\tZONE\tKIND\tQUEUE\tNEXT RUN\tLAST RUN\tPAUSED\tFIRED/SKIPPED/DROPPED")
	for _, sc := range scs {
		next := "-"
		switch {
		case sc.Paused:
			next = "(paused)"
		case !sc.NextRunAt.IsZero():
			next = fmt.Sprintf("%s (%s)", sc.NextRunAt.UTC().Format(time.RFC3339), relative(sc.NextRunAt, now))
		case !sc.LiveJobID.IsZero():
			next = "(after live run)"
		}
		last := "-"
		if !sc.LastRunAt.IsZero() {
			last = relative(sc.LastRunAt, now)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d/%d\n", sc.ID, oneLine(sc.Spec, 30), zoneName(sc.Zone),
			sc.Kind, sc.Queue, next, last, yesNo(sc.Paused), sc.Fired, sc.Skipped, sc.Dropped)
	}
	_ = tw.Flush()
}

func (a *app) schedulesGetCmd(tenant *string) *cobra.Command {
	var next int
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one schedule in full, with its last runs and next slots",
		Long: `Get prints everything stored about one schedule: its definition, version and
counters, its live run, its last runs (newest first) with their jobs' states
now, and its next --next slots. A schedule that does not exist exits 1.

With --json it prints the schedule with "last_runs" (a run's "state" is
absent once retention removed its job) and "next_runs". Defaults are stored:
max_attempts reads 25 unless set, catch_up_max 10 under catch_up (0 otherwise).`,
		Example: `  spool schedules get nightly-report
  spool schedules get nightly-report --next 20
  spool schedules get nightly-report --json | jq .version`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if next < 0 || next > 1000 {
				return usagef("--next must be between 0 and 1000, not %d", next)
			}
			refs, err := checkRefs(*tenant, args)
			if err != nil {
				return err
			}
			ref := refs[0]
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			ctx := cmd.Context()
			sc, err := client.Schedules().Get(ctx, ref)
			if err != nil {
				return scheduleError(ref, err)
			}
			runs, err := client.Schedules().Runs(ctx, ref, next)
			if err != nil {
				return scheduleError(ref, err)
			}
			if a.jsonOut {
				a.printJSON(scheduleDetail(sc, runs))
				return nil
			}
			printSchedule(a.stdout, sc, runs, time.Now())
			return nil
		},
	}
	cmd.Flags().IntVarP(&next, "next", "n", defaultNextSlots, "how many coming slots to show")
	return cmd
}

// printSchedule prints a schedule for a person: one field a line, then its
// last runs and next slots.
func printSchedule(w io.Writer, sc *spool.Schedule, runs *spool.ScheduleRuns, now time.Time) {
	tw, row := newFields(w)
	ts := func(t time.Time) string { return timeText(t, time.RFC3339) }
	row("ID", sc.ID)
	row("Tenant", sc.Tenant)
	row("Spec", sc.Spec)
	row("Zone", zoneName(sc.Zone))
	row("Queue", sc.Queue)
	row("Kind", sc.Kind)
	row("Payload", bytesText(sc.Payload))
	row("Priority", fmt.Sprint(sc.Priority))
	row("Max attempts", fmt.Sprint(sc.MaxAttempts))
	row("Overlap", sc.Overlap.String())
	misfire := sc.Misfire.String()
	if sc.Misfire == spool.MisfireCatchUp {
		misfire += fmt.Sprintf(", at most %d", sc.CatchUpMax)
	}
	row("Misfire", misfire)
	row("Mode", sc.Mode.String())
	row("Paused", yesNo(sc.Paused))
	row("Version", fmt.Sprint(sc.Version))
	switch {
	case sc.Paused:
		row("Next run", "none while paused")
	case sc.NextRunAt.IsZero():
		row("Next run", nextRunMissing(sc))
	default:
		row("Next run", slotText(sc.NextRunAt, sc.Zone, now))
	}
	if !sc.LastRunAt.IsZero() {
		row("Last run", slotText(sc.LastRunAt, sc.Zone, now))
	}
	if !sc.LiveJobID.IsZero() {
		row("Live run", sc.LiveJobID.String())
	}
	row("Runs", fmt.Sprintf("%d fired, %d skipped (a run was live), %d dropped (missed)", sc.Fired, sc.Skipped, sc.Dropped))
	row("Created", ts(sc.CreatedAt))
	row("Updated", ts(sc.UpdatedAt))
	_ = tw.Flush()

	if len(runs.Last) > 0 {
		fmt.Fprintf(w, "Last runs (%d, newest first):\n", len(runs.Last))
		tw = newTable(w)
		fmt.Fprintln(tw, "  SLOT\tJOB\tSTATE")
		for _, r := range runs.Last {
			state := string(r.State)
			if state == "" {
				state = "(removed)"
			}
			slot := ts(r.Slot)
			if r.Triggered {
				slot += " (triggered)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", slot, r.JobID, state)
		}
		_ = tw.Flush()
	}
	if len(runs.Next) > 0 {
		head := fmt.Sprintf("Next slots (%d):", len(runs.Next))
		if sc.Paused {
			head = fmt.Sprintf("Next slots (%d; paused: on resume it continues from the first slot after now):", len(runs.Next))
		}
		fmt.Fprintln(w, head)
		for _, t := range runs.Next {
			fmt.Fprintf(w, "  %s\n", slotText(t, sc.Zone, now))
		}
	}
}

// nextRunMissing says why a schedule that is not paused has no next run.
func nextRunMissing(sc *spool.Schedule) string {
	if sc.Mode == spool.ModeFixedDelay && !sc.LiveJobID.IsZero() {
		return "counted from the end of the live run"
	}
	return "none: the spec has no more slots"
}

// slotText is a slot for a person: in UTC, in the schedule's zone when it
// has one, and how far from now.
func slotText(t time.Time, zone string, now time.Time) string {
	s := t.UTC().Format(time.RFC3339)
	if loc, err := schedule.LoadZone(zone); err == nil && loc != time.UTC {
		s += " = " + t.In(loc).Format("2006-01-02 15:04:05 MST")
	}
	return s + ", " + relative(t, now)
}

// relative says how far t is from now: "in 5m3s" or "12s ago".
func relative(t, now time.Time) string {
	if d := t.Sub(now); d > 0 {
		return "in " + age(d)
	}
	return age(now.Sub(t)) + " ago"
}

func zoneName(zone string) string {
	if zone == "" {
		return "UTC"
	}
	return zone
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// scheduleDetail is the --json form of schedules get: the schedule, its
// last runs with their jobs' states, and its next slots.
func scheduleDetail(sc *spool.Schedule, runs *spool.ScheduleRuns) wire.ScheduleDetail {
	last := make([]wire.ScheduleRun, len(runs.Last))
	for i, r := range runs.Last {
		last[i] = wire.ScheduleRunOf(r.ScheduleRun, r.State)
	}
	return wire.ScheduleDetailOf(sc, last, runs.Next)
}
