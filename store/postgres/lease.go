package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/engine"
)

// Named leases (store.LeaseStore, migration 0007) and the readiness check:
// the engine checks arguments and reads the clock (the database's); these
// are its narrow reads and writes.

var (
	_ engine.LeaseDriver  = (*backend)(nil)
	_ engine.HealthDriver = (*backend)(nil)
)

// The statements of leases. The upsert's WHERE is evaluated on the row's
// newest version after its lock is taken (READ COMMITTED's rule for ON
// CONFLICT DO UPDATE), so of two nodes racing for an ended lease one takes
// it and the other sees it taken. RETURNING has no row when the lease is
// someone else's; it is then read.
const (
	acquireLeaseSQL = `INSERT INTO {schema}.leases AS l (name, holder, until) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE l.holder = excluded.holder OR l.until <= $4
RETURNING holder, until`
	getLeaseSQL      = `SELECT holder, until FROM {schema}.leases WHERE name = $1`
	releaseLeaseSQL  = `DELETE FROM {schema}.leases WHERE name = $1 AND holder = $2`
	schemaVersionSQL = `SELECT coalesce(max(version), 0) FROM {schema}.migrations`
)

// leaseQueries are the statements of leases rendered for one schema.
type leaseQueries struct {
	acquire, get, release, version string
}

func newLeaseQueries(schema string) *leaseQueries {
	r := func(s string) string { return render(s, schema) }
	return &leaseQueries{acquire: r(acquireLeaseSQL), get: r(getLeaseSQL), release: r(releaseLeaseSQL), version: r(schemaVersionSQL)}
}

// Leases implements engine.Driver.
func (s *backend) Leases() engine.LeaseDriver { return s }

// Health implements engine.Driver.
func (s *backend) Health() engine.HealthDriver { return s }

// AcquireLease implements engine.LeaseDriver.
func (s *backend) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (string, time.Time, error) {
	if err := s.start(ctx); err != nil {
		return "", time.Time{}, err
	}
	var (
		h string
		u time.Time
	)
	err := s.pool.QueryRow(ctx, s.q.leases.acquire, name, holder, until, now).Scan(&h, &u)
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.pool.QueryRow(ctx, s.q.leases.get, name).Scan(&h, &u)
		if errors.Is(err, pgx.ErrNoRows) {
			// Released between the two statements: free, but not taken.
			return "", time.Time{}, nil
		}
	}
	if err != nil {
		return "", time.Time{}, s.fail(ctx, "acquire lease", err)
	}
	return h, u.UTC(), nil
}

// ReleaseLease implements engine.LeaseDriver.
func (s *backend) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, s.q.leases.release, name, holder); err != nil {
		return s.fail(ctx, "release lease", err)
	}
	return nil
}

// SchemaVersion implements engine.HealthDriver.
func (s *backend) SchemaVersion(ctx context.Context) (current, latest int, err error) {
	if err := s.start(ctx); err != nil {
		return 0, 0, err
	}
	if err := s.pool.QueryRow(ctx, s.q.leases.version).Scan(&current); err != nil {
		return 0, 0, s.fail(ctx, "check health", err)
	}
	return current, LatestVersion(), nil
}
