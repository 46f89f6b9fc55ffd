package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"
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
