package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spoolrun/spool/internal/migration"
	"github.com/spoolrun/spool/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned schema change.
type Migration = migration.Migration

// Migrations returns the embedded migrations in version order.
func Migrations() []Migration { return migration.MustRead(migrationFiles, "migrations") }

// migrate brings the schema to the newest embedded version in one immediate
// transaction, so concurrent openers in several processes apply it once.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil) // _txlock=immediate: takes the write lock
	if err != nil {
		return fmt.Errorf("spool: migrate: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS spool_migrations (
		version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("spool: migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM spool_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("spool: migrate: %w", err)
	}
	all := Migrations()
	latest := all[len(all)-1].Version
	if current > latest {
		return fmt.Errorf("%w: the file is at version %d, this build knows up to %d; upgrade spool", store.ErrSchema, current, latest)
	}
	for _, m := range all {
		if m.Version <= current {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.Up); err != nil {
			return fmt.Errorf("spool: migration %d (%s): %w", m.Version, m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO spool_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("spool: migration %d: %w", m.Version, err)
		}
		log.Info("spool: applied migration", "version", m.Version, "name", m.Name)
	}
	return tx.Commit()
}

// LatestVersion returns the newest schema version this build knows.
func LatestVersion() int {
	all := Migrations()
	return all[len(all)-1].Version
}

// AppliedMigration is a migration recorded in a file's spool_migrations
// table.
type AppliedMigration = migration.Applied

// Status describes a file's migrations.
type Status struct {
	Path    string
	Current int // newest applied version; 0 when none
	Latest  int // newest version this build knows
	Applied []AppliedMigration
	Pending []Migration // known versions above Current, in order
}

// Step is one migration Migrate applied. SQLite files are never migrated
// down, so every step is an up step.
type Step = migration.Step

// MigrationStatus reports which migrations the file at path has and which
// it lacks. It opens the file read-only and changes nothing. A file that
// does not exist is a *store.NotFoundError (Resource "store"), matching
// store.ErrNotFound: unlike a PostgreSQL schema, it is not created until the
// store is opened.
func MigrationStatus(ctx context.Context, path string) (*Status, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, &store.NotFoundError{Resource: "store", Name: path}
	}
	all := Migrations()
	st := &Status{Path: path, Latest: all[len(all)-1].Version}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	defer db.Close()
	var exists int
	if err := db.QueryRowContext(ctx, migrationsTableExistsSQL).Scan(&exists); err != nil {
		return nil, fmt.Errorf("spool: read %s: %w", path, err)
	}
	if exists > 0 {
		if st.Applied, err = appliedMigrations(ctx, db); err != nil {
			return nil, fmt.Errorf("spool: read %s: %w", path, err)
		}
	}
	if n := len(st.Applied); n > 0 {
		st.Current = st.Applied[n-1].Version
	}
	for _, m := range all {
		if m.Version > st.Current {
			st.Pending = append(st.Pending, m)
		}
	}
	return st, nil
}

// Statements MigrationStatus reads the migrations table with.
const (
	migrationsTableExistsSQL = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spool_migrations'`
	appliedMigrationsSQL     = `SELECT version, name, applied_at FROM spool_migrations ORDER BY version`
)

func appliedMigrations(ctx context.Context, db *sql.DB) ([]AppliedMigration, error) {
	rows, err := db.QueryContext(ctx, appliedMigrationsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AppliedMigration
	for rows.Next() {
		var m AppliedMigration
		var micros int64
		if err := rows.Scan(&m.Version, &m.Name, &micros); err != nil {
			return nil, err
		}
		m.AppliedAt = time.UnixMicro(micros).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// Migrate brings the file at path to the newest schema version, creating
// the file if needed, as opening a Store does, and returns the migrations it
// applied (none when the file was up to date). It refuses a file newer than
// this build knows with an error matching store.ErrSchema. log receives a
// message per migration applied; nil discards them.
func Migrate(ctx context.Context, path string, log *slog.Logger) ([]Step, error) {
	if path == "" {
		return nil, &store.ValidationError{Field: "path", Reason: "is empty"}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	current := 0
	before, err := MigrationStatus(ctx, path)
	switch {
	case err == nil:
		current = before.Current
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	db, err := sql.Open("sqlite", DSN(path, 0))
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	defer db.Close()
	if err := migrate(ctx, db, log); err != nil {
		return nil, err
	}
	var steps []Step
	for _, m := range Migrations() {
		if m.Version > current {
			steps = append(steps, Step{Version: m.Version, Name: m.Name})
		}
	}
	return steps, nil
}

// MigrationSQL returns the SQL of the migrations that move a file from
// version from to version to (the down scripts when to is below from), for
// reading: SQLite files migrate themselves when a Store opens them. It does
// not look at any file.
func MigrationSQL(from, to int) (string, error) {
	all := Migrations()
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
	return b.String(), nil
}
