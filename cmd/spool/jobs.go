package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

func (a *app) jobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, inspect, cancel and requeue jobs",
		Long: `Jobs lists and inspects jobs in any state, cancels live jobs and requeues
dead or cancelled ones. Finished jobs stay listed until retention removes them
(completed and cancelled after 24h by default; dead letters until purged).`,
	}
	cmd.AddCommand(a.jobsListCmd(), a.jobsGetCmd(), a.jobsCancelCmd(), a.jobsRequeueCmd())
	return cmd
}

type listFlags struct {
	queue         string
	kind          string
	tenant        string
	states        []string
	uniqueKey     string
	orderingKey   string
	createdAfter  string
	createdBefore string
	newest        bool
	limit         int
	after         string
}

func (a *app) jobsListCmd() *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List jobs, oldest first, one page at a time",
		Long: `List prints jobs matching the filters in enqueue order (newest first with
--newest), at most --limit of them. When there are more, it says so and gives
the cursor: pass it as --after to get the next page.

With --json it prints {"jobs": [...], "next": "ID or empty"}.`,
		Example: `  spool jobs list --queue mail --state available,running
  spool jobs list --state dead --limit 20 --json
  spool jobs list --queue mail --state dead --newest --created-after 2026-12-08T00:00:00Z
  spool jobs list --unique-key invoice-42
  spool jobs list --after 0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.jobsList(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.queue, "queue", "q", "", "only jobs of this queue")
	fl.StringVarP(&f.kind, "kind", "k", "", "only jobs of this kind")
	fl.StringVar(&f.tenant, "tenant", "", "only jobs of this tenant")
	fl.StringSliceVarP(&f.states, "state", "s", nil, "only jobs in these states: "+stateNames())
	fl.StringVar(&f.uniqueKey, "unique-key", "", "only jobs enqueued with this unique key")
	fl.StringVar(&f.orderingKey, "ordering-key", "", "only jobs enqueued with this ordering key")
	fl.StringVar(&f.createdAfter, "created-after", "", "only jobs created at or after this RFC 3339 time")
	fl.StringVar(&f.createdBefore, "created-before", "", "only jobs created before this RFC 3339 time")
	fl.BoolVar(&f.newest, "newest", false, "newest first: --after then pages to older jobs")
	fl.IntVarP(&f.limit, "limit", "l", store.DefaultListLimit, fmt.Sprintf("most jobs to print, 1..%d", store.MaxListLimit))
	fl.StringVar(&f.after, "after", "", "cursor: only jobs past this job ID in the list's order (the previous page's next)")
	return cmd
}

func stateNames() string {
	names := make([]string, len(store.States))
	for i, s := range store.States {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// parseStates checks state names given on the command line.
func parseStates(names []string) ([]spool.State, error) {
	var out []spool.State
	for _, n := range names {
		s := spool.State(strings.ToLower(strings.TrimSpace(n)))
		if !s.Valid() {
			return nil, usagef("unknown state %q: use %s", n, stateNames())
		}
		out = append(out, s)
	}
	return out, nil
}

func (a *app) jobsList(cmd *cobra.Command, f *listFlags) error {
	states, err := parseStates(f.states)
	if err != nil {
		return err
	}
	p := spool.ListParams{Queue: f.queue, Kind: f.kind, Tenant: f.tenant, States: states, UniqueKey: f.uniqueKey, OrderingKey: f.orderingKey,
		Newest: f.newest, Limit: f.limit}
	for _, t := range []struct {
		flag, value string
		to          *time.Time
	}{{"--created-after", f.createdAfter, &p.CreatedAfter}, {"--created-before", f.createdBefore, &p.CreatedBefore}} {
		if t.value == "" {
			continue
		}
		if *t.to, err = time.Parse(time.RFC3339Nano, t.value); err != nil {
			return usagef("%s %q: not an RFC 3339 time such as 2026-12-08T09:30:00Z", t.flag, t.value)
		}
	}
	return a.listPage(cmd, p, f.after, false)
}

// listPage prints one page of jobs matching p, starting after the job ID in
// after (empty: from the first); dead selects the dead-letter columns.
func (a *app) listPage(cmd *cobra.Command, p spool.ListParams, after string, dead bool) error {
	if after != "" {
		var err error
		if p.After, err = spool.ParseID(after); err != nil {
			return err
		}
	}
	if err := p.Check(); err != nil {
		return err
	}
	client, closeStore, err := a.openClient(cmd, false)
	if err != nil {
		return err
	}
	defer closeStore()
	page, err := client.List(cmd.Context(), p)
	if err != nil {
		return err
	}
	a.printPage(page, dead)
	return nil
}

// printPage prints a page of jobs as a table, or as {"jobs", "next"}. dead
// picks the dead-letter columns.
func (a *app) printPage(page *spool.ListPage, dead bool) {
	next := ""
	if !page.Next.IsZero() {
		next = page.Next.String()
	}
	if a.jsonOut {
		a.printJSON(wire.JobPageOf(page))
		return
	}
	if len(page.Jobs) == 0 {
		fmt.Fprintln(a.stderr, "no jobs")
		return
	}
	if dead {
		printDeadTable(a.stdout, page.Jobs, time.Now())
	} else {
		printJobTable(a.stdout, page.Jobs, time.Now())
	}
	if next != "" {
		fmt.Fprintf(a.stderr, "more jobs: next page with --after %s\n", next)
	}
}

func printJobTable(w io.Writer, jobs []*spool.Job, now time.Time) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tQUEUE\tKIND\tSTATE\tATTEMPTS\tAGE\tLAST ERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Queue, j.Kind, j.State,
			j.Attempts, j.MaxAttempts, age(now.Sub(j.CreatedAt)), oneLine(lastError(j), 60))
	}
	_ = tw.Flush()
}

func printDeadTable(w io.Writer, jobs []*spool.Job, now time.Time) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tQUEUE\tKIND\tATTEMPTS\tREASON\tDIED\tLAST ERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s ago\t%s\n", j.ID, j.Queue, j.Kind, j.Attempts,
			j.DeadReason, age(now.Sub(j.FinishedAt)), oneLine(lastError(j), 60))
	}
	_ = tw.Flush()
}

func (a *app) jobsGetCmd() *cobra.Command {
	var uniqueKey, tenant string
	cmd := &cobra.Command{
		Use:   "get {ID | --unique-key KEY [--tenant T]}",
		Short: "Show one job in full, with its payload, result and error history",
		Long: `Get prints everything stored about one job: its settings and counters, its
