package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// The workers online (store.WorkerStore, migration 0008): the engine checks
// entries and stamps their times; these are its narrow reads and writes.
// A heartbeat is one round trip: the upsert and the expiry of dead
// entries pipelined in one implicit transaction, committed without
// waiting for the WAL flush (a heartbeat lost in a crash is made good by
// the next).

var _ engine.WorkerDriver = (*backend)(nil)

// Workers implements engine.Driver.
func (s *backend) Workers() engine.WorkerDriver { return s }

// The statements of workers online.
const (
	upsertWorkerSQL = `INSERT INTO {schema}.workers (id, host, pid, version, queues, tenant, busy, slots, started_at, seen_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, version = excluded.version,
	queues = excluded.queues, tenant = excluded.tenant, busy = excluded.busy, slots = excluded.slots,
	started_at = excluded.started_at, seen_at = excluded.seen_at, expires_at = excluded.expires_at`
	expireWorkersSQL = `DELETE FROM {schema}.workers WHERE expires_at < $1`
	listWorkersSQL   = `SELECT id, host, pid, version, queues, tenant, busy, slots, started_at, seen_at, expires_at
FROM {schema}.workers WHERE expires_at > $1 ORDER BY id`
	deleteWorkerSQL = `DELETE FROM {schema}.workers WHERE id = $1`
)

// workerQueries are the statements of workers online rendered for one schema.
type workerQueries struct {
	upsert, expire, list, del string
}

func newWorkerQueries(schema string) *workerQueries {
	r := func(s string) string { return render(s, schema) }
	return &workerQueries{upsert: r(upsertWorkerSQL), expire: r(expireWorkersSQL), list: r(listWorkersSQL), del: r(deleteWorkerSQL)}
}

// UpsertWorker implements engine.WorkerDriver.
func (s *backend) UpsertWorker(ctx context.Context, w *store.WorkerInfo) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	var queues *string
	if b := engine.EncodeWorkerQueues(w.Queues); b != nil {
		q := string(b)
		queues = &q
	}
	b := &pgx.Batch{}
	b.Queue(lightSQL)
	b.Queue(s.q.workers.upsert, w.ID, w.Host, w.PID, w.Version, queues, w.Tenant, w.Busy, w.Slots, w.StartedAt, w.SeenAt, w.ExpiresAt)
	b.Queue(s.q.workers.expire, w.SeenAt)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return s.fail(ctx, "heartbeat", err)
	}
	return nil
}

// ListWorkers implements engine.WorkerDriver.
func (s *backend) ListWorkers(ctx context.Context, now time.Time) ([]*store.WorkerInfo, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, s.q.workers.list, now)
	if err != nil {
		return nil, s.fail(ctx, "list workers", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.WorkerInfo, error) {
		var (
			w      store.WorkerInfo
			queues []byte
			pid    int32
			busy   int32
			slots  int32
		)
		if err := r.Scan(&w.ID, &w.Host, &pid, &w.Version, &queues, &w.Tenant, &busy, &slots, &w.StartedAt, &w.SeenAt, &w.ExpiresAt); err != nil {
			return nil, err
		}
		w.PID, w.Busy, w.Slots = int(pid), int(busy), int(slots)
		w.StartedAt, w.SeenAt, w.ExpiresAt = w.StartedAt.UTC(), w.SeenAt.UTC(), w.ExpiresAt.UTC()
		var err error
		w.Queues, err = engine.DecodeWorkerQueues(w.ID, queues)
		return &w, err
	})
	if err != nil {
		return nil, s.fail(ctx, "list workers", err)
	}
	return out, nil
}

// DeleteWorker implements engine.WorkerDriver.
func (s *backend) DeleteWorker(ctx context.Context, id string) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, s.q.workers.del, id); err != nil {
		return s.fail(ctx, "remove worker", err)
	}
	return nil
}
