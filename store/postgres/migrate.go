package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/migration"
	"github.com/spoolrun/spool/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schemaToken is where a migration's or query's SQL names the store's schema.
const schemaToken = "{schema}"

// Migration is one versioned schema change, its SQL rendered for one schema.
type Migration = migration.Migration

// AppliedMigration is a migration recorded in the schema's migrations table.
type AppliedMigration = migration.Applied

// Status describes a schema's migrations.
type Status struct {
	Schema  string
	Current int // newest applied version; 0 when none
	Latest  int // newest version this build knows
	Applied []AppliedMigration
	Pending []Migration // known versions above Current, in order
}

// Step is one migration Migrate ran.
type Step = migration.Step

// DB is what the migration functions need to reach the database:
// *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it. From a URL, use
// pgx.Connect(ctx, url).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,56}$`)

// checkSchema refuses a schema name that is not a plain lower-case
// identifier of at most 57 bytes (the notification channel adds a prefix to
// it and must fit PostgreSQL's 63-byte identifier limit).
func checkSchema(schema string) error {
	if !schemaName.MatchString(schema) {
		return &store.ValidationError{Field: "schema", Reason: fmt.Sprintf("%q: use 1 to 57 lower-case letters, digits and _, not starting with a digit", schema)}
	}
	return nil
}

// render puts the schema into SQL written with the {schema} token.
func render(sql, schema string) string { return strings.ReplaceAll(sql, schemaToken, schema) }

// LatestVersion returns the newest schema version this build knows.
func LatestVersion() int {
	all := embedded()
	return all[len(all)-1].Version
}

// Migrations returns the embedded migrations, rendered for schema, in
// version order.
func Migrations(schema string) ([]Migration, error) {
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	all := embedded()
	for i := range all {
		all[i].Up, all[i].Down = render(all[i].Up, schema), render(all[i].Down, schema)
	}
	return all, nil
}

// embedded returns the migrations as written, with the {schema} token.
func embedded() []Migration { return migration.MustRead(migrationFiles, "migrations") }

// Bookkeeping statements of the migrations table.
const (
	createSchemaSQL     = `CREATE SCHEMA IF NOT EXISTS {schema}`
	createMigrationsSQL = `CREATE TABLE IF NOT EXISTS {schema}.migrations (
	version    integer     NOT NULL PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now())`
	migrationsTableExistsSQL = `SELECT to_regclass('{schema}.migrations') IS NOT NULL`
	appliedMigrationsSQL     = `SELECT version, name, applied_at FROM {schema}.migrations ORDER BY version`
	recordMigrationSQL       = `INSERT INTO {schema}.migrations (version, name) VALUES (%d, '%s')`
	forgetMigrationSQL       = `DELETE FROM {schema}.migrations WHERE version = %d`
	migrateLockSQL           = `SELECT pg_advisory_xact_lock($1)`
)

// migrateLockKey is the advisory lock that serialises migrations of one
// schema, so concurrent openers apply each migration once.
func migrateLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("spool migrate " + schema))
	return int64(h.Sum64()) //nolint:gosec // a lock key: wrapping is fine
}

