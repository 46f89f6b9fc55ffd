package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

const schedulesLong = `A schedule enqueues a job on a recurring spec: a cron expression read in the
schedule's time zone, or a fixed interval. Any process working the store
(spool work, or a Go Worker) fires due schedules; every slot is enqueued
once, however many of them run.

Specs:
  "30 2 * * *"              5-field cron: minute hour day-of-month month day-of-week
  "0 30 2 * * *"            6 fields with a leading seconds field
  "*/15 9-17 * * MON-FRI"   ranges, steps, lists and names
  "@daily", "@hourly"       descriptors (@yearly @monthly @weekly @daily @hourly)
  "@every 90s"              a fixed interval of whole seconds, at least 1s

The zone is an IANA name given with --zone (default UTC), never in the spec.
Across daylight-saving changes every wall-clock slot fires exactly once: a
slot in the spring-forward gap fires at the end of the gap, one in the
fall-back overlap at its first occurrence. "@every" ignores the zone.

Schedules belong to a tenant (--tenant, default the default tenant); IDs are
unique per tenant.`

func (a *app) schedulesCmd() *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "Add, inspect, pause, trigger and delete recurring schedules",
		Long:  schedulesLong,
	}
	cmd.PersistentFlags().StringVar(&tenant, "tenant", "", "the tenant the schedules belong to (default: the default tenant)")
	cmd.AddCommand(
		a.schedulesAddCmd(&tenant),
		a.schedulesListCmd(&tenant),
		a.schedulesGetCmd(&tenant),
		a.schedulesPerRefCmd(&tenant, "pause", "paused", (*spool.Schedules).PauseEach,
			"Stop schedules from firing until resumed",
			`Pause stops schedules from firing; runs already enqueued are left alone.`),
		a.schedulesPerRefCmd(&tenant, "resume", "resumed", (*spool.Schedules).ResumeEach,
			"Let paused schedules fire again",
			`Resume starts paused schedules again from their first slot after now: slots
that passed while they were paused are not run. Resuming a schedule that is
not paused changes nothing.`),
		a.schedulesPerRefCmd(&tenant, "delete", "deleted", (*spool.Schedules).DeleteEach,
			"Delete schedules",
			`Delete removes schedules for good; runs already enqueued are left to finish.`),
		a.schedulesTriggerCmd(&tenant),
	)
	return cmd
}

const schedulesAddLong = `Add creates a schedule, or replaces the definition of one that exists, and
prints it as stored: its version and next run. With --json it prints the
schedule, with "created" true when it was new.

Add writes the whole definition: a flag left out takes its default, also
when the schedule existed (an update without --payload removes the payload).
An update that keeps the spec, zone and mode keeps the next slot; one that
changes them starts again from the first slot after now. --paused applies
only when the schedule is created: use pause and resume after that.

Every change adds one to the schedule's version. With --version N the
change is made only if the schedule is still at version N; if someone
changed it since, nothing is written and the command exits 3: read it again
with get and retry. Without --version the schedule is written whatever its
version.

Overlap, when a slot comes while the previous run is live (queued, running
or awaiting a retry):
  skip (default)   the slot is skipped and counted
  queue_one        one run may wait behind the live one; later slots are skipped
  allow            every slot is enqueued

Misfire, for slots missed by more than a minute (no worker was running):
  run_once (default)  one run for the newest missed slot
  skip                no run for missed slots
  catch_up            a run for each missed slot, oldest first, up to
                      --catch-up-max of the newest (default 10)

Mode: fixed_rate (default) puts slots on the clock; fixed_delay counts the
next slot from the end of the previous run, and needs an "@every" spec.

The payload must be valid JSON (at most 1 MiB): give it inline, as "-" to
read it from stdin, or with --payload-file. Invalid input exits 2 and writes
nothing.`

