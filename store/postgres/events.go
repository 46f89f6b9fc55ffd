package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/spoolrun/spool/internal/engine"
	"github.com/spoolrun/spool/store"
)

var (
	_ engine.EventDriver = (*backend)(nil)
	_ store.EventStore   = (*Store)(nil)
	_ store.EventSQLTx   = (*Store)(nil)
)

// Events implements engine.Driver.
func (s *backend) Events() engine.EventDriver { return s }

// eventExec runs an event transaction's statements on a pgx transaction or
// on a caller's *sql.Tx (pgx stdlib driver). Scan destinations are types
// both understand: strings, integers, booleans, time.Time, []byte, and
// pgtype's nullable types (which are sql.Scanners too).
type eventExec interface {
	execer
	// execCount runs a statement and returns how many rows it affected.
	execCount(ctx context.Context, sql string, args ...any) (int64, error)
	// queryEach runs a query and calls row for each row it returns.
	queryEach(ctx context.Context, sql string, args []any, row func(scan func(dest ...any) error) error) error
}

func (x pgxExec) execCount(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := x.q.Exec(ctx, sql, args...)
	return tag.RowsAffected(), err
}

func (x pgxExec) queryEach(ctx context.Context, sql string, args []any, row func(scan func(dest ...any) error) error) error {
	rows, err := x.q.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (x sqlExec) execCount(ctx context.Context, sql string, args ...any) (int64, error) {
	res, err := x.tx.ExecContext(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (x sqlExec) queryEach(ctx context.Context, sql string, args []any, row func(scan func(dest ...any) error) error) error {
	rows, err := x.tx.QueryContext(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// scanEvent reads the columns of eventColumns.
func scanEvent(scan func(dest ...any) error) (*store.Event, error) {
	var (
		e       store.Event
		headers []byte
	)
	if err := scan(&e.Topic, &e.Position, &e.ID, &e.Kind, &e.Key, &e.Version, &e.Tenant, &headers, &e.Payload, &e.PublishedAt); err != nil {
		return nil, err
	}
	if len(headers) > 0 {
		if err := json.Unmarshal(headers, &e.Headers); err != nil {
			return nil, fmt.Errorf("spool: event %s: decode headers: %w", e.ID, err)
		}
	}
	if len(e.Payload) == 0 {
		e.Payload = nil
	}
	e.PublishedAt = e.PublishedAt.UTC()
	return &e, nil
}

// scanSubscription reads the columns of subscriptionColumns, then extra.
func scanSubscription(scan func(dest ...any) error, extra ...any) (*store.Subscription, error) {
	var (
		sub                   store.Subscription
		kinds                 []byte
		onDeadHead            string
		lockFor, base, most   int64
		maxAtt, maxDeliveries int32
	)
	dest := []any{&sub.Topic, &sub.Name, &kinds, &sub.Ordered, &onDeadHead, &lockFor, &maxAtt, &maxDeliveries,
		&base, &most, &sub.Cursor, &sub.CreatedAt, &sub.UpdatedAt}
	if err := scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	if len(kinds) > 0 {
		if err := json.Unmarshal(kinds, &sub.Kinds); err != nil {
			return nil, fmt.Errorf("spool: subscription %s/%s: decode kinds: %w", sub.Topic, sub.Name, err)
		}
		if len(sub.Kinds) == 0 {
			sub.Kinds = nil
		}
	}
	sub.Queue = store.SubscriptionQueue(sub.Topic, sub.Name)
	sub.OnDeadHead = store.DeadHeadPolicy(onDeadHead)
	sub.MaxAttempts, sub.MaxDeliveries = int(maxAtt), int(maxDeliveries)
	sub.LockFor, sub.RetryBase, sub.RetryMax = micros(lockFor), micros(base), micros(most)
	sub.CreatedAt, sub.UpdatedAt = sub.CreatedAt.UTC(), sub.UpdatedAt.UTC()
	return &sub, nil
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }

// fromRetention reads a stored retention: -1 keeps events forever.
func fromRetention(us int64) time.Duration {
	if us < 0 {
		return store.KeepEvents
	}
	return micros(us)
}

// errRetry makes EventTx run its function again from scratch: a
// subscription it meant to create was created by another transaction
// meanwhile, which a new run finds.
var errRetry = errors.New("spool: retry the event transaction")

// eventTxAttempts is how many times EventTx runs a transaction that
// PostgreSQL aborted to break a deadlock or that lost a creation race.
const eventTxAttempts = 5

// EventTx implements engine.EventDriver: a READ COMMITTED transaction, run
// again when PostgreSQL aborts it to break a deadlock (or for a
// serialization failure), as schedule transactions are. Once it commits,
// the queues that got deliveries and the routers of the topics it
// published to are woken, here at once and in other processes by NOTIFY.
func (s *backend) EventTx(ctx context.Context, _ bool, fn func(tx engine.EventTx) error) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	return s.eventTxAlone(ctx, false, fn)
}

// TopicTx implements engine.EventDriver: the engine merges concurrent
// publishes to a topic already. A publish routes its events to the
// subscriptions that are caught up, so they are read, and locked, with the
// topic's lock, in its round trip.
func (s *backend) TopicTx(ctx context.Context, _ string, fn func(tx engine.EventTx) error) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	return s.eventTxAlone(ctx, true, fn)
}

// eventTxAlone runs one event transaction on its own; publish says it
// publishes (see TopicTx).
func (s *backend) eventTxAlone(ctx context.Context, publish bool, fn func(tx engine.EventTx) error) error {
	var t *eventTx
	for attempt := 1; ; attempt++ {
		err := s.pipelined(ctx, func(x *pipeExec) error {
			t = &eventTx{s: s, ctx: ctx, x: x, now: s.now(), publish: publish}
			return fn(t)
		})
		if attempt < eventTxAttempts && retryable(err) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return s.eventErr(ctx, "events", err)
		}
		s.changed(t.wakes(), nil)
		return nil
	}
}

// retryable reports whether a transaction failed only for losing a race
// that running it again resolves.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.Is(err, errRetry) || errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// eventErr passes the engine's own refusals through as they are and wraps
// database errors.
func (s *backend) eventErr(ctx context.Context, op string, err error) error {
	if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrUnsupported) || errors.Is(err, store.ErrClosed) {
		return err
	}
	var ie *store.ItemError
	if errors.As(err, &ie) {
		return err
	}
	return s.fail(ctx, op, err)
}

// EventTxOn implements engine.EventDriver on a caller's *sql.Tx of the pgx
// stdlib driver, inside a savepoint. Its wake-ups are NOTIFYs queued on the
// caller's transaction: PostgreSQL delivers them when it commits (to every
// store that listens, this one included) and drops them if it rolls back.
func (s *backend) EventTxOn(ctx context.Context, tx *sql.Tx, fn func(tx engine.EventTx) error) error {
	return s.eventTxIn(ctx, func() (eventExec, func(ok bool) error, error) {
		x := sqlExec{tx}
		if err := x.exec(ctx, "SAVEPOINT spool_events"); err != nil {
			return nil, nil, err
		}
		return x, func(ok bool) error {
			if ok {
				return x.exec(ctx, "RELEASE SAVEPOINT spool_events")
			}
			return x.exec(ctx, "ROLLBACK TO SAVEPOINT spool_events")
		}, nil
	}, fn)
}

// pgxSavepoint opens a savepoint on a caller's pgx transaction for eventTxIn.
func pgxSavepoint(ctx context.Context, tx pgx.Tx) func() (eventExec, func(ok bool) error, error) {
	return func() (eventExec, func(ok bool) error, error) {
		sp, err := tx.Begin(ctx) // a savepoint
		if err != nil {
			return nil, nil, err
		}
		return pgxExec{sp}, func(ok bool) error {
			if ok {
				return sp.Commit(ctx)
			}
			return sp.Rollback(ctx)
		}, nil
	}
}

// eventTxIn runs fn inside a savepoint of a caller's transaction, made by
// savepoint; end(ok) releases or rolls back the savepoint, so that a
// refused call leaves the caller's transaction usable.
func (s *backend) eventTxIn(ctx context.Context, savepoint func() (eventExec, func(ok bool) error, error), fn func(tx engine.EventTx) error) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	x, end, err := savepoint()
	if err != nil {
		return s.fail(ctx, "events in tx", err)
	}
	t := &eventTx{s: s, ctx: ctx, x: x, now: s.now()}
	err = fn(t)
	if err == nil {
		err = s.notifyInTx(ctx, x, t.wakes())
	}
	if err != nil {
		if rerr := end(false); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return s.eventErr(ctx, "events in tx", err)
	}
	if err := end(true); err != nil {
		return s.fail(ctx, "events in tx", err)
	}
	return nil
}

