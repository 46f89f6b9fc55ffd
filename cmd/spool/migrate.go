package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/sqlite"
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

func (a *app) migrateStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the schema version and the applied and pending migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loc, err := parseStoreURL(a.storeURL(cmd))
			if err != nil {
				return err
			}
			var st *migrationStatusJSON
			if loc.scheme == "postgres" {
				st, err = pgMigrationStatus(cmd.Context(), loc)
			} else {
				st, err = sqliteMigrationStatus(cmd.Context(), loc.path)
			}
			if err != nil {
				return err
			}
			if a.jsonOut {
				a.printJSON(st)
				return nil
			}
			a.printMigrationStatus(st)
			return nil
		},
	}
}

func (a *app) printMigrationStatus(st *migrationStatusJSON) {
	w := a.stdout
	where := "schema " + st.Schema
	if st.Backend == "sqlite" {
		where = "file " + st.Path
	}
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

func pgMigrationStatus(ctx context.Context, loc storeLocation) (*migrationStatusJSON, error) {
	st, err := pgStatus(ctx, loc)
	if err != nil {
		return nil, err
	}
	out := &migrationStatusJSON{Backend: "postgres", Schema: st.Schema, Current: st.Current, Latest: st.Latest,
		Applied: []migrationJSON{}, Pending: []migrationJSON{}}
	for _, m := range st.Applied {
		out.Applied = append(out.Applied, migrationJSON{Version: m.Version, Name: m.Name, AppliedAt: timePtr(m.AppliedAt.UTC())})
	}
	for _, m := range st.Pending {
		out.Pending = append(out.Pending, migrationJSON{Version: m.Version, Name: m.Name})
	}
	return out, nil
}

// sqliteMigrationStatus reads a SQLite file's migrations table without
// changing the file (it is opened read-only).
func sqliteMigrationStatus(ctx context.Context, path string) (*migrationStatusJSON, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, &noStoreError{where: path}
	}
	all := sqlite.Migrations()
	out := &migrationStatusJSON{Backend: "sqlite", Path: path, Latest: all[len(all)-1].Version,
		Applied: []migrationJSON{}, Pending: []migrationJSON{}}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var exists int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spool_migrations'`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if exists > 0 {
		rows, err := db.QueryContext(ctx, `SELECT version, name, applied_at FROM spool_migrations ORDER BY version`)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		defer rows.Close()
		for rows.Next() {
			var m migrationJSON
			var micros int64
			if err := rows.Scan(&m.Version, &m.Name, &micros); err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			m.AppliedAt = timePtr(time.UnixMicro(micros).UTC())
			out.Applied = append(out.Applied, m)
			out.Current = m.Version
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	for _, m := range all {
		if m.Version > out.Current {
			out.Pending = append(out.Pending, migrationJSON{Version: m.Version, Name: m.Name})
		}
	}
	return out, nil
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
			loc, err := parseStoreURL(a.storeURL(cmd))
			if err != nil {
				return err
			}
			toGiven := cmd.Flags().Changed("to")
			if loc.scheme == "sqlite" {
				if toGiven {
					return usagef("--to is for PostgreSQL: a SQLite file always migrates to the newest version when opened")
				}
				return a.sqliteUp(cmd.Context(), loc.path)
			}
			if !toGiven {
				to = postgres.LatestVersion()
			}
			return a.pgMigrate(cmd.Context(), loc, to, true)
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
			loc, err := parseStoreURL(a.storeURL(cmd))
			if err != nil {
				return err
			}
			if loc.scheme == "sqlite" {
				return usagef("migrate down is for PostgreSQL: a SQLite store is never migrated down (to start over, delete %s)", loc.path)
			}
			if !cmd.Flags().Changed("to") {
				return usagef("migrate down needs --to N, the version to go back to (--to 0 drops every Spool table of the schema and the jobs in it)")
			}
			return a.pgMigrate(cmd.Context(), loc, to, false)
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "the version to go back to; required")
	return cmd
}