const schedulesAddExample = `  spool schedules add nightly-report --spec "0 2 * * *" --zone Europe/Berlin --kind report --payload '{"scope":"daily"}'
  spool schedules add sync --spec "@every 5m" --kind sync --mode fixed_delay --queue background
  spool schedules add invoices --spec "0 9 1 * *" --kind invoices --misfire catch_up --catch-up-max 3 --tenant acme
  spool schedules add nightly-report --spec "30 2 * * *" --kind report --version 4   # only if still at version 4`

type scheduleAddFlags struct {
	spec        string
	zone        string
	queue       string
	kind        string
	payload     string
	payloadFile string
	priority    int
	maxAttempts int
	overlap     string
	misfire     string
	catchUpMax  int
	mode        string
	paused      bool
	version     int64
}

func (a *app) schedulesAddCmd(tenant *string) *cobra.Command {
	var f scheduleAddFlags
	cmd := &cobra.Command{
		Use:     "add ID --spec SPEC --kind KIND [flags]",
		Short:   "Create a schedule or replace its definition",
		Long:    schedulesAddLong,
		Example: schedulesAddExample,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.schedulesAdd(cmd, *tenant, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.spec, "spec", "", `cron spec, descriptor or "@every DURATION" (required)`)
	fl.StringVar(&f.zone, "zone", "", "IANA time zone the spec is read in, such as Europe/Berlin (default UTC)")
	fl.StringVarP(&f.queue, "queue", "q", store.DefaultQueue, "queue the runs are added to")
	fl.StringVarP(&f.kind, "kind", "k", "", "the runs' kind: letters, digits and . _ : / - (required)")
	fl.StringVarP(&f.payload, "payload", "p", "", `JSON payload of every run, or "-" to read it from stdin`)
	fl.StringVar(&f.payloadFile, "payload-file", "", "read the JSON payload from this file")
	fl.IntVar(&f.priority, "priority", 0, "lower runs first, -100..100")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, "failed attempts before a run is dead-lettered (default 25)")
	fl.StringVar(&f.overlap, "overlap", store.OverlapSkip.String(), "when a run is still live: skip, queue_one or allow")
	fl.StringVar(&f.misfire, "misfire", store.MisfireRunOnce.String(), "for missed slots: run_once, skip or catch_up")
	fl.IntVar(&f.catchUpMax, "catch-up-max", 0, fmt.Sprintf("with --misfire catch_up: most missed slots run, 1..%d (default %d)", store.MaxCatchUpMax, store.DefaultCatchUpMax))
	fl.StringVar(&f.mode, "mode", store.ModeFixedRate.String(), "fixed_rate, or fixed_delay (an \"@every\" spec counted from the end of the last run)")
	fl.BoolVar(&f.paused, "paused", false, "create the schedule paused (ignored when it exists)")
	fl.Int64Var(&f.version, "version", 0, "change the schedule only if it is still at this version (see get)")
	_ = cmd.MarkFlagRequired("spec")
	_ = cmd.MarkFlagRequired("kind")
	return cmd
}

func (a *app) schedulesAdd(cmd *cobra.Command, tenant, id string, f *scheduleAddFlags) error {
	// Check the schedule before opening (and perhaps creating) the store,
	// so that invalid input changes nothing at all.
	sc, err := a.scheduleFromFlags(tenant, id, f)
	if err != nil {
		return err
	}
	client, closeStore, err := a.openClient(cmd, true)
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := cmd.Context()
	res, err := client.Schedules().UpsertMany(ctx, sc)
	if err != nil {
		return err
	}
	if err := res[0].Err; err != nil {
		return upsertError(sc, err)
	}
	stored, err := client.Schedules().Get(ctx, sc.Ref())
	if err != nil {
		return scheduleError(sc.Ref(), err)
	}
	if f.paused && !res[0].Created && !stored.Paused {
		fmt.Fprintf(a.stderr, "spool: --paused applies only when a schedule is created; run spool schedules pause %s\n", refArgs(sc.Ref()))
	}
	if a.jsonOut {
		a.printJSON(wire.UpsertedSchedule{Schedule: wire.ScheduleOf(stored), Created: res[0].Created})
		return nil
	}
	verb := "updated"
	if res[0].Created {
		verb = "created"
	}
	next := "next run " + slotText(stored.NextRunAt, stored.Zone, time.Now())
	switch {
	case stored.Paused:
		next = "paused"
	case stored.NextRunAt.IsZero():
		next = nextRunMissing(stored)
	}
	fmt.Fprintf(a.stdout, "%s schedule %s: version %d, %s\n", verb, stored.Ref(), stored.Version, next)
	return nil
}