// PublishPgx is PublishTx for a caller's pgx transaction (from a pgx.Conn or
// pgxpool.Pool on the store's database): the events commit or roll back
// with the caller's rows, and routers are woken when it commits. Until
// then the caller's transaction holds the topic: other publishers of it
// wait for the commit, so keep the transaction short.
func (s *Store) PublishPgx(ctx context.Context, tx pgx.Tx, topic string, events []store.EventInput) ([]store.PublishResult, error) {
	return s.publishPgx(ctx, tx, topic, "", store.AnyVersion, events, false)
}

// AppendPgx is AppendTx for a caller's pgx transaction (see PublishPgx).
func (s *Store) AppendPgx(ctx context.Context, tx pgx.Tx, topic, key string, expected int64, events []store.EventInput) ([]store.PublishResult, error) {
	return s.publishPgx(ctx, tx, topic, key, expected, events, true)
}

func (s *Store) publishPgx(ctx context.Context, tx pgx.Tx, topic, key string, expected int64, events []store.EventInput, stream bool) ([]store.PublishResult, error) {
	if tx == nil {
		return nil, &store.ValidationError{Field: "tx", Reason: "is nil"}
	}
	return s.PublishWith(ctx, topic, key, expected, events, stream, func(fn func(tx engine.EventTx) error) error {
		return s.b.eventTxIn(ctx, pgxSavepoint(ctx, tx), fn)
	})
}

