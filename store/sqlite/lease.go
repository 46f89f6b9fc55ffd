package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/spoolrun/spool/internal/engine"
)

// Named leases (store.LeaseStore, migration 0007) and the readiness check:
// the engine checks arguments and reads the clock; these are its narrow
// reads and writes. A lease write is light (answered at its commit, before
// the fsync): losing one in a power failure only frees the lease early.

var (
	_ engine.LeaseDriver  = (*backend)(nil)
	_ engine.HealthDriver = (*backend)(nil)
)

// Leases implements engine.Driver.
func (s *backend) Leases() engine.LeaseDriver { return s }

// Health implements engine.Driver.
func (s *backend) Health() engine.HealthDriver { return s }

// AcquireLease implements engine.LeaseDriver.
func (s *backend) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (string, time.Time, error) {
	var (
		h string
		u int64
	)
	err := s.writer.doLight(ctx, func(x execer) error {
		if _, err := x.exec(`INSERT INTO spool_leases (name, holder, until) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE spool_leases.holder = excluded.holder OR spool_leases.until <= ?`,
			name, holder, until.UnixMicro(), now.UnixMicro()); err != nil {
			return fmt.Errorf("spool: acquire lease: %w", err)
		}
		return x.queryRow(`SELECT holder, until FROM spool_leases WHERE name = ?`, name).Scan(&h, &u)
	}, nil)
	if err != nil {
		return "", time.Time{}, err
	}
	return h, time.UnixMicro(u).UTC(), nil
}

// ReleaseLease implements engine.LeaseDriver.
func (s *backend) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.writer.doLight(ctx, func(x execer) error {
		if _, err := x.exec(`DELETE FROM spool_leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
			return fmt.Errorf("spool: release lease: %w", err)
		}
		return nil
	}, nil)
}

// SchemaVersion implements engine.HealthDriver: one read on the read pool.
func (s *backend) SchemaVersion(ctx context.Context) (current, latest int, err error) {
	if err := s.rdb.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM spool_migrations`).Scan(&current); err != nil {
		return 0, 0, s.readErr(err)
	}
	return current, LatestVersion(), nil
}
