package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// KeyStore is the capability of keeping the API keys of spool serve next to
// the jobs (Capabilities.Keys), so every server on one database accepts the
// same keys. A key is stored by its ID with a hash of its secret, never the
// secret itself: the secret is shown once, when the key is made.
type KeyStore interface {
	// CreateKey stores a new key. Its ID must be new (ErrDuplicate
	// otherwise); CreatedAt is set by the store when zero.
	CreateKey(ctx context.Context, k APIKey) (*APIKey, error)

	// GetKey returns one key, revoked or not, with its hash and SQS
	// secret, or ErrNotFound.
	GetKey(ctx context.Context, id string) (*APIKey, error)

	// ListKeys returns every key, revoked ones included, in ID order, with
	// their hashes cleared and their SQS secrets replaced by
	// SQSSecretHidden (set) or "" (none), so a listing tells which keys may
	// use the SQS facade without revealing their secrets.
	ListKeys(ctx context.Context) ([]*APIKey, error)

	// RevokeKey marks a key revoked from now on; revoking it again is a
	// no-op. ErrNotFound for an unknown ID.
	RevokeKey(ctx context.Context, id string) error
}

// Key roles, from least to most able. A reader reads; a producer also
// enqueues, publishes and waits on its jobs; a worker also claims, renews
// and settles; an admin does everything within its tenant.
const (
	RoleReader   = "reader"
	RoleProducer = "producer"
	RoleWorker   = "worker"
	RoleAdmin    = "admin"
)

// SQSSecretHidden stands for a key's SQS secret in ListKeys: the key has
// one, which the listing does not show.
const SQSSecretHidden = "*"

// AllTenants is the tenant of a key that acts on every tenant: an
// operator's key.
const AllTenants = "*"

// APIKey is one stored API key.
type APIKey struct {
	// ID names the key in lists and in its secret; public.
	ID string
	// Hash is the SHA-256 of the key's secret part.
	Hash []byte
	// Tenant is the one tenant the key sees and touches, or AllTenants.
	Tenant string
	// Role is one of RoleReader, RoleProducer, RoleWorker, RoleAdmin.
	Role string
	// Queues, when set, are the only queues the key may use.
	Queues []string
	// Name is a note for people ("billing workers").
	Name      string
	CreatedAt time.Time
	// ExpiresAt is when the key stops working; zero: never.
	ExpiresAt time.Time
	// RevokedAt is when the key was revoked; zero: it was not.
	RevokedAt time.Time
	// SQSSecret is the secret access key AWS SDKs sign requests to spool
	// serve's SQS facade with (SigV4, with the key's ID as the access key
	// ID); empty: the key may not use the facade. It is derived from the
	// key's secret by a one-way function (internal/apikey.SQSSecret) and
	// stored as it is, since the server must compute signatures with it:
	// reading the store reveals it, which grants the key's access through
	// the SQS facade but not through the /v1 API (docs/sqs.md).
	SQSSecret string
}

// Check validates a key before it is stored.
func (k *APIKey) Check() error {
	if err := ValidName("key id", k.ID, false); err != nil {
		return err
	}
	if len(k.Hash) == 0 {
		return &ValidationError{Field: "key hash", Reason: "is required"}
	}
	if k.Tenant != AllTenants {
		if err := ValidName("tenant", k.Tenant, true); err != nil {
			return err
		}
		// A tenant's names are stored under "tenant/" (and its deliveries
		// under "sub/tenant/"), which must not be read as another's.
		if strings.Contains(k.Tenant, "/") || k.Tenant == strings.TrimSuffix(SubscriptionQueuePrefix, "/") {
			return &ValidationError{Field: "tenant", Reason: fmt.Sprintf("%q may not contain / nor be %q for a key", k.Tenant, "sub")}
		}
	}
	switch k.Role {
	case RoleReader, RoleProducer, RoleWorker, RoleAdmin:
	default:
		return &ValidationError{Field: "role", Reason: fmt.Sprintf("%q is not one of admin, producer, worker, reader", k.Role)}
	}
	for _, q := range k.Queues {
		if err := ValidName("queue", q, false); err != nil {
			return err
		}
	}
	if len(k.Name) > MaxNameLen {
		return &LimitError{Field: "key name length", Limit: MaxNameLen, Got: len(k.Name)}
	}
	if len(k.SQSSecret) > MaxNameLen || !textOK(k.SQSSecret) {
		return &ValidationError{Field: "sqs secret", Reason: fmt.Sprintf("must be text of at most %d bytes", MaxNameLen)}
	}
	return nil
}

// Usable reports whether the key works at now: not revoked, not expired.
func (k *APIKey) Usable(now time.Time) bool {
	return k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}