// MarkSeenPgx is MarkSeenTx for a caller's pgx transaction: it records
// that consumer has handled message id and reports whether this is the
// first time; the mark commits or rolls back with the caller's rows.
func (s *Store) MarkSeenPgx(ctx context.Context, tx pgx.Tx, consumer, id string) (bool, error) {
	if tx == nil {
		return false, &store.ValidationError{Field: "tx", Reason: "is nil"}
	}
	var first bool
	err := s.b.eventTxIn(ctx, pgxSavepoint(ctx, tx), func(t engine.EventTx) error {
		var err error
		first, err = engine.MarkSeenIn(t, consumer, id)
		return err
	})
	return first, err
}

// ReadEvents implements engine.EventDriver.
func (s *backend) ReadEvents(ctx context.Context, p store.ReadEventsParams) ([]*store.Event, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	q, args := s.q.ev.read, []any{p.Topic, p.After, p.Limit + 1}
	if p.Key != "" {
		q, args = s.q.ev.readStream, []any{p.Topic, p.Key, p.After, p.Limit + 1}
	}
	var out []*store.Event
	err := pgxExec{s.pool}.queryEach(ctx, q, args, func(scan func(...any) error) error {
		e, err := scanEvent(scan)
		out = append(out, e)
		return err
	})
	if err != nil {
		return nil, s.fail(ctx, "read events", err)
	}
	return out, nil
}

// GetEvent implements engine.EventDriver.
func (s *backend) GetEvent(ctx context.Context, topic, id string) (*store.Event, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	q, args := s.q.ev.get, []any{topic, id}
	if topic == "" {
		q, args = s.q.ev.getAny, []any{id}
	}
	e, err := scanEvent(s.pool.QueryRow(ctx, q, args...).Scan)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, s.fail(ctx, "get event", err)
	}
	return e, nil
}