// pgMigrate moves the schema to version to, refusing a direction other
// than the command's.
func (a *app) pgMigrate(ctx context.Context, loc storeLocation, to int, up bool) error {
	schema := pgSchema(loc)
	latest := postgres.LatestVersion()
	if to < 0 || to > latest {
		return usagef("--to %d is outside 0..%d, the versions this build knows", to, latest)
	}
	conn, err := pgConnect(ctx, loc)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // the migration's outcome is what matters
	st, err := postgres.MigrationStatus(ctx, conn, schema)
	if err != nil {
		return err
	}
	switch {
	case up && to < st.Current:
		return usagef("schema %s is at version %d: migrate up --to %d would go down (use migrate down --to %d)", schema, st.Current, to, to)
	case !up && to > st.Current:
		return usagef("schema %s is at version %d: migrate down --to %d would go up (use migrate up --to %d)", schema, st.Current, to, to)
	}
	steps, err := postgres.Migrate(ctx, conn, schema, to)
	if err != nil {
		return err
	}
	res := migrateResultJSON{Backend: "postgres", Schema: schema, From: st.Current, To: to, Steps: []migrationJSON{}}
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
	switch {
	case len(steps) == 0:
		fmt.Fprintf(a.stdout, "postgres schema %s is already at version %d; nothing to do\n", schema, st.Current)
	default:
		fmt.Fprintf(a.stdout, "postgres schema %s is now at version %d (was %d)\n", schema, to, st.Current)
	}
	return nil
}

// sqliteUp opens the file, which applies its pending migrations, and says
// what changed.
func (a *app) sqliteUp(ctx context.Context, path string) error {
	before, err := sqliteMigrationStatus(ctx, path)
	if errors.Is(err, fs.ErrNotExist) || (err != nil && isNoStore(err)) {
		before = &migrationStatusJSON{Backend: "sqlite", Path: path}
	} else if err != nil {
		return err
	}
	st, err := sqlite.Open(path, sqlite.Config{}) //nolint:contextcheck // sqlite.Open takes no context
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	after, err := sqliteMigrationStatus(ctx, path)
	if err != nil {
		return err
	}
	res := migrateResultJSON{Backend: "sqlite", Path: path, From: before.Current, To: after.Current, Steps: []migrationJSON{}}
	for _, m := range after.Applied {
		if m.Version > before.Current {
			res.Steps = append(res.Steps, migrationJSON{Version: m.Version, Name: m.Name, Direction: "up"})
		}
	}
	if a.jsonOut {
		a.printJSON(res)
		return nil
	}
	if len(res.Steps) == 0 {
		fmt.Fprintf(a.stdout, "sqlite file %s is already at version %d; nothing to do (SQLite files migrate themselves when opened)\n", path, after.Current)
		return nil
	}
	fmt.Fprintf(a.stdout, "sqlite file %s is now at version %d (was %d; SQLite files migrate themselves when opened)\n", path, after.Current, before.Current)
	return nil
}

func isNoStore(err error) bool {
	var ns *noStoreError
	return errors.As(err, &ns)
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
			loc, err := parseStoreURL(a.storeURL(cmd))
			if err != nil {
				return err
			}
			if loc.scheme == "postgres" {
				if !cmd.Flags().Changed("to") {
					to = postgres.LatestVersion()
				}
				script, err := postgres.MigrationSQL(pgSchema(loc), from, to)
				if err != nil {
					return err
				}
				fmt.Fprint(a.stdout, script)
				return nil
			}
			all := sqlite.Migrations()
			latest := all[len(all)-1].Version
			if !cmd.Flags().Changed("to") {
				to = latest
			}
			if from < 0 || from > latest || to < 0 || to > latest {
				return usagef("--from %d and --to %d must be within 0..%d, the versions this build knows", from, to, latest)
			}
			fmt.Fprint(a.stdout, sqliteScript(all, from, to))
			return nil
		},
	}
	cmd.Flags().IntVar(&from, "from", 0, "the version the schema is at now")
	cmd.Flags().IntVar(&to, "to", 0, "the version to move to (default: the newest this build knows)")
	return cmd
}

// sqliteScript renders the SQLite migrations between two versions.
func sqliteScript(all []sqlite.Migration, from, to int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- spool SQLite schema: version %d to %d (SQLite files migrate themselves when opened)\n", from, to)
	for _, m := range all {
		if m.Version > from && m.Version <= to {
			fmt.Fprintf(&b, "\n-- %04d_%s up\n%s\n", m.Version, m.Name, strings.TrimSpace(m.Up))
		}
	}
	for i := len(all) - 1; i >= 0; i-- {
		if m := all[i]; m.Version <= from && m.Version > to {
			fmt.Fprintf(&b, "\n-- %04d_%s down\n%s\n", m.Version, m.Name, strings.TrimSpace(m.Down))
		}
	}
	return b.String()
}
