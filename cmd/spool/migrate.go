package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool/store"
)

const migrateLong = `Migrate manages the store's schema version.

On PostgreSQL, the store's tables live in one schema (default spool; set it
with ?schema=NAME in the store URL). Every process migrates the schema when it
opens the store, under an advisory lock, unless the URL says skip_migrate=1:
then it refuses a schema that is not at its own version, and deployments run
"spool migrate up" as a separate step, or apply "spool migrate print" with
their own migration tool.

  status      the schema's version, the migrations applied and those pending
  up          apply pending migrations (up to --to, default the newest)
  down        undo migrations down to --to, which is required: --to 0 drops
              every Spool table of the schema and the jobs in it
  print       print the SQL that moves the schema from --from to --to (default:
              from nothing to the newest version), with the bookkeeping of the
              schema's migrations table; it does not connect to the database

SQLite files migrate themselves whenever they are opened: "status" reads the
file's version, "up" opens the file (applying what is pending), "down" is
refused (a SQLite store is never migrated down; delete the file to start
over), and "print" prints the SQLite migrations' SQL.

With --json, status prints {"backend", "schema" or "path", "current",
"latest", "applied": [{"version", "name", "applied_at"}], "pending":
[{"version", "name"}]}, and up and down print {"backend", "schema", "from",
"to", "steps": [{"version", "name", "direction"}]}.`

const migrateExample = `  spool migrate status --store postgres://app@db/app
  spool migrate up --store 'postgres://app@db/app?schema=jobs'
  spool migrate print --store postgres://app@db/app > spool-schema.sql
  spool migrate print --from 1 --to 0 --store postgres://app@db/app   # the down script
  spool migrate down --to 0 --store 'postgres://app@db/app?schema=scratch'`

func (a *app) migrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "migrate",
		Short:   "Show, apply, undo or print the store's schema migrations",
		Long:    migrateLong,
		Example: migrateExample,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(a.migrateStatusCmd(), a.migrateUpCmd(), a.migrateDownCmd(), a.migratePrintCmd())
	return cmd
}

