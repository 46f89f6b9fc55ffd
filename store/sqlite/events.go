package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

var _ engine.EventDriver = (*backend)(nil)

// Events implements engine.Driver.
func (s *backend) Events() engine.EventDriver { return s }

const eventColumns = `topic, position, id, kind, key, version, tenant, headers, payload, published_at`

func scanEvent(r scanner) (*store.Event, error) {
	var (
		e       store.Event
		key     sql.NullString
		version sql.NullInt64
		headers sql.NullString
		at      int64
	)
	if err := r.Scan(&e.Topic, &e.Position, &e.ID, &e.Kind, &key, &version, &e.Tenant, &headers, &e.Payload, &at); err != nil {
		return nil, err
	}
	e.Key, e.Version = key.String, version.Int64
	if headers.Valid && headers.String != "" {
		if err := json.Unmarshal([]byte(headers.String), &e.Headers); err != nil {
			return nil, fmt.Errorf("spool: event %s: decode headers: %w", e.ID, err)
		}
	}
	e.PublishedAt = time.UnixMicro(at).UTC()
	return &e, nil
}

func scanEvents(rows *sql.Rows) ([]*store.Event, error) {
	defer rows.Close()
	var out []*store.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

const subscriptionColumns = `s.topic, s.name, s.kinds, s.ordered, s.on_dead_head, s.lock_for, s.max_attempts, s.max_deliveries,
	s.retry_base, s.retry_max, s.cursor, s.created_at, s.updated_at`

func scanSubscription(r scanner, extra ...any) (*store.Subscription, error) {
	var (
		sub                              store.Subscription
		kinds                            sql.NullString
		lockFor, base, most, made, moved int64
	)
	dest := []any{&sub.Topic, &sub.Name, &kinds, &sub.Ordered, &sub.OnDeadHead, &lockFor, &sub.MaxAttempts, &sub.MaxDeliveries,
		&base, &most, &sub.Cursor, &made, &moved}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	if kinds.Valid && kinds.String != "" {
		if err := json.Unmarshal([]byte(kinds.String), &sub.Kinds); err != nil {
			return nil, fmt.Errorf("spool: subscription %s/%s: decode kinds: %w", sub.Topic, sub.Name, err)
		}
	}
	sub.Queue = store.SubscriptionQueue(sub.Topic, sub.Name)
	sub.LockFor, sub.RetryBase, sub.RetryMax = time.Duration(lockFor)*time.Microsecond,
		time.Duration(base)*time.Microsecond, time.Duration(most)*time.Microsecond
	sub.CreatedAt, sub.UpdatedAt = time.UnixMicro(made).UTC(), time.UnixMicro(moved).UTC()
	return &sub, nil
}

// EventTx implements engine.EventDriver: fn runs as one op of the writer.
func (s *backend) EventTx(ctx context.Context, grows bool, fn func(tx engine.EventTx) error) error {
	var tx *eventTx
	return s.writer.queue(ctx, func(x execer) error {
		tx = &eventTx{s: s, x: x, now: s.now()}
		return fn(tx)
	}, opts{grows: grows, onCommit: func() {
		if tx != nil {
			tx.wake()
		}
	}})
}

// TopicTx implements engine.EventDriver: the writer commits concurrent
// ops together already.
func (s *backend) TopicTx(ctx context.Context, _ string, fn func(tx engine.EventTx) error) error {
	return s.EventTx(ctx, true, fn)
}

// EventTxOn implements engine.EventDriver on the caller's transaction;
// routers and workers wake when another connection's commit is seen.
func (s *backend) EventTxOn(ctx context.Context, tx *sql.Tx, fn func(tx engine.EventTx) error) error {
	if err := s.admitTx(ctx, tx, nil); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT spool_events"); err != nil {
		return fmt.Errorf("spool: events in tx: %w", err)
	}
	if err := fn(&eventTx{s: s, x: txExec{ctx, tx}, now: s.now()}); err != nil {
		_, rerr := tx.ExecContext(ctx, "ROLLBACK TO spool_events")
		return storeFull(errors.Join(err, rerr))
	}
	if _, err := tx.ExecContext(ctx, "RELEASE spool_events"); err != nil {
		return fmt.Errorf("spool: events in tx: %w", err)
	}
	return nil
}

