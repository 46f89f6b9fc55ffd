package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// Per-minute activity and the audit log (migration 0009): the engine
// checks what is added and decides when old minutes go; these are its
// narrow reads and writes. Adding activity is one round trip that commits
// without waiting for the WAL flush: counts lost in a crash only make a
// chart a little low.

var (
	_ engine.ActivityDriver = (*backend)(nil)
	_ engine.AuditDriver    = (*backend)(nil)
)

// Activity implements engine.Driver.
func (s *backend) Activity() engine.ActivityDriver { return s }

// Audit implements engine.Driver.
func (s *backend) Audit() engine.AuditDriver { return s }

// addActivitySQL adds counts to the rows of minute $1: one row per queue
// of $2, with completed, failed and dead from $3..$5 and the pickup
// buckets from $6, NumPickupBuckets per queue in order.
var addActivitySQL = func() string {
	var pick, set []string
	for i, c := range engine.PickupColumns {
		pick = append(pick, "($6::bigint[])[(t.n - 1) * "+strconv.Itoa(store.NumPickupBuckets)+" + "+strconv.Itoa(i+1)+"]")
		set = append(set, c+" = a."+c+" + excluded."+c)
	}
	return `INSERT INTO {schema}.activity AS a (minute, queue, completed, failed, dead, ` + strings.Join(engine.PickupColumns, ", ") + `)
SELECT $1, t.queue, t.completed, t.failed, t.dead, ` + strings.Join(pick, ", ") + `
FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS t(queue, completed, failed, dead, n)
ON CONFLICT (minute, queue) DO UPDATE SET completed = a.completed + excluded.completed, failed = a.failed + excluded.failed,
	dead = a.dead + excluded.dead, ` + strings.Join(set, ", ")
}()

// The other statements of activity and the audit log.
const (
	pruneActivitySQL = `DELETE FROM {schema}.activity WHERE minute < $1`
	insertAuditSQL   = `INSERT INTO {schema}.audit (at, tenant, key_id, action, target, count, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`
)

// AddActivity implements engine.ActivityDriver.
func (s *backend) AddActivity(ctx context.Context, minute time.Time, counts []store.QueueActivity, pruneBefore time.Time) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	queues := make([]string, len(counts))
	completed, failed, dead := make([]int64, len(counts)), make([]int64, len(counts)), make([]int64, len(counts))
	pickup := make([]int64, 0, len(counts)*store.NumPickupBuckets)
	for i, c := range counts {
		queues[i], completed[i], failed[i], dead[i] = c.Queue, c.Completed, c.Failed, c.Dead
		pickup = append(pickup, c.Pickup[:]...)
	}
	b := &pgx.Batch{}
	b.Queue(lightSQL)
	if !pruneBefore.IsZero() {
		b.Queue(render(pruneActivitySQL, s.schema), pruneBefore)
	}
	b.Queue(render(addActivitySQL, s.schema), minute, queues, completed, failed, dead, pickup)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return s.fail(ctx, "add activity", err)
	}
	return nil
}

// ListActivity implements engine.ActivityDriver.
func (s *backend) ListActivity(ctx context.Context, since time.Time, prefixes []string) ([]store.ActivityMinute, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	w := &filter{}
	w.add("minute >= " + w.param(since))
	if len(prefixes) > 0 {
		w.add("queue ^@ ANY(" + w.param(prefixes) + "::text[])") // starts with one of them
	}
	rows, err := s.pool.Query(ctx, render(`SELECT minute, queue, completed, failed, dead, `+strings.Join(engine.PickupColumns, ", ")+`
FROM {schema}.activity WHERE `+w.sql()+` ORDER BY minute, queue`, s.schema), w.args...)
	if err != nil {
		return nil, s.fail(ctx, "activity", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.ActivityMinute, error) {
		var a store.ActivityMinute
		dest := []any{&a.Minute, &a.Queue, &a.Completed, &a.Failed, &a.Dead}
		for i := range a.Pickup {
			dest = append(dest, &a.Pickup[i])
		}
		err := r.Scan(dest...)
		a.Minute = a.Minute.UTC()
		return a, err
	})
	if err != nil {
		return nil, s.fail(ctx, "activity", err)
	}
	return out, nil
}

// InsertAudit implements engine.AuditDriver.
func (s *backend) InsertAudit(ctx context.Context, e *store.AuditEntry) (int64, error) {
	if err := s.start(ctx); err != nil {
		return 0, err
	}
	var id int64
	if err := s.pool.QueryRow(ctx, render(insertAuditSQL, s.schema), e.At, e.Tenant, e.KeyID, e.Action, e.Target, e.Count, e.Detail).Scan(&id); err != nil {
		return 0, s.fail(ctx, "record audit", err)
	}
	return id, nil
}

// ListAudit implements engine.AuditDriver.
func (s *backend) ListAudit(ctx context.Context, p store.AuditListParams) ([]*store.AuditEntry, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	w := &filter{}
	if p.Tenant != store.AllTenants {
		w.add("tenant = " + w.param(p.Tenant))
	}
	if p.Before > 0 {
		w.add("id < " + w.param(p.Before))
	}
	rows, err := s.pool.Query(ctx, render(`SELECT id, at, tenant, key_id, action, target, count, detail
FROM {schema}.audit WHERE `+w.sql()+` ORDER BY id DESC LIMIT `+w.param(p.Limit), s.schema), w.args...)
	if err != nil {
		return nil, s.fail(ctx, "list audit", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*store.AuditEntry, error) {
		var e store.AuditEntry
		var count int64
		err := r.Scan(&e.ID, &e.At, &e.Tenant, &e.KeyID, &e.Action, &e.Target, &count, &e.Detail)
		e.At, e.Count = e.At.UTC(), int(count)
		return &e, err
	})
	if err != nil {
		return nil, s.fail(ctx, "list audit", err)
	}
	return out, nil
}
