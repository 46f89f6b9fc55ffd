package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
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