payload and result, and its error history (oldest first, with panic stacks).
A job that does not exist (or was removed by retention) exits 1.

With --unique-key instead of an ID it shows the job of that unique key (in
--tenant's jobs; default none): the job holding the key (a live one, or a
finished one within its --unique-for window: the one spool enqueue with the
key returns), else the newest finished job with the key. So a result can be
read back by the key it was enqueued with.`,
		Example: `  spool jobs get 0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f
  spool jobs get 0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f --json | jq .result
  spool jobs get --unique-key quote-a1 --tenant acme --json | jq .result`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id spool.ID
			switch {
			case uniqueKey != "" && len(args) == 1:
				return usagef("give a job ID or --unique-key, not both")
			case uniqueKey == "" && len(args) == 0:
				return usagef("give a job ID, or --unique-key")
			case tenant != "" && uniqueKey == "":
				return usagef("--tenant goes with --unique-key")
			case uniqueKey != "":
				if err := store.CheckUniqueKeyLookup(tenant, uniqueKey); err != nil {
					return err
				}
			default:
				var err error
				if id, err = spool.ParseID(args[0]); err != nil {
					return err
				}
			}
			client, closeStore, err := a.openClient(cmd, false)
			if err != nil {
				return err
			}
			defer closeStore()
			var job *spool.Job
			if uniqueKey != "" {
				job, err = client.GetByUniqueKey(cmd.Context(), tenant, uniqueKey)
			} else {
				job, err = client.Get(cmd.Context(), id)
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(wire.JobOf(job, true))
				return nil
			}
			printJob(a.stdout, job)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&uniqueKey, "unique-key", "", "show the job of this unique key instead of an ID's")
	fl.StringVar(&tenant, "tenant", "", "with --unique-key: the tenant whose key it is")
	return cmd
}

// printJob prints a job for a person: one field a line, then its history.
func printJob(w io.Writer, j *spool.Job) {
	tw, row := newFields(w)
	ts := func(t time.Time) string { return timeText(t, time.RFC3339Nano) }
	row("ID", j.ID.String())
	row("Queue", j.Queue)
	row("Kind", j.Kind)
	row("State", string(j.State))
	row("Priority", fmt.Sprint(j.Priority))
	row("Tenant", j.Tenant)
	row("Unique key", j.UniqueKey)
	row("Unique until", ts(j.UniqueUntil))
	row("Ordering key", j.OrderingKey)
	if j.HoldKeyWhenDead {
		row("When dead", "holds its ordering key until requeued or purged")
	}
	row("Attempts", fmt.Sprintf("%d of %d", j.Attempts, j.MaxAttempts))
	row("Deliveries", fmt.Sprintf("%d of %d", j.Deliveries, j.MaxDeliveries))
	row("Created", ts(j.CreatedAt))
	row("Run at", ts(j.RunAt))
	row("Locked until", ts(j.LockedUntil))
	row("Attempted at", ts(j.AttemptedAt))
	if j.LastAttemptDuration > 0 {
		row("Last attempt", j.LastAttemptDuration.String())
	}
	row("Finished", ts(j.FinishedAt))
	row("Dead reason", j.DeadReason)
	row("Payload", bytesText(j.Payload))
	row("Result", bytesText(j.Result))
	for _, k := range slices.Sorted(maps.Keys(j.Metadata)) {
		row("Metadata "+k, j.Metadata[k])
	}
	_ = tw.Flush()
	if len(j.Errors) == 0 {
		return
	}
	fmt.Fprintf(w, "Errors (%d, oldest first):\n", len(j.Errors))
	for _, e := range j.Errors {
		fmt.Fprintf(w, "  attempt %d at %s: %s\n", e.Attempt, ts(e.At), e.Message)
		if e.Stack != "" {
			for l := range strings.SplitSeq(strings.TrimRight(e.Stack, "\n"), "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
}

func (a *app) jobsCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID...",
		Short: "Cancel live jobs",
		Long: `Cancel finishes scheduled, available and running jobs as cancelled; a running