// ReadEvents implements engine.EventDriver.
func (s *backend) ReadEvents(ctx context.Context, p store.ReadEventsParams) ([]*store.Event, error) {
	var rows *sql.Rows
	var err error
	if p.Key != "" {
		rows, err = s.rdb.QueryContext(ctx, `SELECT `+eventColumns+` FROM spool_events
			WHERE topic = ? AND key = ? AND version > ? ORDER BY version LIMIT ?`, p.Topic, p.Key, p.After, p.Limit+1)
	} else {
		rows, err = s.rdb.QueryContext(ctx, `SELECT `+eventColumns+` FROM spool_events
			WHERE topic = ? AND position > ? ORDER BY position LIMIT ?`, p.Topic, p.After, p.Limit+1)
	}
	if err != nil {
		return nil, s.readErr(err)
	}
	out, err := scanEvents(rows)
	return out, s.readErr(err)
}

// GetEvent implements engine.EventDriver.
func (s *backend) GetEvent(ctx context.Context, topic, id string) (*store.Event, error) {
	q, args := `SELECT `+eventColumns+` FROM spool_events WHERE topic = ? AND id = ?`, []any{topic, id}
	if topic == "" {
		q, args = `SELECT `+eventColumns+` FROM spool_events WHERE id = ? ORDER BY topic LIMIT 1`, []any{id}
	}
	e, err := scanEvent(s.rdb.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return e, s.readErr(err)
}

// Topics implements engine.EventDriver.
func (s *backend) Topics(ctx context.Context) ([]store.TopicInfo, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT t.name, t.head, t.retention, t.published_at,
		(SELECT min(position) FROM spool_events AS e WHERE e.topic = t.name)
		FROM spool_topics AS t ORDER BY t.name`)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	var out []store.TopicInfo
	for rows.Next() {
		var (
			t         store.TopicInfo
			retention int64
			at        sql.NullInt64
			oldest    sql.NullInt64
		)
		if err := rows.Scan(&t.Name, &t.Head, &retention, &at, &oldest); err != nil {
			return nil, err
		}
		t.Retention, t.Published, t.Oldest = fromRetention(retention), fromMicros(at), oldest.Int64
		out = append(out, t)
	}
	return out, s.readErr(rows.Err())
}

func fromRetention(us int64) time.Duration {
	if us < 0 {
		return store.KeepEvents
	}
	return time.Duration(us) * time.Microsecond
}

// Subscriptions implements engine.EventDriver.
func (s *backend) Subscriptions(ctx context.Context, topic, name string) ([]*store.Subscription, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+subscriptionColumns+`, coalesce(q.paused, 0)
		FROM spool_subscriptions AS s
		LEFT JOIN spool_queues AS q ON q.name = 'sub/' || s.topic || '/' || s.name
		WHERE (?1 = '' OR s.topic = ?1) AND (?2 = '' OR s.name = ?2)
		ORDER BY s.topic, s.name`, topic, name)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	var out []*store.Subscription
	for rows.Next() {
		var paused bool
		sub, err := scanSubscription(rows, &paused)
		if err != nil {
			return nil, err
		}
		sub.Paused = paused
		out = append(out, sub)
	}
	return out, s.readErr(rows.Err())
}

// eventsInJob is how many events a delivery job carries: a batch's
// payload starts with their count in store.BatchCountDigits (6) ASCII
// digits (store.EncodeBatch).
const eventsInJob = `CASE WHEN kind = '` + store.BatchKind + `' THEN CAST(CAST(substr(payload, 1, 6) AS TEXT) AS INTEGER) ELSE 1 END`

// LagFacts implements engine.EventDriver.
func (s *backend) LagFacts(ctx context.Context, sub *store.Subscription) (engine.LagFacts, error) {
	var (
		f                 engine.LagFacts
		retention         sql.NullInt64
		oldest, nextEvent sql.NullInt64
	)
	err := s.rdb.QueryRowContext(ctx, `SELECT
		coalesce((SELECT head FROM spool_topics WHERE name = ?1), 0),
		(SELECT retention FROM spool_topics WHERE name = ?1),
		(SELECT coalesce(sum(`+eventsInJob+`), 0) FROM spool_jobs WHERE queue = ?2 AND state IN ('scheduled', 'available', 'running')),
		(SELECT coalesce(sum(`+eventsInJob+`), 0) FROM spool_jobs WHERE queue = ?2 AND state = 'dead'),
		(SELECT min(created_at) FROM spool_jobs WHERE queue = ?2 AND state IN ('scheduled', 'available', 'running')),
		(SELECT published_at FROM spool_events WHERE topic = ?1 AND position > ?3 ORDER BY position LIMIT 1)`,
		sub.Topic, sub.Queue, sub.Cursor).Scan(&f.Head, &retention, &f.Pending, &f.Dead, &oldest, &nextEvent)
	if err != nil {
		return f, s.readErr(err)
	}
	f.Retention = store.KeepEvents
	if retention.Valid {
		f.Retention = fromRetention(retention.Int64)
	}
	f.OldestPending, f.NextEventAt = fromMicros(oldest), fromMicros(nextEvent)
	return f, nil
}

// eventTx is one event transaction inside a writer op or a caller's tx.
type eventTx struct {
	s   *backend
	x   execer
	now time.Time
	// topics published to and jobs inserted, to wake their waiters after
	// the commit.
	topics []string
	jobs   []store.EnqueueParams
	enq    []store.EnqueueResult
}

func (t *eventTx) wake() {
	for _, topic := range t.topics {
		t.s.available.Fire(store.TopicSignal(topic))
	}
	t.s.wakeQueues(t.jobs, t.enq)
}

// Now implements engine.EventTx.
func (t *eventTx) Now() time.Time { return t.now }

// LockTopic implements engine.EventTx. The upsert writes, so on a caller's
// transaction it takes the database's write lock before the head is read:
// no other publisher can commit in between.
func (t *eventTx) LockTopic(topic string) (int64, error) {
	var head int64
	err := t.x.queryRow(`INSERT INTO spool_topics (name, created_at) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET head = head RETURNING head`, topic, t.now.UnixMicro()).Scan(&head)
	if err != nil {
		return 0, fmt.Errorf("spool: topic %s: %w", topic, err)
	}
	t.topics = append(t.topics, topic)
	return head, nil
}

// SetHead implements engine.EventTx.
func (t *eventTx) SetHead(topic string, head int64, at time.Time) error {
	_, err := t.x.exec(`UPDATE spool_topics SET head = ?, published_at = ? WHERE name = ?`, head, at.UnixMicro(), topic)
	return err
}

// Head implements engine.EventTx.
func (t *eventTx) Head(topic string) (int64, error) {
	var head int64
	err := t.x.queryRow(`SELECT coalesce((SELECT head FROM spool_topics WHERE name = ?), 0)`, topic).Scan(&head)
	return head, err
}

// FindEvents implements engine.EventTx.
func (t *eventTx) FindEvents(topic string, ids []string) (map[string]store.PublishResult, error) {
	out := make(map[string]store.PublishResult)
	for lo := 0; lo < len(ids); lo += idChunk {
		part := ids[lo:min(lo+idChunk, len(ids))]
		args := make([]any, 0, len(part)+1)
		args = append(args, topic)
		for _, id := range part {
			args = append(args, id)
		}
		// Without statistics the planner would walk the topic's primary key.
		rows, err := t.x.query(`SELECT id, position, coalesce(version, 0) FROM spool_events INDEXED BY spool_events_id
			WHERE topic = ? AND id IN (`+placeholders(len(part))+`)`, args...)
		err = eachRow(rows, err, func(rows *sql.Rows) error {
			var r store.PublishResult
			if err := rows.Scan(&r.ID, &r.Position, &r.Version); err != nil {
				return err
			}
			out[r.ID] = r
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// eachRow calls fn on every row of a query's answer and closes it.
func eachRow(rows *sql.Rows, err error, fn func(rows *sql.Rows) error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// StreamVersions implements engine.EventTx.
func (t *eventTx) StreamVersions(topic string, keys []string) (map[string]int64, error) {
	out := make(map[string]int64, len(keys))
	for _, k := range keys {
		var v sql.NullInt64
		if err := t.x.queryRow(`SELECT max(version) FROM spool_events WHERE topic = ? AND key = ?`, topic, k).Scan(&v); err != nil {
			return nil, err
		}
		if v.Valid {
			out[k] = v.Int64
		}
	}
	return out, nil
}

// eventChunk is how many rows one event INSERT carries (10 parameters each).
const eventChunk = 64

var insertEventSQL [eventChunk + 1]string

func init() {
	row := "(" + placeholders(10) + ")"
	for n := 1; n <= eventChunk; n++ {
		insertEventSQL[n] = `INSERT INTO spool_events (` + eventColumns + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	}
}

// InsertEvents implements engine.EventTx.
func (t *eventTx) InsertEvents(events []*store.Event) error {
	args := make([]any, 0, 10*min(len(events), eventChunk))
	for lo := 0; lo < len(events); lo += eventChunk {
		part := events[lo:min(lo+eventChunk, len(events))]
		args = args[:0]
		for _, e := range part {
			var headers, version any
			if len(e.Headers) > 0 {
				b, err := json.Marshal(e.Headers)
				if err != nil {
					return err
				}
				headers = string(b)
			}
			if e.Key != "" {
				version = e.Version
			}
			args = append(args, e.Topic, e.Position, e.ID, e.Kind, nullString(e.Key), version, e.Tenant, headers,
				e.Payload, e.PublishedAt.UnixMicro())
		}
		if _, err := t.x.exec(insertEventSQL[len(part)], args...); err != nil {
			return storeFull(fmt.Errorf("spool: publish: %w", err))
		}
	}
	return nil
}

// EventsAfter implements engine.EventTx.
func (t *eventTx) EventsAfter(topic string, after int64, limit int) ([]*store.Event, error) {
	rows, err := t.x.query(`SELECT `+eventColumns+` FROM spool_events
		WHERE topic = ? AND position > ? ORDER BY position LIMIT ?`, topic, after, limit)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

// FirstAt implements engine.EventTx.
func (t *eventTx) FirstAt(topic string, at time.Time) (int64, error) {
	var first sql.NullInt64
	err := t.x.queryRow(`SELECT min(position) FROM spool_events WHERE topic = ? AND published_at >= ?`,
		topic, at.UnixMicro()).Scan(&first)
	if err != nil || first.Valid {
		return first.Int64, err
	}
	head, err := t.Head(topic)
	return head + 1, err
}

// SetRetention implements engine.EventTx.
func (t *eventTx) SetRetention(topic string, d time.Duration) error {
	us := int64(-1)
	if d >= 0 {
		us = d.Microseconds()
	}
	_, err := t.x.exec(`INSERT INTO spool_topics (name, retention, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET retention = excluded.retention`, topic, us, t.now.UnixMicro())
	return err
}

// LockSubscription implements engine.EventTx. The writer is the file's
// only writer: what it reads stays as it is until the commit, and no other
// transaction can hold a subscription.
func (t *eventTx) LockSubscription(topic, name string, _ bool) (*store.Subscription, store.ID, bool, error) {
	var last []byte
	sub, err := scanSubscription(t.x.queryRow(`SELECT `+subscriptionColumns+`, s.last_id
		FROM spool_subscriptions AS s WHERE s.topic = ? AND s.name = ?`, topic, name), &last)
	var id store.ID
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, id, false, nil
	case err != nil:
		return nil, id, false, err
	}
	copy(id[:], last)
	return sub, id, false, nil
}

// InsertSubscription implements engine.EventTx.
func (t *eventTx) InsertSubscription(sub *store.Subscription) error {
	var kinds any
	if len(sub.Kinds) > 0 {
		b, err := json.Marshal(sub.Kinds)
		if err != nil {
			return err
		}
		kinds = string(b)
	}
	_, err := t.x.exec(`INSERT INTO spool_subscriptions (topic, name, kinds, ordered, on_dead_head, lock_for, max_attempts,
		max_deliveries, retry_base, retry_max, cursor, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sub.Topic, sub.Name, kinds, sub.Ordered, string(sub.OnDeadHead), sub.LockFor.Microseconds(), sub.MaxAttempts, sub.MaxDeliveries,
		sub.RetryBase.Microseconds(), sub.RetryMax.Microseconds(), sub.Cursor, sub.CreatedAt.UnixMicro(), sub.UpdatedAt.UnixMicro())
	return err
}

// SetCursor implements engine.EventTx.
func (t *eventTx) SetCursor(topic, name string, cursor int64, lastID store.ID) error {
	var last any
	if !lastID.IsZero() {
		last = lastID
	}
	_, err := t.x.exec(`UPDATE spool_subscriptions SET cursor = ?, last_id = ?, updated_at = ? WHERE topic = ? AND name = ?`,
		cursor, last, t.now.UnixMicro(), topic, name)
	return err
}

// SetCursors implements engine.EventTx.
func (t *eventTx) SetCursors(topic string, names []string, cursor int64, lastIDs []store.ID) error {
	for i, name := range names {
		if err := t.SetCursor(topic, name, cursor, lastIDs[i]); err != nil {
			return err
		}
	}
	return nil
}

// DeleteSubscription implements engine.EventTx.
func (t *eventTx) DeleteSubscription(sub *store.Subscription) error {
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM spool_subscriptions WHERE topic = ? AND name = ?`, []any{sub.Topic, sub.Name}},
		{`DELETE FROM spool_queues WHERE name = ?`, []any{sub.Queue}},
		{`DELETE FROM spool_jobs WHERE queue = ?`, []any{sub.Queue}},
	} {
		if _, err := t.x.exec(q.sql, q.args...); err != nil {
			return fmt.Errorf("spool: delete subscription %s: %w", sub.Ref(), err)
		}
	}
	return nil
}

// DropWaiting implements engine.EventTx.
func (t *eventTx) DropWaiting(queue string) (int, error) {
	res, err := t.x.exec(`DELETE FROM spool_jobs WHERE queue = ? AND state IN ('scheduled', 'available')`, queue)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// CountWaiting implements engine.EventTx.
func (t *eventTx) CountWaiting(queue string) (int, error) {
	var n int
	err := t.x.queryRow(`SELECT (SELECT count(*) FROM spool_jobs WHERE queue = ?1 AND state = 'available')
		+ (SELECT count(*) FROM spool_jobs WHERE queue = ?1 AND state = 'scheduled')`, queue).Scan(&n)
	return n, err
}

// InsertJobs implements engine.EventTx.
func (t *eventTx) InsertJobs(jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
	res := make([]store.EnqueueResult, len(jobs))
	if err := insertJobs(t.x, jobs, res, t.now, false); err != nil {
		return nil, err
	}
	t.jobs, t.enq = append(t.jobs, jobs...), append(t.enq, res...)
	return res, nil
}

// PruneEvents implements engine.EventTx.
func (t *eventTx) PruneEvents(limit int) (int, error) {
	type cut struct {
		topic     string
		retention int64
		floor     int64
	}
	var cuts []cut
	rows, err := t.x.query(`SELECT t.name, t.retention,
		coalesce((SELECT min(cursor) FROM spool_subscriptions AS s WHERE s.topic = t.name), t.head)
		FROM spool_topics AS t WHERE t.retention >= 0`)
	err = eachRow(rows, err, func(rows *sql.Rows) error {
		var c cut
		if err := rows.Scan(&c.topic, &c.retention, &c.floor); err != nil {
			return err
		}
		cuts = append(cuts, c)
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cuts {
		if n >= limit {
			break
		}
		res, err := t.x.exec(`DELETE FROM spool_events WHERE topic = ?1 AND position IN (
			SELECT position FROM spool_events WHERE topic = ?1 AND position <= ?2 AND published_at < ?3
			ORDER BY position LIMIT ?4)`, c.topic, c.floor, t.now.UnixMicro()-c.retention, limit-n)
		if err != nil {
			return n, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return n, err
		}
		n += int(k)
	}
	return n, nil
}

// PruneInbox implements engine.EventTx.
func (t *eventTx) PruneInbox(before time.Time) error {
	_, err := t.x.exec(`DELETE FROM spool_inbox WHERE seen_at < ?`, before.UnixMicro())
	return err
}

// MarkSeen implements engine.EventTx.
func (t *eventTx) MarkSeen(consumer, id string) (bool, error) {
	res, err := t.x.exec(`INSERT INTO spool_inbox (consumer, id, seen_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		consumer, id, t.now.UnixMicro())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ForgetInbox implements engine.EventTx.
func (t *eventTx) ForgetInbox(consumer string) (int, error) {
	res, err := t.x.exec(`DELETE FROM spool_inbox WHERE consumer = ?`, consumer)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// LockCaughtUp implements engine.EventTx: the writer is the file's only
// writer, so reading is locking.
func (t *eventTx) LockCaughtUp(topic string, head int64) ([]*store.Subscription, []store.ID, int, error) {
	rows, err := t.x.query(`SELECT `+subscriptionColumns+`, s.last_id FROM spool_subscriptions AS s
		WHERE s.topic = ? ORDER BY s.name`, topic)
	if err != nil {
		return nil, nil, 0, err
	}
	defer rows.Close()
	var subs []*store.Subscription
	var ids []store.ID
	others := 0
	for rows.Next() {
		var last []byte
		sub, err := scanSubscription(rows, &last)
		if err != nil {
			return nil, nil, 0, err
		}
		if sub.Cursor != head {
			others++
			continue
		}
		var id store.ID
		copy(id[:], last)
		subs, ids = append(subs, sub), append(ids, id)
	}
	return subs, ids, others, rows.Err()
}

// Routed implements engine.EventTx.
func (t *eventTx) Routed(topic string) {
	t.topics = slices.DeleteFunc(t.topics, func(s string) bool { return s == topic })
}
