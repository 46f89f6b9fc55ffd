package store

import (
	"context"
	"fmt"
	"time"
)

// LeaseStore is the capability of short named leases (Capabilities.Leases):
// one holder at a time per name, for a chore one node should do for all of
// them, such as computing the cluster-wide gauges of the metrics (queue
// depth, the age of the oldest job, subscription lag), so that N workers do
// not each run the same aggregate query. A lease is held until its end,
// on the store's clock; its holder keeps it by acquiring it again before
// then, and anyone may take it once it has ended, so a dead node's chore
// moves within one lease.
type LeaseStore interface {
	// AcquireLease takes lease name for holder until ttl after now (by the
	// store's clock) when it is free, has ended, or is holder's already
	// (a renewal). It answers the lease as it stands after the call: Held
	// tells whether holder has it; otherwise Holder and Until name the
	// other holder and when its lease ends. name is a valid name, holder
	// is not empty, ttl is MinLeaseTTL..MaxLeaseTTL.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (*Lease, error)

	// ReleaseLease ends holder's lease on name now, so that another node
	// may take it at once (a node shutting down). It is a no-op when
	// holder does not hold it.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Lease is a named lease as it stands.
type Lease struct {
	Name   string
	Holder string    // who holds it
	Until  time.Time // when it ends, by the store's clock
	Held   bool      // the caller of AcquireLease holds it
}

// Bounds of a lease's ttl.
const (
	MinLeaseTTL = 100 * time.Millisecond
	MaxLeaseTTL = time.Hour
	// MaxLeaseHolder is the longest holder name, in bytes.
	MaxLeaseHolder = 200
)

// CheckLease validates the arguments of AcquireLease (ttl > 0) and
// ReleaseLease (ttl == 0).
func CheckLease(name, holder string, ttl time.Duration) error {
	if err := ValidName("lease", name, false); err != nil {
		return err
	}
	if holder == "" {
		return &ValidationError{Field: "lease holder", Reason: "is required"}
	}
	if len(holder) > MaxLeaseHolder {
		return &LimitError{Field: "lease holder", Limit: MaxLeaseHolder, Got: len(holder)}
	}
	if ttl != 0 && (ttl < MinLeaseTTL || ttl > MaxLeaseTTL) {
		return &ValidationError{Field: "lease ttl", Reason: fmt.Sprintf("%v is outside %v..%v", ttl, MinLeaseTTL, MaxLeaseTTL)}
	}
	return nil
}

// HealthChecker is the capability of checking that the store can serve
// (Capabilities.Health), for readiness probes.
type HealthChecker interface {
	// CheckHealth makes one round trip to the database and compares its
	// schema version with the one this build expects. It returns nil when
	// the database answers and its schema is current, an error matching
	// ErrSchema when the schema is at another version (migrated down, or
	// by a newer build), ErrClosed after Close, or the error of the round
	// trip.
	CheckHealth(ctx context.Context) error
}
