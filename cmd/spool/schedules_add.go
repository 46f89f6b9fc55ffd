package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

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