// MigrationStatus reports which migrations schema has and which it lacks.
// It changes nothing; a schema that does not exist yet is at version 0.
func MigrationStatus(ctx context.Context, db DB, schema string) (*Status, error) {
	all, err := Migrations(schema)
	if err != nil {
		return nil, err
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("spool: migration status: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	applied, err := appliedMigrations(ctx, tx, schema)
	if err != nil {
		return nil, err
	}
	st := &Status{Schema: schema, Latest: all[len(all)-1].Version, Applied: applied}
	if n := len(applied); n > 0 {
		st.Current = applied[n-1].Version
	}
	for _, m := range all {
		if m.Version > st.Current {
			st.Pending = append(st.Pending, m)
		}
	}
	return st, nil
}

func appliedMigrations(ctx context.Context, tx pgx.Tx, schema string) ([]AppliedMigration, error) {
	var exists bool
	if err := tx.QueryRow(ctx, render(migrationsTableExistsSQL, schema)).Scan(&exists); err != nil {
		return nil, fmt.Errorf("spool: read migrations: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := tx.Query(ctx, render(appliedMigrationsSQL, schema))
	if err != nil {
		return nil, fmt.Errorf("spool: read migrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AppliedMigration, error) {
		var m AppliedMigration
		err := r.Scan(&m.Version, &m.Name, &m.AppliedAt)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("spool: read migrations: %w", err)
	}
	return out, nil
}

// Migrate moves schema to version target, applying up migrations or undoing
// down to it, in one transaction under an advisory lock so that concurrent
// callers apply each migration once. Pass LatestVersion() to bring a schema
// up to date and 0 to remove every table (the schema and its migrations
// table stay). A schema newer than this build knows is refused with an error
// matching store.ErrSchema, whatever the target.
func Migrate(ctx context.Context, db DB, schema string, target int) ([]Step, error) {
	all, err := Migrations(schema)
	if err != nil {
		return nil, err
	}
	latest := all[len(all)-1].Version
	if target < 0 || target > latest {
		return nil, &store.ValidationError{Field: "target version", Reason: fmt.Sprintf("%d is outside 0..%d", target, latest)}
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("spool: migrate: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, migrateLockSQL, migrateLockKey(schema)); err != nil {
		return nil, fmt.Errorf("spool: migrate: %w", err)
	}
	for _, q := range []string{createSchemaSQL, createMigrationsSQL} {
		if _, err := tx.Exec(ctx, render(q, schema)); err != nil {
			return nil, fmt.Errorf("spool: migrate: %w", err)
		}
	}
	applied, err := appliedMigrations(ctx, tx, schema)
	if err != nil {
		return nil, err
	}
	current := 0
	if n := len(applied); n > 0 {
		current = applied[n-1].Version
	}
	if current > latest {
		return nil, newerSchemaError(schema, current, latest)
	}
	var steps []Step
	for _, m := range all {
		if m.Version <= current || m.Version > target {
			continue
		}
		if _, err := tx.Exec(ctx, m.Up); err != nil {
			return nil, fmt.Errorf("spool: migration %d (%s) up: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, render(fmt.Sprintf(recordMigrationSQL, m.Version, m.Name), schema)); err != nil {
			return nil, fmt.Errorf("spool: migration %d: %w", m.Version, err)
		}
		steps = append(steps, Step{Version: m.Version, Name: m.Name})
	}
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.Version > current || m.Version <= target {
			continue
		}
		if _, err := tx.Exec(ctx, m.Down); err != nil {
			return nil, fmt.Errorf("spool: migration %d (%s) down: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, render(fmt.Sprintf(forgetMigrationSQL, m.Version), schema)); err != nil {
			return nil, fmt.Errorf("spool: migration %d: %w", m.Version, err)
		}
		steps = append(steps, Step{Version: m.Version, Name: m.Name, Down: true})
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("spool: migrate: %w", err)
	}
	return steps, nil
}

func newerSchemaError(schema string, current, latest int) error {
	return fmt.Errorf("%w: schema %q is at version %d, this build knows up to %d; upgrade spool", store.ErrSchema, schema, current, latest)
}

// MigrationSQL returns a script that moves schema from version from to
// version to (up or down), with the bookkeeping of the migrations table, for
// review or to run by hand (psql --single-transaction -f). It does not look
// at the database: from is what the caller says the schema is at.
func MigrationSQL(schema string, from, to int) (string, error) {
	all, err := Migrations(schema)
	if err != nil {
		return "", err
	}
	latest := all[len(all)-1].Version
	var errs []error
	for _, v := range []struct {
		name string
		n    int
	}{{"from version", from}, {"to version", to}} {
		if v.n < 0 || v.n > latest {
			errs = append(errs, &store.ValidationError{Field: v.name, Reason: fmt.Sprintf("%d is outside 0..%d", v.n, latest)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- spool schema %q: version %d to %d\n", schema, from, to)
	fmt.Fprintf(&b, "SELECT pg_advisory_xact_lock(%d);\n", migrateLockKey(schema))
	fmt.Fprintf(&b, "%s;\n%s;\n", render(createSchemaSQL, schema), render(createMigrationsSQL, schema))
	for _, m := range all {
		if m.Version > from && m.Version <= to {
			fmt.Fprintf(&b, "\n-- %04d_%s up\n%s\n%s;\n", m.Version, m.Name, strings.TrimSpace(m.Up),
				render(fmt.Sprintf(recordMigrationSQL, m.Version, m.Name), schema))
		}
	}
	for i := len(all) - 1; i >= 0; i-- {
		if m := all[i]; m.Version <= from && m.Version > to {
			fmt.Fprintf(&b, "\n-- %04d_%s down\n%s\n%s;\n", m.Version, m.Name, strings.TrimSpace(m.Down),
				render(fmt.Sprintf(forgetMigrationSQL, m.Version), schema))
		}
	}
	return b.String(), nil
}
