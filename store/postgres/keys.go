package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// The API keys of spool serve (store.KeyStore, migration 0005): the engine
// checks keys and sets their times; these are its narrow reads and writes,
// one statement each.

var _ engine.KeyDriver = (*backend)(nil)

// Keys implements engine.Driver.
func (s *backend) Keys() engine.KeyDriver { return s }

// keyColumns is the column list every key read returns, in scanKey's order.
const keyColumns = `id, tenant, role, queues, name, created_at, expires_at, revoked_at, coalesce(sqs_secret, '')`

// The statements of API keys.
const (
	insertKeySQL = `INSERT INTO {schema}.api_keys (id, hash, tenant, role, queues, name, created_at, expires_at, revoked_at, sqs_secret)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10, '')) ON CONFLICT (id) DO NOTHING`
	getKeySQL    = `SELECT ` + keyColumns + `, hash FROM {schema}.api_keys WHERE id = $1`
	listKeysSQL  = `SELECT ` + keyColumns + ` FROM {schema}.api_keys ORDER BY id`
	revokeKeySQL = `UPDATE {schema}.api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1`
)

// keyQueries are the statements of API keys rendered for one schema.
type keyQueries struct {
	insert, get, list, revoke string
}

func newKeyQueries(schema string) *keyQueries {
	r := func(s string) string { return render(s, schema) }
	return &keyQueries{insert: r(insertKeySQL), get: r(getKeySQL), list: r(listKeysSQL), revoke: r(revokeKeySQL)}
}

// InsertKey implements engine.KeyDriver.
func (s *backend) InsertKey(ctx context.Context, k *store.APIKey) (bool, error) {
	if err := s.start(ctx); err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, s.q.keys.insert, k.ID, k.Hash, k.Tenant, k.Role, engine.EncodeKeyQueues(k.Queues), k.Name,
		k.CreatedAt, stampOf(k.ExpiresAt), stampOf(k.RevokedAt), k.SQSSecret)
	if err != nil {
		return false, s.fail(ctx, "create api key", err)
	}
	return tag.RowsAffected() == 1, nil
}

// GetKey implements engine.KeyDriver.
func (s *backend) GetKey(ctx context.Context, id string) (*store.APIKey, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	var hash []byte
	k, err := scanKey(s.pool.QueryRow(ctx, s.q.keys.get, id), &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail(ctx, "get api key", err)
	}
	k.Hash = hash
	return k, nil
}

// ListKeys implements engine.KeyDriver.
func (s *backend) ListKeys(ctx context.Context) ([]*store.APIKey, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, s.q.keys.list)
	if err != nil {
		return nil, s.fail(ctx, "list api keys", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.APIKey, error) { return scanKey(r) })
	if err != nil {
		return nil, s.fail(ctx, "list api keys", err)
	}
	return keys, nil
}

// RevokeKey implements engine.KeyDriver.
func (s *backend) RevokeKey(ctx context.Context, id string, at time.Time) (bool, error) {
	if err := s.start(ctx); err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, s.q.keys.revoke, id, at)
	if err != nil {
		return false, s.fail(ctx, "revoke api key", err)
	}
	return tag.RowsAffected() == 1, nil
}

// scanKey reads the columns of keyColumns, then extra.
func scanKey(r pgx.Row, extra ...any) (*store.APIKey, error) {
	var (
		k                store.APIKey
		queues           []byte
		expires, revoked *time.Time
	)
	dest := append([]any{&k.ID, &k.Tenant, &k.Role, &queues, &k.Name, &k.CreatedAt, &expires, &revoked, &k.SQSSecret}, extra...)
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	var err error
	if k.Queues, err = engine.DecodeKeyQueues(k.ID, queues); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	if expires != nil {
		k.ExpiresAt = expires.UTC()
	}
	if revoked != nil {
		k.RevokedAt = revoked.UTC()
	}
	return &k, nil
}
