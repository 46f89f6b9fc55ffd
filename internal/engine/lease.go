package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/spoolrun/spool/store"
)

// LeaseDriver keeps named leases (store.LeaseStore, migration 0007). Its
// methods receive checked arguments and the store's now.
type LeaseDriver interface {
	// AcquireLease sets lease name to (holder, until) when it has no row,
	// its row is holder's, or its row's until is at or before now; in one
	// statement, so two callers never both take it. It returns the row as
	// it stands after the call.
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (rowHolder string, rowUntil time.Time, err error)

	// ReleaseLease deletes lease name if holder holds it.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// HealthDriver answers readiness checks (store.HealthChecker).
type HealthDriver interface {
	// SchemaVersion reads the newest applied migration in one round trip,
	// and returns the newest this build knows.
	SchemaVersion(ctx context.Context) (current, latest int, err error)
}

var (
	_ store.LeaseStore    = (*Store)(nil)
	_ store.HealthChecker = (*Store)(nil)
)

// leases returns the driver's lease storage, refusing a closed store.
func (e *Store) leases(ctx context.Context) (LeaseDriver, error) {
	if e.ld == nil {
		return nil, fmt.Errorf("%w: leases", store.ErrUnsupported)
	}
	return e.ld, e.start(ctx)
}

// AcquireLease implements store.LeaseStore. Times are kept to the
// microsecond, as both backends store them.
func (e *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (*store.Lease, error) {
	if ttl == 0 {
		return nil, &store.ValidationError{Field: "lease ttl", Reason: "is required"}
	}
	if err := store.CheckLease(name, holder, ttl); err != nil {
		return nil, err
	}
	ld, err := e.leases(ctx)
	if err != nil {
		return nil, err
	}
	now := keyTime(e.d.Now())
	h, until, err := ld.AcquireLease(ctx, name, holder, now, now.Add(ttl))
	if err != nil {
		return nil, err
	}
	return &store.Lease{Name: name, Holder: h, Until: until.UTC(), Held: h == holder && until.After(now)}, nil
}

// ReleaseLease implements store.LeaseStore.
func (e *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := store.CheckLease(name, holder, 0); err != nil {
		return err
	}
	ld, err := e.leases(ctx)
	if err != nil {
		return err
	}
	return ld.ReleaseLease(ctx, name, holder)
}

// CheckHealth implements store.HealthChecker.
func (e *Store) CheckHealth(ctx context.Context) error {
	if e.hd == nil {
		return fmt.Errorf("%w: health checks", store.ErrUnsupported)
	}
	if err := e.start(ctx); err != nil {
		return err
	}
	current, latest, err := e.hd.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if current != latest {
		return fmt.Errorf("%w: the database's schema is at version %d, this build expects %d (run spool migrate with the matching build)",
			store.ErrSchema, current, latest)
	}
	return nil
}