// migrationJSON names one migration.
type migrationJSON struct {
	Version   int        `json:"version"`
	Name      string     `json:"name"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	Direction string     `json:"direction,omitempty"` // up or down, for steps
}

// migrationStatusJSON is migrate status's output.
type migrationStatusJSON struct {
	Backend string          `json:"backend"`
	Schema  string          `json:"schema,omitempty"`
	Path    string          `json:"path,omitempty"`
	Current int             `json:"current"`
	Latest  int             `json:"latest"`
	Applied []migrationJSON `json:"applied"`
	Pending []migrationJSON `json:"pending"`
}

// migrator returns the backend of the command's store and its migration
// operations; close the Migrator when done. A store that does not exist
// yet is refused by the Migrator's Status, not here.
func (a *app) migrator(cmd *cobra.Command) (store.Backend, store.Migrator, error) {
	raw := a.storeURL(cmd)
	b, err := store.Lookup(raw)
	if err != nil {
		return store.Backend{}, nil, err
	}
	if b.Migrator == nil {
		return store.Backend{}, nil, fmt.Errorf("%w: %s stores have no schema migrations", store.ErrUnsupported, b.Name)
	}
	m, err := b.Migrator(cmd.Context(), raw)
	if err != nil {
		return store.Backend{}, nil, err
	}
	return b, m, nil
}

// migrationStatus reads the store's migration status; a store that does
// not exist is a *noStoreError.
func migrationStatus(ctx context.Context, m store.Migrator) (*store.MigrationStatus, error) {
	st, err := m.Status(ctx)
	var nf *store.NotFoundError
	if errors.As(err, &nf) && nf.Resource == "store" {
		return nil, &noStoreError{where: nf.Name, err: err}
	}
	return st, err
}

func (a *app) migrateStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the schema version and the applied and pending migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, m, err := a.migrator(cmd)
			if err != nil {
				return err
			}
			defer m.Close()
			st, err := migrationStatus(cmd.Context(), m)
			if err != nil {
				return err
			}
			out := statusJSON(st)
			if a.jsonOut {
				a.printJSON(out)
				return nil
			}
			a.printMigrationStatus(st.Where, out)
			return nil
		},
	}
}

// statusJSON is the --json form of a migration status.
func statusJSON(st *store.MigrationStatus) *migrationStatusJSON {
	out := &migrationStatusJSON{Backend: st.Backend, Schema: st.Schema, Path: st.Path, Current: st.Current, Latest: st.Latest,
		Applied: []migrationJSON{}, Pending: []migrationJSON{}}
	for _, m := range st.Applied {
		out.Applied = append(out.Applied, migrationJSON{Version: m.Version, Name: m.Name, AppliedAt: timePtr(m.AppliedAt)})
	}
	for _, m := range st.Pending {
		out.Pending = append(out.Pending, migrationJSON{Version: m.Version, Name: m.Name})
	}
	return out
}

// timePtr returns t in UTC, or nil for the zero time.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (a *app) printMigrationStatus(where string, st *migrationStatusJSON) {
	w := a.stdout
	switch {
	case st.Current > st.Latest:
		fmt.Fprintf(w, "%s %s is at version %d, newer than this build (%d): upgrade spool\n", st.Backend, where, st.Current, st.Latest)
	case st.Current == 0 && len(st.Pending) > 0:
		fmt.Fprintf(w, "%s %s has no Spool tables yet; %d migration(s) pending (spool migrate up)\n", st.Backend, where, len(st.Pending))
	case len(st.Pending) > 0:
		fmt.Fprintf(w, "%s %s is at version %d of %d; %d migration(s) pending (spool migrate up)\n", st.Backend, where, st.Current, st.Latest, len(st.Pending))
	default:
		fmt.Fprintf(w, "%s %s is up to date at version %d\n", st.Backend, where, st.Current)
	}
	if len(st.Applied)+len(st.Pending) == 0 {
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	for _, m := range st.Applied {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, m.Name, m.AppliedAt.Local().Format(time.DateTime))
	}
	for _, m := range st.Pending {
		fmt.Fprintf(tw, "%d\t%s\tpending\n", m.Version, m.Name)
	}
	tw.Flush()
}

// migrateResultJSON is what up and down print with --json.
type migrateResultJSON struct {
	Backend string          `json:"backend"`
	Schema  string          `json:"schema,omitempty"`
	Path    string          `json:"path,omitempty"`
	From    int             `json:"from"`
	To      int             `json:"to"`
	Steps   []migrationJSON `json:"steps"`
}

func (a *app) migrateUpCmd() *cobra.Command {
	var to int
	cmd := &cobra.Command{
		Use:   "up [--to N]",
		Short: "Apply pending migrations, up to version N (default: the newest)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, m, err := a.migrator(cmd)
			if err != nil {
				return err
			}
			defer m.Close()
			if !cmd.Flags().Changed("to") {
				to = m.Latest()
			} else if b.MigratesOnOpen {
				return usagef("--to is for PostgreSQL: a %s store always migrates to the newest version when opened", b.Name)
			}
			return a.migrate(cmd.Context(), b, m, to, true)
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "the version to migrate up to (default: the newest this build knows)")
	return cmd
}

func (a *app) migrateDownCmd() *cobra.Command {
	var to int
	cmd := &cobra.Command{
		Use:   "down --to N",
		Short: "Undo migrations down to version N (--to 0 drops every Spool table and its jobs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, m, err := a.migrator(cmd)
			if err != nil {
				return err
			}
			defer m.Close()
			if b.MigratesOnOpen {
				what := "it"
				if st, err := m.Status(cmd.Context()); err == nil {
					what = "the " + st.Where
				}
				return usagef("migrate down is for PostgreSQL: a %s store is never migrated down (to start over, delete %s)", b.Name, what)
			}
			if !cmd.Flags().Changed("to") {
				return usagef("migrate down needs --to N, the version to go back to (--to 0 drops every Spool table of the schema and the jobs in it)")
			}
			return a.migrate(cmd.Context(), b, m, to, false)
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "the version to go back to; required")
	return cmd
}

// migrate moves the store to version to, refusing a direction other than
// the command's, and says what it did.
func (a *app) migrate(ctx context.Context, b store.Backend, m store.Migrator, to int, up bool) error {
	if latest := m.Latest(); to < 0 || to > latest {
		return usagef("--to %d is outside 0..%d, the versions this build knows", to, latest)
	}
	before, err := m.Status(ctx)
	var nf *store.NotFoundError
	switch {
	case errors.As(err, &nf) && nf.Resource == "store": // a file that migrate up is about to create
		before = &store.MigrationStatus{}
	case err != nil:
		return err
	}
	switch {
	case up && to < before.Current:
		return usagef("%s is at version %d: migrate up --to %d would go down (use migrate down --to %d)", before.Where, before.Current, to, to)
	case !up && to > before.Current:
		return usagef("%s is at version %d: migrate down --to %d would go up (use migrate up --to %d)", before.Where, before.Current, to, to)
	}
	steps, err := m.Migrate(ctx, to)
	if err != nil {
		return err
	}
	after, err := m.Status(ctx)
	if err != nil {
		return err
	}
	res := migrateResultJSON{Backend: after.Backend, Schema: after.Schema, Path: after.Path, From: before.Current, To: to, Steps: []migrationJSON{}}
	for _, s := range steps {
		dir := "up"
		if s.Down {
			dir = "down"
		}
		res.Steps = append(res.Steps, migrationJSON{Version: s.Version, Name: s.Name, Direction: dir})
	}
	if a.jsonOut {
		a.printJSON(res)
		return nil
	}
	for _, s := range res.Steps {
		verb := "applied"
		if s.Direction == "down" {
			verb = "undid"
		}
		fmt.Fprintf(a.stdout, "%s migration %04d_%s\n", verb, s.Version, s.Name)
	}
	note := ""
	if b.MigratesOnOpen {
		note = fmt.Sprintf("%s stores migrate themselves when opened", b.Name)
	}
	switch {
	case len(steps) == 0 && note != "":
		fmt.Fprintf(a.stdout, "%s %s is already at version %d; nothing to do (%s)\n", after.Backend, after.Where, after.Current, note)
	case len(steps) == 0:
		fmt.Fprintf(a.stdout, "%s %s is already at version %d; nothing to do\n", after.Backend, after.Where, after.Current)
	case note != "":
		fmt.Fprintf(a.stdout, "%s %s is now at version %d (was %d; %s)\n", after.Backend, after.Where, to, before.Current, note)
	default:
		fmt.Fprintf(a.stdout, "%s %s is now at version %d (was %d)\n", after.Backend, after.Where, to, before.Current)
	}
	return nil
}

func (a *app) migratePrintCmd() *cobra.Command {
	var from, to int
	cmd := &cobra.Command{
		Use:   "print [--from N] [--to M]",
		Short: "Print the SQL that moves the schema from version N to M, for your own migration tool",
		Long: `Print writes to stdout the SQL script that moves the store's schema from
version --from (default 0: no Spool tables) to version --to (default: the
newest this build knows); --to below --from prints the down script. It does
not connect to the database: --from is what you say the schema is at.

For PostgreSQL the script names the schema of the store URL (?schema=NAME,
default spool), takes the same advisory lock as spool migrate, and records each
step in the schema's migrations table, so the store sees the version it
expects; run it in one transaction (psql --single-transaction -f FILE). For
SQLite it prints the migrations' SQL, for reading: SQLite files migrate
themselves when opened.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, m, err := a.migrator(cmd)
			if err != nil {
				return err
			}
			defer m.Close()
			if !cmd.Flags().Changed("to") {
				to = m.Latest()
			}
			script, err := m.Script(from, to)
			if err != nil {
				return err
			}
			fmt.Fprint(a.stdout, script)
			return nil
		},
	}
	cmd.Flags().IntVar(&from, "from", 0, "the version the schema is at now")
	cmd.Flags().IntVar(&to, "to", 0, "the version to move to (default: the newest this build knows)")
	return cmd
}
