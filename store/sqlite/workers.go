package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// The workers online (store.WorkerStore, migration 0008): the engine checks
// entries and stamps their times; these are its narrow reads and writes.
// Heartbeats are light writes: one lost to a power failure is made good by
// the next.

var _ engine.WorkerDriver = (*backend)(nil)

// Workers implements engine.Driver.
func (s *backend) Workers() engine.WorkerDriver { return s }

// UpsertWorker implements engine.WorkerDriver.
func (s *backend) UpsertWorker(ctx context.Context, w *store.WorkerInfo) error {
	return s.writer.doLight(ctx, func(x execer) error {
		if _, err := x.exec(`INSERT INTO spool_workers (id, host, pid, version, queues, tenant, busy, slots, started_at, seen_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, version = excluded.version,
				queues = excluded.queues, tenant = excluded.tenant, busy = excluded.busy, slots = excluded.slots,
				started_at = excluded.started_at, seen_at = excluded.seen_at, expires_at = excluded.expires_at`,
			w.ID, w.Host, w.PID, w.Version, nullString(string(engine.EncodeWorkerQueues(w.Queues))), w.Tenant, w.Busy, w.Slots,
			w.StartedAt.UnixMicro(), w.SeenAt.UnixMicro(), w.ExpiresAt.UnixMicro()); err != nil {
			return fmt.Errorf("spool: heartbeat: %w", err)
		}
		if _, err := x.exec(`DELETE FROM spool_workers WHERE expires_at < ?`, w.SeenAt.UnixMicro()); err != nil {
			return fmt.Errorf("spool: heartbeat: expire workers: %w", err)
		}
		return nil
	}, nil)
}

// ListWorkers implements engine.WorkerDriver.
func (s *backend) ListWorkers(ctx context.Context, now time.Time) ([]*store.WorkerInfo, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, host, pid, version, queues, tenant, busy, slots, started_at, seen_at, expires_at
		FROM spool_workers WHERE expires_at > ? ORDER BY id`, now.UnixMicro())
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	var out []*store.WorkerInfo
	for rows.Next() {
		var (
			w                     store.WorkerInfo
			queues                sql.NullString
			started, seen, expire int64
		)
		if err := rows.Scan(&w.ID, &w.Host, &w.PID, &w.Version, &queues, &w.Tenant, &w.Busy, &w.Slots, &started, &seen, &expire); err != nil {
			return nil, s.readErr(err)
		}
		if w.Queues, err = engine.DecodeWorkerQueues(w.ID, []byte(queues.String)); err != nil {
			return nil, err
		}
		w.StartedAt, w.SeenAt, w.ExpiresAt = time.UnixMicro(started).UTC(), time.UnixMicro(seen).UTC(), time.UnixMicro(expire).UTC()
		out = append(out, &w)
	}
	return out, s.readErr(rows.Err())
}

// DeleteWorker implements engine.WorkerDriver.
func (s *backend) DeleteWorker(ctx context.Context, id string) error {
	return s.writer.doLight(ctx, func(x execer) error {
		if _, err := x.exec(`DELETE FROM spool_workers WHERE id = ?`, id); err != nil {
			return fmt.Errorf("spool: remove worker: %w", err)
		}
		return nil
	}, nil)
}
