package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// Exit codes scripts can rely on; the error catalog (internal/wire) maps
// every error to one of them.
const (
	exitOK          = wire.ExitOK          // the command did what it was asked
	exitFailed      = wire.ExitFailed      // the operation failed: a job not found, some items refused, a store error
	exitUsage       = wire.ExitUsage       // bad flags or arguments, or invalid input such as a payload that is not JSON
	exitConflict    = wire.ExitConflict    // a version conflict: the record changed since it was read (read it again and retry)
	exitInterrupted = wire.ExitInterrupted // stopped by SIGINT or SIGTERM (128 + SIGINT)
)

// app is one invocation of the CLI: its streams, its environment and the
// values of the global flags. Tests build one per run with buffers for
// streams and a fake environment.
type app struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	getenv    func(string) string
	stderrTTY bool // progress bars and live status lines only on a terminal

	// procs holds the process groups started by `spool work`, so that a
	// forced exit kills them instead of leaving them orphaned.
	procs *procSet

	// Global flags.
	storeFlag string
	jsonOut   bool
	logLevel  string
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *app {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, procs: newProcSet()}
	if f, ok := stderr.(*os.File); ok {
		a.stderrTTY = isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
	}
	return a
}

// run executes the command line args and returns the process exit code.
func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCmd() //nolint:contextcheck // commands get ctx from ExecuteContextC below
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var re *runError
	if errors.As(err, &re) {
		err = re.err
	} else {
		// Anything cobra reports itself (unknown command or flag, a bad
		// flag value, wrong argument count) is a usage error.
		err = &usageError{err: err, cmd: cmd}
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = errInterrupted
	}
	return a.report(err)
}

// forceExit is called on a second SIGINT or SIGTERM: it kills the commands
// `spool work` is running and exits at once. Their jobs' locks expire and
// the jobs run again.
func (a *app) forceExit() {
	if n := a.procs.killAll(); n > 0 {
		fmt.Fprintf(a.stderr, "spool: interrupted again; killed %d running command(s) and exiting\n", n)
	} else {
		fmt.Fprintln(a.stderr, "spool: interrupted again; exiting")
	}
	os.Exit(exitInterrupted)
}

const rootLong = `Spool runs durable background jobs: jobs are stored before enqueue returns,
claimed by competing workers under a renewable lock, retried with backoff and,
when they keep failing, kept as dead letters with their error history. Topics
keep events, and each durable subscription of a topic gets its own delivery
of every event, worked like a job (spool publish, spool subscriptions).

Every command works on a store, named by --store (or $SPOOL_STORE):
  sqlite:PATH, sqlite://PATH or a PATH ending in .db   an embedded SQLite file
  postgres://... or postgresql://...                  PostgreSQL (any URL pgx takes)

A PostgreSQL URL may carry Spool's own options, removed before connecting:
  schema=NAME        the schema the store's tables live in (default spool)
  poll_only=1        no LISTEN/NOTIFY wake-ups: for PgBouncer in transaction
                     mode (add default_query_exec_mode=exec there too)
  skip_migrate=1     refuse an out-of-date schema instead of migrating it on
                     open, for deployments that run spool migrate up themselves
e.g. postgres://app@db.internal/app?sslmode=require&schema=jobs&poll_only=1

Read commands print tables; with --json they print one JSON object (job IDs as
strings, times in RFC 3339). Errors go to stderr as "spool: <message>", or with
--json to stdout as {"error": {"code": ..., "message": ...}}, with the fields
of the error where it has them ("field" and "reason" of invalid input, ...).

Exit codes: 0 ok; 1 the operation failed (a job not found, some items
refused, a wait that timed out); 2 usage error or invalid input; 3 version
conflict (the record changed since it was read: read it again and retry);
130 interrupted.`

