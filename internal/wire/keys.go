package wire

import (
	"time"

	"github.com/spoolrun/spool/store"
)

// APIKey is how an API key of spool serve looks in JSON output. It never
// carries the key's hash, let alone its secret. Tenant is "*" for a key that
// acts on every tenant and "" for the default tenant; queues is empty when
// the key may use every queue. Times are RFC 3339 in UTC, expires_at and
// revoked_at absent when unset.
type APIKey struct {
	ID        string     `json:"id"`
	Tenant    string     `json:"tenant"`
	Role      string     `json:"role"`
	Queues    []string   `json:"queues"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// SQS tells whether the key may call the SQS facade (made with
	// --sqs); its secret is never shown here.
	SQS bool `json:"sqs"`
}

// KeyOf returns the view of an API key.
func KeyOf(k *store.APIKey) APIKey {
	queues := []string{}
	queues = append(queues, k.Queues...)
	return APIKey{
		ID:        k.ID,
		Tenant:    k.Tenant,
		Role:      k.Role,
		Queues:    queues,
		Name:      k.Name,
		CreatedAt: k.CreatedAt.UTC(),
		ExpiresAt: timePtr(k.ExpiresAt),
		RevokedAt: timePtr(k.RevokedAt),
		SQS:       k.SQSSecret != "",
	}
}

// KeysOf returns the views of API keys.
func KeysOf(keys []*store.APIKey) []APIKey {
	out := make([]APIKey, len(keys))
	for i, k := range keys {
		out[i] = KeyOf(k)
	}
	return out
}
