package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// The API keys of spool serve (store.KeyStore, migration 0005): the engine
// checks keys and sets their times; these are its narrow reads and writes.
// Writes go through the writer like every other write, and are answered
// once they are durable.

var _ engine.KeyDriver = (*backend)(nil)

// Keys implements engine.Driver.
func (s *backend) Keys() engine.KeyDriver { return s }

// keyColumns is the column list every key read returns, in scanKey's order.
const keyColumns = `id, tenant, role, queues, name, created_at, expires_at, revoked_at, sqs_secret`

// InsertKey implements engine.KeyDriver.
func (s *backend) InsertKey(ctx context.Context, k *store.APIKey) (bool, error) {
	var inserted bool
	err := s.writer.do(ctx, func(x execer) error {
		res, err := x.exec(`INSERT INTO spool_api_keys (id, hash, tenant, role, queues, name, created_at, expires_at, revoked_at, sqs_secret)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			k.ID, k.Hash, k.Tenant, k.Role, nullString(string(engine.EncodeKeyQueues(k.Queues))), k.Name,
			k.CreatedAt.UnixMicro(), micros(k.ExpiresAt), micros(k.RevokedAt), nullString(k.SQSSecret))
		if err != nil {
			return fmt.Errorf("spool: create api key: %w", err)
		}
		n, err := res.RowsAffected()
		inserted = n == 1
		return err
	}, nil)
	return inserted, err
}

// GetKey implements engine.KeyDriver.
func (s *backend) GetKey(ctx context.Context, id string) (*store.APIKey, error) {
	var hash []byte
	k, err := scanKey(s.rdb.QueryRowContext(ctx, `SELECT `+keyColumns+`, hash FROM spool_api_keys WHERE id = ?`, id), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.readErr(err)
	}
	k.Hash = hash
	return k, nil
}

// ListKeys implements engine.KeyDriver.
func (s *backend) ListKeys(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+keyColumns+` FROM spool_api_keys ORDER BY id`)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	var out []*store.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, s.readErr(err)
		}
		out = append(out, k)
	}
	return out, s.readErr(rows.Err())
}

// RevokeKey implements engine.KeyDriver.
func (s *backend) RevokeKey(ctx context.Context, id string, at time.Time) (bool, error) {
	var found bool
	err := s.writer.do(ctx, func(x execer) error {
		res, err := x.exec(`UPDATE spool_api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, at.UnixMicro(), id)
		if err != nil {
			return fmt.Errorf("spool: revoke api key: %w", err)
		}
		n, err := res.RowsAffected()
		found = n == 1
		return err
	}, nil)
	return found, err
}

// scanKey reads the columns of keyColumns, then extra.
func scanKey(r interface{ Scan(...any) error }, extra ...any) (*store.APIKey, error) {
	var (
		k                store.APIKey
		queues           sql.NullString
		created          int64
		expires, revoked sql.NullInt64
		sqsSecret        sql.NullString
	)
	dest := append([]any{&k.ID, &k.Tenant, &k.Role, &queues, &k.Name, &created, &expires, &revoked, &sqsSecret}, extra...)
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	var err error
	if k.Queues, err = engine.DecodeKeyQueues(k.ID, []byte(queues.String)); err != nil {
		return nil, err
	}
	k.CreatedAt = time.UnixMicro(created).UTC()
	k.ExpiresAt, k.RevokedAt = fromMicros(expires), fromMicros(revoked)
	k.SQSSecret = sqsSecret.String
	return &k, nil
}