// scheduleFromFlags builds the schedule add writes and checks it, returning
// every mistake at once.
func (a *app) scheduleFromFlags(tenant, id string, f *scheduleAddFlags) (spool.Schedule, error) {
	sc := spool.Schedule{
		ID:          id,
		Tenant:      tenant,
		Spec:        f.spec,
		Zone:        f.zone,
		Queue:       f.queue,
		Kind:        f.kind,
		Priority:    f.priority,
		MaxAttempts: f.maxAttempts,
		CatchUpMax:  f.catchUpMax,
		Paused:      f.paused,
		Version:     f.version,
	}
	var errs []error
	var err error
	if sc.Overlap, err = store.ParseOverlap(f.overlap); err != nil {
		errs = append(errs, err)
	}
	if sc.Misfire, err = store.ParseMisfire(f.misfire); err != nil {
		errs = append(errs, err)
	}
	if sc.Mode, err = store.ParseScheduleMode(f.mode); err != nil {
		errs = append(errs, err)
	}
	sc.Payload, err = a.payload(f.payload, f.payloadFile)
	errs = append(errs, err, schedule.Validate(&sc))
	return sc, errors.Join(errs...)
}

// upsertError explains why the store refused a schedule add wrote.
func upsertError(sc spool.Schedule, err error) error {
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		return &scheduleMsgError{err: err, msg: fmt.Sprintf(
			"schedule %s was changed since you read it: it is at version %d, not %d; nothing was written. "+
				"Check it with 'spool schedules get %s' and retry with --version %d",
			sc.Ref(), ce.Current, ce.Want, refArgs(sc.Ref()), ce.Current)}
	case errors.Is(err, store.ErrNotFound):
		return &scheduleMsgError{err: err, msg: fmt.Sprintf(
			"schedule %s not found, so it cannot be at version %d; leave out --version to create it",
			sc.Ref(), sc.Version)}
	}
	return err
}

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

// scheduleMsgError gives a schedule error a message for the command line;
// errors.Is and errors.As still see the original (and so its exit code).
type scheduleMsgError struct {
	msg string
	err error
}

func (e *scheduleMsgError) Error() string { return e.msg }
func (e *scheduleMsgError) Unwrap() error { return e.err }

// scheduleError words a not-found error for the schedule it is about; nil
// stays nil.
func scheduleError(ref spool.ScheduleRef, err error) error {
	var nf *store.NotFoundError
	if errors.As(err, &nf) && nf.Resource == "schedule" {
		return err // it names the schedule already
	}
	if errors.Is(err, store.ErrNotFound) {
		return &scheduleMsgError{err: err, msg: fmt.Sprintf("schedule %s not found", ref)}
	}
	return err
}

// refArgs is the command-line arguments naming a schedule.
func refArgs(ref spool.ScheduleRef) string {
	if ref.Tenant == "" {
		return ref.ID
	}
	return ref.ID + " --tenant " + ref.Tenant
}

