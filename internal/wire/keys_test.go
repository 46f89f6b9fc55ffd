package wire_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

func TestKeyView(t *testing.T) {
	t.Parallel()
	k := &store.APIKey{ID: "k0123456789", Hash: []byte("secret hash!"), Tenant: "acme", Role: store.RoleWorker,
		Queues: []string{"mail", "billing"}, Name: "billing workers", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), RevokedAt: t0.Add(time.Minute)}
	golden(t, wire.KeyOf(k), `{"id": "k0123456789", "tenant": "acme", "role": "worker", "queues": ["mail", "billing"],
		"name": "billing workers", "created_at": "2030-01-02T02:04:05Z", "expires_at": "2030-01-02T03:04:05Z",
		"revoked_at": "2030-01-02T02:05:05Z", "sqs": false}`)
	// An operator's key on every queue, that never expires and is not
	// revoked.
	// It may use the SQS facade: the view says so, without its secret.
	op := &store.APIKey{ID: "kop", Hash: []byte("h"), Tenant: store.AllTenants, Role: store.RoleAdmin, CreatedAt: t0, SQSSecret: "the-sqs-secret"}
	golden(t, wire.KeysOf([]*store.APIKey{op}), `[{"id": "kop", "tenant": "*", "role": "admin", "queues": [], "name": "",
		"created_at": "2030-01-02T02:04:05Z", "sqs": true}]`)
	b, _ := json.Marshal(wire.KeysOf([]*store.APIKey{k, op}))
	if strings.Contains(string(b), "hash") || strings.Contains(string(b), "secret") {
		t.Fatalf("the view shows the hash: %s", b)
	}
}
