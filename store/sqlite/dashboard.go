package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

// Per-minute activity and the audit log (migration 0009): the engine
// checks what is added and decides when old minutes go; these are its
// narrow reads and writes. Activity is a light write: counts lost to a
// power failure only make a chart a little low.

var (
	_ engine.ActivityDriver = (*backend)(nil)
	_ engine.AuditDriver    = (*backend)(nil)
)

// Activity implements engine.Driver.
func (s *backend) Activity() engine.ActivityDriver { return s }

// Audit implements engine.Driver.
func (s *backend) Audit() engine.AuditDriver { return s }

// addActivitySQL adds one queue's counts to a minute's row.
var addActivitySQL = func() string {
	cols := "minute, queue, completed, failed, dead, " + strings.Join(engine.PickupColumns, ", ")
	set := []string{"completed = completed + excluded.completed", "failed = failed + excluded.failed", "dead = dead + excluded.dead"}
	for _, c := range engine.PickupColumns {
		set = append(set, c+" = "+c+" + excluded."+c)
	}
	return `INSERT INTO spool_activity (` + cols + `) VALUES (` + placeholders(5+store.NumPickupBuckets) + `)
	ON CONFLICT (minute, queue) DO UPDATE SET ` + strings.Join(set, ", ")
}()

// AddActivity implements engine.ActivityDriver.
func (s *backend) AddActivity(ctx context.Context, minute time.Time, counts []store.QueueActivity, pruneBefore time.Time) error {
	return s.writer.doLight(ctx, func(x execer) error {
		if !pruneBefore.IsZero() {
			if _, err := x.exec(`DELETE FROM spool_activity WHERE minute < ?`, pruneBefore.UnixMicro()); err != nil {
				return fmt.Errorf("spool: prune activity: %w", err)
			}
		}
		args := make([]any, 0, 5+store.NumPickupBuckets)
		for i := range counts {
			c := &counts[i]
			args = append(args[:0], minute.UnixMicro(), c.Queue, c.Completed, c.Failed, c.Dead)
			for _, n := range c.Pickup {
				args = append(args, n)
			}
			if _, err := x.exec(addActivitySQL, args...); err != nil {
				return fmt.Errorf("spool: add activity: %w", err)
			}
		}
		return nil
	}, nil)
}

// ListActivity implements engine.ActivityDriver.
func (s *backend) ListActivity(ctx context.Context, since time.Time, prefixes []string) ([]store.ActivityMinute, error) {
	w := &filter{}
	w.add("minute >= ?", since.UnixMicro())
	if len(prefixes) > 0 {
		var or []string
		for _, p := range prefixes {
			or = append(or, "substr(queue, 1, ?) = ?")
			w.args = append(w.args, len(p), p)
		}
		w.where = append(w.where, "("+strings.Join(or, " OR ")+")")
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT minute, queue, completed, failed, dead, `+strings.Join(engine.PickupColumns, ", ")+`
		FROM spool_activity WHERE `+w.sql()+` ORDER BY minute, queue`, w.args...)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	var out []store.ActivityMinute
	for rows.Next() {
		var a store.ActivityMinute
		var minute int64
		dest := []any{&minute, &a.Queue, &a.Completed, &a.Failed, &a.Dead}
		for i := range a.Pickup {
			dest = append(dest, &a.Pickup[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, s.readErr(err)
		}
		a.Minute = time.UnixMicro(minute).UTC()
		out = append(out, a)
	}
	return out, s.readErr(rows.Err())
}

// InsertAudit implements engine.AuditDriver.
func (s *backend) InsertAudit(ctx context.Context, e *store.AuditEntry) (int64, error) {
	var id int64
	err := s.writer.do(ctx, func(x execer) error {
		return x.queryRow(`INSERT INTO spool_audit (at, tenant, key_id, action, target, count, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			e.At.UnixMicro(), e.Tenant, e.KeyID, e.Action, e.Target, e.Count, e.Detail).Scan(&id)
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("spool: record audit: %w", err)
	}
	return id, nil
}

// ListAudit implements engine.AuditDriver.
func (s *backend) ListAudit(ctx context.Context, p store.AuditListParams) ([]*store.AuditEntry, error) {
	w := &filter{}
	if p.Tenant != store.AllTenants {
		w.add("tenant = ?", p.Tenant)
	}
	if p.Before > 0 {
		w.add("id < ?", p.Before)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, at, tenant, key_id, action, target, count, detail
		FROM spool_audit WHERE `+w.sql()+` ORDER BY id DESC LIMIT ?`, append(w.args, p.Limit)...)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	var out []*store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Tenant, &e.KeyID, &e.Action, &e.Target, &e.Count, &e.Detail); err != nil {
			return nil, s.readErr(err)
		}
		e.At = time.UnixMicro(at).UTC()
		out = append(out, &e)
	}
	return out, s.readErr(rows.Err())
}