job's worker has its verdict refused. Each job is handled on its own: the ones
that can be cancelled are, and if any cannot (not found, already finished) the
command says which and exits 1.

With --json it prints {"done": [IDs], "refused": [{"id", "error"}]}.`,
		Example: `  spool jobs cancel 0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.perJob(cmd, args, "cancelled", (*spool.Client).CancelEach)
		},
	}
}

func (a *app) jobsRequeueCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "requeue ID...",
		Short: "Run dead or cancelled jobs again",
		Long: `Requeue makes dead or cancelled jobs available again with their attempts
reset; their error history is kept. Each job is handled on its own; if any is
refused (not found, live or completed, or its unique key is held by a live job)
the command says which and exits 1.

With --json it prints {"done": [IDs], "refused": [{"id", "error"}]}.`,
		Example: `  spool jobs requeue 0193a4c1-5e3b-7d2e-8f00-1a2b3c4d5e6f`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.perJob(cmd, args, "requeued", (*spool.Client).RequeueEach)
		},
	}
}

// perJobOp is a per-job Client operation with one answer per job, such as
// (*spool.Client).CancelEach.
type perJobOp func(c *spool.Client, ctx context.Context, ids ...spool.ID) ([]error, error)

// jobAnswer is one job's outcome in a per-job command: nil when it was done.
type jobAnswer struct {
	id  spool.ID
	err error
}

// perJob runs a per-job Client operation on the IDs in args and reports
// which jobs it was done to and which were refused.
func (a *app) perJob(cmd *cobra.Command, args []string, verb string, op perJobOp) error {
	ids, err := parseIDs(args)
	if err != nil {
		return err
	}
	client, closeStore, err := a.openClient(cmd, false)
	if err != nil {
		return err
	}
	defer closeStore()
	answers := make([]jobAnswer, 0, len(ids))
	for chunk := range slices.Chunk(ids, store.MaxBatch) {
		errs, err := op(client, cmd.Context(), chunk...)
		if err != nil {
			return err // the whole call failed
		}
		answers = appendAnswers(answers, chunk, errs)
	}
	return a.reportPerJob(verb, answers)
}

// appendAnswers pairs each ID with its answer, wording a refusal so that it
// names its job.
func appendAnswers(answers []jobAnswer, ids []spool.ID, errs []error) []jobAnswer {
	for i, id := range ids {
		answers = append(answers, jobAnswer{id: id, err: jobRefusal(id, errs[i])})
	}
	return answers
}

// jobRefusal is the reason job id was refused, worded for the command
// line: as it is when it names the job already, a *store.NotFoundError
// naming it for a bare store.ErrNotFound, else wrapped in a *spool.JobError.
func jobRefusal(id spool.ID, err error) error {
	var nf *store.NotFoundError
	var se *store.StateError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf) && nf.Name == id.String(), errors.As(err, &se) && se.ID == id:
		return err
	case errors.Is(err, store.ErrNotFound) && nf == nil:
		return store.JobNotFound(id)
	}
	return &spool.JobError{ID: id, Err: err}
}

// reportPerJob prints the outcome of a per-job operation; it returns an
// error (exit 1) when any job was refused.
func (a *app) reportPerJob(verb string, answers []jobAnswer) error {
	done := []string{}
	refused := []refusal{}
	var errs []error
	for _, ans := range answers {
		if ans.err == nil {
			done = append(done, ans.id.String())
			continue
		}
		errs = append(errs, ans.err)
		refused = append(refused, refusal{ID: ans.id.String(), Error: errorView(ans.err)})
	}
	if a.jsonOut {
		a.printJSON(perItemJSON{Done: done, Refused: refused})
	} else if len(done) > 0 {
		fmt.Fprintf(a.stdout, "%s %d job(s)\n", verb, len(done))
	}
	if len(errs) == 0 {
		return nil
	}
	return &reportedError{code: exitFailed, err: fmt.Errorf("%d of %d job(s) refused:\n%w", len(errs), len(answers), errors.Join(errs...))}
}

// perItemJSON is what per-item commands (jobs cancel, schedules pause, ...)
// print with --json: {"done": [IDs], "refused": [{"id", "error"}]}.
type perItemJSON struct {
	Done    []string  `json:"done"`
	Refused []refusal `json:"refused"`
}

// refusal is one refused item: its ID and the error, in its wire form.
type refusal struct {
	ID    string      `json:"id"`
	Error *wire.Error `json:"error"`
}

func parseIDs(args []string) ([]spool.ID, error) {
	ids := make([]spool.ID, 0, len(args))
	for _, s := range args {
		id, err := spool.ParseID(s)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}