const rootExample = `  # See a mixed workload run end to end on a throwaway database
  spool demo

  # Enqueue a job, work the queue with a shell script, look at the result
  spool enqueue --queue mail --kind welcome --payload '{"to":"ada@example.com"}'
  spool work --queue mail -- ./send-mail.sh
  spool jobs list --queue mail --state completed

  # Publish events; work a durable subscription with a shell script
  spool subscriptions add orders mail --kinds order.placed
  spool publish orders --kind order.placed --payload '{"order":"o-17"}' --key o-17
  spool work --subscription orders/mail -- ./mail-on-order.sh

  # Use another database
  SPOOL_STORE=sqlite:/var/lib/app/jobs.db spool stats
  spool stats --store 'postgres://app@db.internal/app?schema=jobs'`

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "spool",
		Short:         "Durable background jobs and events: enqueue, publish, work and inspect",
		Long:          rootLong,
		Example:       rootExample,
		SilenceUsage:  true,
		SilenceErrors: true,
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: true,
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.storeFlag, "store", defaultStoreURL,
		"where jobs live: sqlite:PATH, a PATH ending in .db, or postgres://...[?schema=NAME&poll_only=1&skip_migrate=1]; $SPOOL_STORE replaces the default")
	pf.BoolVar(&a.jsonOut, "json", false, "print machine-readable JSON on stdout (errors too)")
	pf.StringVar(&a.logLevel, "log-level", "info", "least severe log level written to stderr: debug, info, warn or error")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{err: err, cmd: c}
	})
	root.AddCommand(
		a.enqueueCmd(),
		a.workCmd(),
		a.jobsCmd(),
		a.dlqCmd(),
		a.statsCmd(),
		a.workersCmd(),
		a.queuesCmd(),
		a.schedulesCmd(),
		a.publishCmd(),
		a.eventsCmd(),
		a.topicsCmd(),
		a.subscriptionsCmd(),
		a.keysCmd(),
		a.benchCmd(),
		a.demoCmd(),
		a.migrateCmd(),
		a.serveCmd(),
		a.healthCmd(),
	)
	markRunErrors(root)
	return root
}

// markRunErrors wraps every command's RunE so that errors from running a
// command can be told apart from cobra's own usage errors.
func markRunErrors(c *cobra.Command) {
	if c.RunE != nil {
		inner := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := inner(cmd, args); err != nil {
				var ue *usageError
				if errors.As(err, &ue) && ue.cmd == nil {
					ue.cmd = cmd
				}
				return &runError{err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRunErrors(sub)
	}
}

// runError marks an error returned by a command's RunE.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// usageError is a mistake in how a command was called. It exits with code 2
// and matches store.ErrInvalid, so its JSON code is "invalid".
type usageError struct {
	err error
	cmd *cobra.Command // for the --help hint; may be nil
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() []error {
	return []error{e.err, store.ErrInvalid}
}

// usagef returns a usage error with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errInterrupted is reported when a signal stopped a command. It matches
// context.Canceled, which the error catalog codes "interrupted" (exit 130).
var errInterrupted error = interruptedError{}

type interruptedError struct{}

func (interruptedError) Error() string { return "interrupted" }
func (interruptedError) Unwrap() error { return context.Canceled }

// reportedError says the command already printed its outcome (such as a
// JSON object listing refused items) and only its exit code remains. In text
// mode, err is still printed.
type reportedError struct {
	code int
	err  error
}

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

// exitCode maps an error to the exit code scripts see: the one the command
// chose when it already reported the error, else the error catalog's.
func exitCode(err error) int {
	var rep *reportedError
	if errors.As(err, &rep) {
		return rep.code
	}
	return wire.ExitCode(err)
}

// errorView is err as --json shows it: its wire form, with the catalog's
// code and typed fields, and every message in full but without the
// "spool: " prefix (the command line may show what an API would hide).
func errorView(err error) *wire.Error {
	e := wire.DetailedErrorOf(err)
	trimMessages(e)
	return e
}

func trimMessages(e *wire.Error) {
	e.Message = strings.Join(messageLines(e.Message), "; ")
	for i := range e.Errors {
		trimMessages(&e.Errors[i])
	}
}

// report prints err the way the output mode asks and returns the exit code.
func (a *app) report(err error) int {
	code := exitCode(err)
	var rep *reportedError
	if errors.As(err, &rep) && a.jsonOut {
		return code // the JSON output already says what happened
	}
	if a.jsonOut {
		a.printJSON(wire.ErrorBody{Error: errorView(err)})
		return code
	}
	for _, l := range errorLines(err) {
		fmt.Fprintf(a.stderr, "spool: %s\n", l)
	}
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd != nil {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", ue.cmd.CommandPath())
	}
	return code
}

// errorLines splits an error (joined errors give one line each) and drops
// the "spool: " prefix the library's messages carry, since report adds it.
func errorLines(err error) []string { return messageLines(err.Error()) }

// messageLines splits an error message into its lines, without the
// "spool: " prefixes and empty lines.
func messageLines(msg string) []string {
	var lines []string
	for l := range strings.SplitSeq(msg, "\n") {
		for strings.HasPrefix(l, "spool: ") {
			l = strings.TrimPrefix(l, "spool: ")
		}
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		lines = []string{"unknown error"}
	}
	return lines
}

// logger returns the slog.Logger for long-running commands: text on stderr,
// or JSON lines with --json, at the level --log-level names.
func (a *app) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return nil, usagef("invalid --log-level %q: use debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	if a.jsonOut {
		return slog.New(slog.NewJSONHandler(a.stderr, opts)), nil
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts)), nil
}