// checkRefs checks schedule IDs and the tenant given on the command line,
// and returns their refs with repeated IDs left out.
func checkRefs(tenant string, ids []string) ([]spool.ScheduleRef, error) {
	if err := store.ValidName("tenant", tenant, true); err != nil {
		return nil, err
	}
	refs := make([]spool.ScheduleRef, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if err := store.ValidName("schedule id", id, false); err != nil {
			return nil, err
		}
		if !seen[id] {
			seen[id] = true
			refs = append(refs, spool.ScheduleRef{Tenant: tenant, ID: id})
		}
	}
	return refs, nil
}

// perRefOp is a per-schedule operation with one answer per schedule, such
// as (*spool.Schedules).PauseEach.
type perRefOp func(x *spool.Schedules, ctx context.Context, refs ...spool.ScheduleRef) ([]error, error)

// schedulesPerRefCmd builds pause, resume and delete: a Schedules operation
// on each named schedule of the tenant.
func (a *app) schedulesPerRefCmd(tenant *string, name, verb string, op perRefOp, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:   name + " ID...",
		Short: short,
		Long: long + `

Each schedule is handled on its own: the ones that exist are ` + verb + `, and if
any does not the command says which and exits 1.

With --json it prints {"done": [IDs], "refused": [{"id", "error"}]}.`,
		Example: "  spool schedules " + name + " nightly-report\n  spool schedules " + name + " invoices reminders --tenant acme",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			refs, err := checkRefs(*tenant, args)
			if err != nil {
				return err
			}
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			refused := make([]error, 0, len(refs))
			for chunk := range slices.Chunk(refs, store.MaxBatch) {
				errs, err := op(client.Schedules(), cmd.Context(), chunk...)
				if err != nil {
					return err // the whole call failed
				}
				for i, ref := range chunk {
					refused = append(refused, scheduleError(ref, errs[i]))
				}
			}
			return a.reportPerSchedule(verb, refs, refused)
		},
	}
}

// reportPerSchedule prints the outcome of pause, resume or delete, one line
// a schedule; refused[i] is why refs[i] was refused, or nil. It returns an
// error (exit 1) when any was refused.
func (a *app) reportPerSchedule(verb string, refs []spool.ScheduleRef, refused []error) error {
	var errs []error
	out := perItemJSON{Done: []string{}, Refused: []refusal{}}
	for i, r := range refs {
		if err := refused[i]; err != nil {
			errs = append(errs, err)
			out.Refused = append(out.Refused, refusal{ID: r.ID, Error: errorView(err)})
			continue
		}
		out.Done = append(out.Done, r.ID)
		if !a.jsonOut {
			fmt.Fprintf(a.stdout, "%s schedule %s\n", verb, r)
		}
	}
	if a.jsonOut {
		a.printJSON(out)
	}
	if len(errs) == 0 {
		return nil
	}
	return &reportedError{code: exitCode(errors.Join(errs...)),
		err: fmt.Errorf("%d of %d schedule(s) refused:\n%w", len(errs), len(refs), errors.Join(errs...))}
}

func (a *app) schedulesTriggerCmd(tenant *string) *cobra.Command {
	return &cobra.Command{
		Use:   "trigger ID",
		Short: "Enqueue a run of a schedule now",
		Long: `Trigger enqueues one run of the schedule now, whatever its spec, pause or
overlap policy, and prints the run's job ID. The run becomes the schedule's
live run. Under the skip and queue_one overlap policies it waits for a run
that is still live to finish before it starts.

With --json it prints {"schedule", "tenant", "job_id", "slot"}.`,
		Example: `  spool schedules trigger nightly-report
  spool jobs get "$(spool schedules trigger nightly-report)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			refs, err := checkRefs(*tenant, args)
			if err != nil {
				return err
			}
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			run, err := client.Schedules().Trigger(cmd.Context(), refs[0])
			if err != nil {
				return scheduleError(refs[0], err)
			}
			if a.jsonOut {
				a.printJSON(wire.TriggeredRunOf(refs[0], run))
				return nil
			}
			fmt.Fprintln(a.stdout, run.JobID)
			return nil
		},
	}
}