// Topics implements engine.EventDriver.
func (s *backend) Topics(ctx context.Context) ([]store.TopicInfo, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	var out []store.TopicInfo
	err := pgxExec{s.pool}.queryEach(ctx, s.q.ev.topics, nil, func(scan func(...any) error) error {
		var (
			t         store.TopicInfo
			retention int64
			at        pgtype.Timestamptz
			oldest    pgtype.Int8
		)
		if err := scan(&t.Name, &t.Head, &retention, &at, &oldest); err != nil {
			return err
		}
		t.Retention, t.Oldest = fromRetention(retention), oldest.Int64
		if at.Valid {
			t.Published = at.Time.UTC()
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "topics", err)
	}
	return out, nil
}

// Subscriptions implements engine.EventDriver.
func (s *backend) Subscriptions(ctx context.Context, topic, name string) ([]*store.Subscription, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	var out []*store.Subscription
	err := pgxExec{s.pool}.queryEach(ctx, s.q.ev.subscriptions, []any{topic, name}, func(scan func(...any) error) error {
		var paused bool
		sub, err := scanSubscription(scan, &paused)
		if err != nil {
			return err
		}
		sub.Paused = paused
		out = append(out, sub)
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "subscriptions", err)
	}
	return out, nil
}

// LagFacts implements engine.EventDriver in one round trip.
func (s *backend) LagFacts(ctx context.Context, sub *store.Subscription) (engine.LagFacts, error) {
	var (
		f                 engine.LagFacts
		retention         int64
		pending, dead     int64
		oldest, nextEvent pgtype.Timestamptz
	)
	if err := s.start(ctx); err != nil {
		return f, err
	}
	err := s.pool.QueryRow(ctx, s.q.ev.lagFacts, sub.Topic, sub.Queue, sub.Cursor).
		Scan(&f.Head, &retention, &pending, &dead, &oldest, &nextEvent)
	if err != nil {
		return f, s.fail(ctx, "subscription lag", err)
	}
	f.Retention, f.Pending, f.Dead = fromRetention(retention), int(pending), int(dead)
	if oldest.Valid {
		f.OldestPending = oldest.Time.UTC()
	}
	if nextEvent.Valid {
		f.NextEventAt = nextEvent.Time.UTC()
	}
	return f, nil
}

// eventTx is one event transaction: the store's own, or a savepoint of a
// caller's.
type eventTx struct {
	s   *backend
	ctx context.Context
	x   eventExec
	now time.Time
	// topics published to, and jobs inserted with their results, to wake
	// their waiters once the transaction commits.
	topics  []string
	jobs    []store.EnqueueParams
	enq     []store.EnqueueResult
	headSet headSet // what InsertEvents stored as the head
	// publish: LockTopic also locks the topic's caught-up subscriptions,
	// in its round trip, for LockCaughtUp to take.
	publish  bool
	caughtUp *caughtUp
}

// caughtUp is what LockCaughtUp returns, read ahead by LockTopic.
type caughtUp struct {
	topic  string
	head   int64
	subs   []*store.Subscription
	lastID []store.ID
	all    int
}

// wakes names what to wake after the commit: the queues that got claimable
// jobs and the topic signals of the topics published to.
func (t *eventTx) wakes() []string {
	out := availableQueues(t.jobs, t.enq)
	for _, topic := range t.topics {
		out = append(out, store.TopicSignal(topic))
	}
	return out
}

// Now implements engine.EventTx.
func (t *eventTx) Now() time.Time { return t.now }

// LockTopic implements engine.EventTx with one upsert that takes the
// topic's row lock (see lockTopicSQL). Positions never come from a
// sequence: the row lock is what makes them gap-safe.
func (t *eventTx) LockTopic(topic string) (int64, error) {
	var head int64
	if p, ok := t.x.(*pipeExec); ok && t.publish {
		c := &caughtUp{topic: topic}
		err := p.run(t.ctx,
			query{t.s.q.ev.lockTopic, []any{topic, t.now}, scanOne([]any{&head})},
			query{t.s.q.ev.lockCaughtUpAtHead, []any{topic}, eachRow(c.scan)},
			query{t.s.q.ev.countSubs, []any{topic}, scanOne([]any{&c.all})})
		if err != nil {
			return 0, fmt.Errorf("topic %s: %w", topic, err)
		}
		c.head, t.caughtUp = head, c
		return head, nil
	}
	if err := t.x.queryRow(t.ctx, t.s.q.ev.lockTopic, topic, t.now).Scan(&head); err != nil {
		return 0, fmt.Errorf("topic %s: %w", topic, err)
	}
	return head, nil
}

// scan reads one row of lockCaughtUpAtHeadSQL.
func (c *caughtUp) scan(scan func(dest ...any) error) error {
	var last pgtype.UUID
	sub, err := scanSubscription(scan, &last)
	if err != nil {
		return err
	}
	c.subs, c.lastID = append(c.subs, sub), append(c.lastID, last.Bytes)
	return nil
}

// SetHead implements engine.EventTx.
func (t *eventTx) SetHead(topic string, head int64, at time.Time) error {
	if t.headSet == (headSet{topic: topic, head: head, at: at}) {
		return nil // stored with the events
	}
	return t.x.exec(t.ctx, t.s.q.ev.setHead, topic, head, at)
}

// Head implements engine.EventTx: the committed head, without a lock.
func (t *eventTx) Head(topic string) (int64, error) {
	var head int64
	err := t.x.queryRow(t.ctx, t.s.q.ev.head, topic).Scan(&head)
	return head, err
}

// FindEvents implements engine.EventTx.
func (t *eventTx) FindEvents(topic string, idList []string) (map[string]store.PublishResult, error) {
	out := make(map[string]store.PublishResult)
	err := t.x.queryEach(t.ctx, t.s.q.ev.find, []any{topic, idList}, func(scan func(...any) error) error {
		var r store.PublishResult
		if err := scan(&r.ID, &r.Position, &r.Version); err != nil {
			return err
		}
		out[r.ID] = r
		return nil
	})
	return out, err
}

// StreamVersions implements engine.EventTx.
func (t *eventTx) StreamVersions(topic string, keys []string) (map[string]int64, error) {
	out := make(map[string]int64, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	err := t.x.queryEach(t.ctx, t.s.q.ev.versions, []any{topic, keys}, func(scan func(...any) error) error {
		var (
			k string
			v int64
		)
		if err := scan(&k, &v); err != nil {
			return err
		}
		out[k] = v
		return nil
	})
	return out, err
}

// InsertEvents implements engine.EventTx with one INSERT for the batch.
func (t *eventTx) InsertEvents(events []*store.Event) error {
	if len(events) == 0 {
		return nil
	}
	n := len(events)
	var (
		positions, versions          = make([]int64, 0, n), make([]int64, 0, n)
		idList, kinds, keys, tenants = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		headers                      = make([]string, 0, n)
		payloads                     = make([][]byte, 0, n)
		stamps                       = make([]time.Time, 0, n)
	)
	topic := events[0].Topic
	for _, e := range events {
		var h string
		if len(e.Headers) > 0 {
			b, err := json.Marshal(e.Headers)
			if err != nil {
				return err
			}
			h = string(b)
		}
		positions, versions = append(positions, e.Position), append(versions, e.Version)
		idList, kinds, keys, tenants = append(idList, e.ID), append(kinds, e.Kind), append(keys, e.Key), append(tenants, e.Tenant)
		headers, payloads, stamps = append(headers, h), append(payloads, e.Payload), append(stamps, e.PublishedAt)
	}
	last := events[n-1]
	if err := t.x.exec(t.ctx, t.s.q.ev.insertEvents, topic, positions, idList, kinds, keys, versions, tenants,
		headers, payloads, stamps, last.Position, last.PublishedAt); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	t.topics = append(t.topics, topic)
	t.headSet = headSet{topic: topic, head: last.Position, at: last.PublishedAt}
	return nil
}

// headSet is the head InsertEvents stored with the events.
type headSet struct {
	topic string
	head  int64
	at    time.Time
}

// EventsAfter implements engine.EventTx.
func (t *eventTx) EventsAfter(topic string, after int64, limit int) ([]*store.Event, error) {
	var out []*store.Event
	err := t.x.queryEach(t.ctx, t.s.q.ev.after, []any{topic, after, limit}, func(scan func(...any) error) error {
		e, err := scanEvent(scan)
		out = append(out, e)
		return err
	})
	return out, err
}

// FirstAt implements engine.EventTx.
func (t *eventTx) FirstAt(topic string, at time.Time) (int64, error) {
	var first pgtype.Int8
	if err := t.x.queryRow(t.ctx, t.s.q.ev.firstAt, topic, at).Scan(&first); err != nil || first.Valid {
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
	return t.x.exec(t.ctx, t.s.q.ev.retention, topic, us, t.now)
}

// LockSubscription implements engine.EventTx with FOR UPDATE, or FOR UPDATE
// SKIP LOCKED; a subscription that SKIP LOCKED passes over is told from a
// missing one by a second, plain read.
func (t *eventTx) LockSubscription(topic, name string, skipLocked bool) (*store.Subscription, store.ID, bool, error) {
	q := t.s.q.ev.lockSub
	if skipLocked {
		q = t.s.q.ev.lockSubSkip
	}
	var (
		last pgtype.UUID
		sub  *store.Subscription
	)
	err := t.x.queryEach(t.ctx, q, []any{topic, name}, func(scan func(...any) error) error {
		var err error
		sub, err = scanSubscription(scan, &last)
		return err
	})
	if err != nil || sub != nil {
		return sub, last.Bytes, false, err
	}
	if !skipLocked {
		return nil, store.ID{}, false, nil
	}
	var exists bool
	if err := t.x.queryRow(t.ctx, t.s.q.ev.subExists, topic, name).Scan(&exists); err != nil {
		return nil, store.ID{}, false, err
	}
	return nil, store.ID{}, exists, nil
}

// InsertSubscription implements engine.EventTx. When another transaction
// created the subscription since LockSubscription found none, the
// transaction runs again and finds it (errRetry).
func (t *eventTx) InsertSubscription(sub *store.Subscription) error {
	var kinds string
	if len(sub.Kinds) > 0 {
		b, err := json.Marshal(sub.Kinds)
		if err != nil {
			return err
		}
		kinds = string(b)
	}
	n, err := t.x.execCount(t.ctx, t.s.q.ev.insertSub, sub.Topic, sub.Name, kinds, sub.Ordered, sub.LockFor.Microseconds(),
		sub.MaxAttempts, sub.MaxDeliveries, sub.RetryBase.Microseconds(), sub.RetryMax.Microseconds(), sub.Cursor,
		sub.CreatedAt, sub.UpdatedAt, string(sub.OnDeadHead))
	if err == nil && n == 0 {
		err = errRetry
	}
	return err
}

// SetCursor implements engine.EventTx.
func (t *eventTx) SetCursor(topic, name string, cursor int64, lastID store.ID) error {
	last := pgtype.UUID{Bytes: lastID, Valid: !lastID.IsZero()}
	return t.x.exec(t.ctx, t.s.q.ev.setCursor, topic, name, cursor, last, t.now)
}

// SetCursors implements engine.EventTx in one statement.
func (t *eventTx) SetCursors(topic string, names []string, cursor int64, lastIDs []store.ID) error {
	last := make([]pgtype.UUID, len(lastIDs))
	for i, id := range lastIDs {
		last[i] = pgtype.UUID{Bytes: id, Valid: !id.IsZero()}
	}
	return t.x.exec(t.ctx, t.s.q.ev.setCursors, topic, names, cursor, last, t.now)
}

// DeleteSubscription implements engine.EventTx.
func (t *eventTx) DeleteSubscription(sub *store.Subscription) error {
	for _, q := range []struct {
		sql string
		arg []any
	}{
		{t.s.q.ev.deleteSub, []any{sub.Topic, sub.Name}},
		{t.s.q.ev.deleteQueue, []any{sub.Queue}},
		{t.s.q.ev.deleteQueueJobs, []any{sub.Queue}},
	} {
		if err := t.x.exec(t.ctx, q.sql, q.arg...); err != nil {
			return fmt.Errorf("delete subscription %s: %w", sub.Ref(), err)
		}
	}
	return nil
}

// DropWaiting implements engine.EventTx.
func (t *eventTx) DropWaiting(queue string) (int, error) {
	n, err := t.x.execCount(t.ctx, t.s.q.ev.dropWaiting, queue)
	return int(n), err
}

// CountWaiting implements engine.EventTx.
func (t *eventTx) CountWaiting(queue string) (int, error) {
	var n int64
	err := t.x.queryRow(t.ctx, t.s.q.ev.countWaiting, queue).Scan(&n)
	return int(n), err
}

// InsertJobs implements engine.EventTx through the enqueue path. In a
// pipelined transaction, jobs that can only go in or fail (no unique key,
// no history: a subscription's deliveries) are inserted without waiting,
// by a statement that fails the transaction rather than skip a row.
func (t *eventTx) InsertJobs(jobs []store.EnqueueParams) ([]store.EnqueueResult, error) {
	res := make([]store.EnqueueResult, len(jobs))
	if p, ok := t.x.(*pipeExec); ok && plainJobs(jobs) {
		t.s.queueInsert(t.ctx, p, jobs, res, t.now)
	} else if err := t.s.insertJobs(t.ctx, t.x, jobs, res, t.now); err != nil {
		return nil, err
	}
	t.jobs, t.enq = append(t.jobs, jobs...), append(t.enq, res...)
	return res, nil
}

// PruneEvents implements engine.EventTx, topic by topic in name order.
func (t *eventTx) PruneEvents(limit int) (int, error) {
	type cut struct {
		topic            string
		retention, floor int64
	}
	var cuts []cut
	err := t.x.queryEach(t.ctx, t.s.q.ev.pruneFloors, nil, func(scan func(...any) error) error {
		var c cut
		if err := scan(&c.topic, &c.retention, &c.floor); err != nil {
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
		k, err := t.x.execCount(t.ctx, t.s.q.ev.prune, c.topic, c.floor, t.now.Add(-micros(c.retention)), limit-n)
		if err != nil {
			return n, err
		}
		n += int(k)
	}
	return n, nil
}

// PruneInbox implements engine.EventTx.
func (t *eventTx) PruneInbox(before time.Time) error {
	return t.x.exec(t.ctx, t.s.q.ev.pruneInbox, before)
}

// MarkSeen implements engine.EventTx. A concurrent mark of the same
// message waits for the first to commit and is then not new. PostgreSQL's
// text holds neither NUL bytes nor invalid UTF-8: such a consumer or ID is
// refused as invalid input rather than failing in the database.
func (t *eventTx) MarkSeen(consumer, id string) (bool, error) {
	for _, v := range []string{consumer, id} {
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return false, &store.ValidationError{Field: "inbox", Reason: fmt.Sprintf("%q is not valid UTF-8 text without NUL bytes", v)}
		}
	}
	n, err := t.x.execCount(t.ctx, t.s.q.ev.markSeen, consumer, id, t.now)
	return n == 1, err
}

// ForgetInbox implements engine.EventTx.
func (t *eventTx) ForgetInbox(consumer string) (int, error) {
	n, err := t.x.execCount(t.ctx, t.s.q.ev.forgetInbox, consumer)
	return int(n), err
}

// LockCaughtUp implements engine.EventTx. SKIP LOCKED passes over a
// subscription a router holds: it routes the new events itself, later.
func (t *eventTx) LockCaughtUp(topic string, head int64) ([]*store.Subscription, []store.ID, int, error) {
	if c := t.caughtUp; c != nil && c.topic == topic && c.head == head {
		t.caughtUp = nil
		return c.subs, c.lastID, c.all - len(c.subs), nil
	}
	var subs []*store.Subscription
	var ids []store.ID
	var all int // every subscription of the topic, read with each row
	err := t.x.queryEach(t.ctx, t.s.q.ev.lockCaughtUp, []any{topic, head}, func(scan func(...any) error) error {
		var last pgtype.UUID
		sub, err := scanSubscription(scan, &last, &all)
		if err != nil {
			return err
		}
		subs, ids = append(subs, sub), append(ids, last.Bytes)
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	if len(subs) == 0 {
		if err := t.x.queryRow(t.ctx, t.s.q.ev.countSubs, topic).Scan(&all); err != nil {
			return nil, nil, 0, err
		}
	}
	return subs, ids, all - len(subs), nil
}

// Routed implements engine.EventTx.
func (t *eventTx) Routed(topic string) {
	t.topics = slices.DeleteFunc(t.topics, func(s string) bool { return s == topic })
}
