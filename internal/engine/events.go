package engine

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/spoolrun/spool/store"
)

// EventDriver keeps topics, events, subscriptions and the inbox. Every
// method receives input the engine has validated.
type EventDriver interface {
	// EventTx runs fn in one write transaction and commits when fn returns
	// nil. fn may run more than once, so it must start from scratch each
	// time. Jobs fn inserts wake workers, and topics it publishes to wake
	// their routers, once the transaction commits. grows marks a
	// transaction that inserts events or jobs, which a full store refuses.
	EventTx(ctx context.Context, grows bool, fn func(tx EventTx) error) error
	// TopicTx is EventTx for a transaction that publishes to topic. A
	// driver may commit concurrent ones of one topic together (their
	// publishers would take turns on the topic's lock anyway).
	TopicTx(ctx context.Context, topic string, fn func(tx EventTx) error) error
	// EventTxOn runs fn on the caller's transaction, inside a savepoint so
	// that a refused call leaves tx usable. Wake-ups go out when tx commits.
	EventTxOn(ctx context.Context, tx *sql.Tx, fn func(tx EventTx) error) error

	// ReadEvents returns up to p.Limit+1 events of p.Topic after p.After in
	// position order, or with p.Key, of that stream after version p.After.
	ReadEvents(ctx context.Context, p store.ReadEventsParams) ([]*store.Event, error)
	// GetEvent returns the event id of topic (any topic when empty), or nil.
	GetEvent(ctx context.Context, topic, id string) (*store.Event, error)
	// Topics lists every topic row.
	Topics(ctx context.Context) ([]store.TopicInfo, error)
	// Subscriptions reads subscriptions without locks: one (topic and name
	// set), a topic's, or every one (both empty), by topic then name, with
	// Paused from their queue's settings and Lag zero.
	Subscriptions(ctx context.Context, topic, name string) ([]*store.Subscription, error)
	// LagFacts reads what the lag of sub is computed from.
	LagFacts(ctx context.Context, sub *store.Subscription) (LagFacts, error)
}

// LagFacts are the readings a subscription's lag is computed from.
type LagFacts struct {
	Head          int64
	Retention     time.Duration // the topic's; store.KeepEvents: forever
	Pending, Dead int
	OldestPending time.Time // created_at of the oldest pending delivery; zero: none
	NextEventAt   time.Time // published_at of the first event after the cursor; zero: none
}

// EventTx is one event transaction. Its methods run in order on the
// transaction's connection and are not safe for concurrent use.
type EventTx interface {
	// Now is the store's time for the whole transaction.
	Now() time.Time

	// LockTopic creates the topic if it does not exist, locks it until the
	// transaction ends (publishers of a topic take turns: positions are
	// handed out in commit order) and returns its head, the last position
	// given out.
	LockTopic(topic string) (head int64, err error)
	// SetHead stores the topic's new head and when it was published.
	SetHead(topic string, head int64, at time.Time) error
	// Head reads a topic's head without locking it (0: no such topic).
	Head(topic string) (int64, error)
	// FindEvents returns the stored events of topic among ids.
	FindEvents(topic string, ids []string) (map[string]store.PublishResult, error)
	// StreamVersions returns the last version of each key's stream that has events.
	StreamVersions(topic string, keys []string) (map[string]int64, error)
	// InsertEvents inserts events with positions and versions assigned.
	InsertEvents(events []*store.Event) error
	// EventsAfter returns up to limit events of topic after position, in order.
	EventsAfter(topic string, after int64, limit int) ([]*store.Event, error)
	// FirstAt returns the first position of topic published at or after t,
	// or head+1 when there is none.
	FirstAt(topic string, t time.Time) (int64, error)
	// SetRetention stores a topic's retention, creating the topic.
	SetRetention(topic string, d time.Duration) error

	// LockSubscription reads and locks a subscription with the ID of its
	// newest delivery. It returns nil when there is none; with skipLocked,
	// also when another transaction holds it (busy is then true).
	LockSubscription(topic, name string, skipLocked bool) (sub *store.Subscription, lastID store.ID, busy bool, err error)
	// LockCaughtUp reads and locks, with the ID of its newest delivery, every
	// subscription of topic whose cursor is at head, passing over those
	// another transaction holds (their routers route later); others counts
	// the topic's subscriptions it did not return.
	LockCaughtUp(topic string, head int64) (subs []*store.Subscription, lastIDs []store.ID, others int, err error)
	// Routed says that every subscription of topic was given this
	// transaction's events: no router needs waking for them.
	Routed(topic string)
	// InsertSubscription creates a subscription at cursor.
	InsertSubscription(sub *store.Subscription) error
	// SetCursor stores a subscription's cursor and newest delivery ID.
	SetCursor(topic, name string, cursor int64, lastID store.ID) error
	// SetCursors is SetCursor for several subscriptions of topic at once.
	SetCursors(topic string, names []string, cursor int64, lastIDs []store.ID) error
	// DeleteSubscription deletes a subscription, its queue's settings and
	// every job of its queue.
	DeleteSubscription(sub *store.Subscription) error
	// DropWaiting deletes a queue's scheduled and available jobs.
	DropWaiting(queue string) (int, error)
	// CountWaiting counts a queue's scheduled and available jobs.
	CountWaiting(queue string) (int, error)
	// InsertJobs is Driver.InsertJobs inside the transaction.
	InsertJobs(jobs []store.EnqueueParams) ([]store.EnqueueResult, error)

	// PruneEvents deletes up to limit events of topics with a retention
	// that are published before now minus the retention and at or below
	// the lowest cursor of the topic's subscriptions (the head when it has
	// none).
	PruneEvents(limit int) (int, error)
	// PruneInbox deletes inbox entries seen before t.
	PruneInbox(before time.Time) error
	// MarkSeen records (consumer, id) at Now and reports whether it is new.
	MarkSeen(consumer, id string) (bool, error)
	// ForgetInbox deletes consumer's inbox entries and returns how many.
	ForgetInbox(consumer string) (int, error)
}

var _ store.EventStore = (*Store)(nil)

// events returns the event driver, or ErrUnsupported.
func (e *Store) events(ctx context.Context) (EventDriver, error) {
	if e.ev == nil {
		return nil, fmt.Errorf("%w: events", store.ErrUnsupported)
	}
	return e.ev, e.start(ctx)
}

// Publish implements store.EventStore.
func (e *Store) Publish(ctx context.Context, topic string, events []store.EventInput) ([]store.PublishResult, error) {
	return e.publish(ctx, nil, topic, "", store.AnyVersion, events, false)
}

// Append implements store.EventStore.
func (e *Store) Append(ctx context.Context, topic, key string, expected int64, events []store.EventInput) ([]store.PublishResult, error) {
	return e.publish(ctx, nil, topic, key, expected, events, true)
}

// PublishTx implements store.EventSQLTx.
func (e *Store) PublishTx(ctx context.Context, tx *sql.Tx, topic string, events []store.EventInput) ([]store.PublishResult, error) {
	if tx == nil {
		return nil, &store.ValidationError{Field: "tx", Reason: "is nil"}
	}
	return e.publish(ctx, tx, topic, "", store.AnyVersion, events, false)
}

// AppendTx implements store.EventSQLTx.
func (e *Store) AppendTx(ctx context.Context, tx *sql.Tx, topic, key string, expected int64, events []store.EventInput) ([]store.PublishResult, error) {
	if tx == nil {
		return nil, &store.ValidationError{Field: "tx", Reason: "is nil"}
	}
	return e.publish(ctx, tx, topic, key, expected, events, true)
}

// PublishWith validates events as Publish (or, with stream set, Append)
// does and runs the publish through run: for a backend's own kinds of
// caller transaction (a pgx.Tx on PostgreSQL).
func (e *Store) PublishWith(ctx context.Context, topic, key string, expected int64, events []store.EventInput, stream bool,
	run func(fn func(tx EventTx) error) error) ([]store.PublishResult, error) {
	return e.publishWith(ctx, topic, key, expected, events, stream, false, run)
}

// publishWith is PublishWith; route says whether the publish routes its
// events to the subscriptions that are caught up. Only the store's own
// transactions do: one of a caller's would hold those subscriptions, and
// their routers, until the caller commits.
func (e *Store) publishWith(ctx context.Context, topic, key string, expected int64, events []store.EventInput, stream, route bool,
	run func(fn func(tx EventTx) error) error) ([]store.PublishResult, error) {
	evs, fresh, err := e.preparePublish(ctx, topic, key, expected, events, stream)
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	var res []store.PublishResult
	err = run(func(tx EventTx) error {
		var err error
		res, err = publishIn(tx, topic, key, expected, evs, publishFlags{stream: stream, route: route, fresh: fresh})
		return err
	})
	return checkLen(res, len(evs), "events", err)
}

// preparePublish validates and normalizes events; fresh says the engine
// made every ID (fresh UUIDv7s collide with no stored event).
func (e *Store) preparePublish(ctx context.Context, topic, key string, expected int64, events []store.EventInput, stream bool) (evs []store.EventInput, fresh bool, err error) {
	if _, err := e.events(ctx); err != nil {
		return nil, false, err
	}
	if err := store.ValidTopic(topic); err != nil {
		return nil, false, err
	}
	if stream {
		if key == "" {
			return nil, false, &store.ValidationError{Field: "key", Reason: "is required to append to a stream"}
		}
		if expected < store.AnyVersion {
			return nil, false, &store.ValidationError{Field: "expected_version", Reason: fmt.Sprintf("%d is not a version (use -1 for any)", expected)}
		}
	}
	fresh = !slices.ContainsFunc(events, func(e store.EventInput) bool { return e.ID != "" })
	evs, err = store.NormalizeEvents(events)
	if err != nil {
		return nil, false, err
	}
	if stream {
		for i := range evs {
			if evs[i].Key != "" && evs[i].Key != key {
				return nil, false, &store.ItemError{Index: i, Err: &store.ValidationError{Field: "key",
					Reason: fmt.Sprintf("%q is not the stream's key %q", evs[i].Key, key)}}
			}
			evs[i].Key = key
		}
	}
	return evs, fresh, nil
}

func (e *Store) publish(ctx context.Context, tx *sql.Tx, topic, key string, expected int64, events []store.EventInput, stream bool) ([]store.PublishResult, error) {
	if tx == nil && !stream {
		evs, fresh, err := e.preparePublish(ctx, topic, key, expected, events, stream)
		if err != nil || len(evs) == 0 {
			return nil, err
		}
		res, err := e.publishMerged(ctx, topic, evs, fresh)
		return checkLen(res, len(evs), "events", err)
	}
	return e.publishWith(ctx, topic, key, expected, events, stream, tx == nil, func(fn func(tx EventTx) error) error {
		if tx != nil {
			return e.ev.EventTxOn(ctx, tx, fn)
		}
		return e.ev.TopicTx(ctx, topic, fn)
	})
}

// publishIn appends normalized events to topic in tx: IDs the topic has
// are duplicates; the rest get the next positions and their key's next
// versions. For a stream append, the stream must be at expected unless
// every event is a duplicate (a retried append is a no-op).
// publishFlags say how publishIn publishes: an append to a stream (with
// an expected version), routing to caught-up subscriptions at once, and
// IDs all made by the engine (no stored event can have them).
type publishFlags struct{ stream, route, fresh bool }

func publishIn(tx EventTx, topic, key string, expected int64, evs []store.EventInput, f publishFlags) ([]store.PublishResult, error) {
	stream, route := f.stream, f.route
	head, err := tx.LockTopic(topic)
	if err != nil {
		return nil, err
	}
	found := map[string]store.PublishResult{}
	if !f.fresh {
		ids := make([]string, len(evs))
		for i := range evs {
			ids[i] = evs[i].ID
		}
		if found, err = tx.FindEvents(topic, ids); err != nil {
			return nil, err
		}
	}
	res := make([]store.PublishResult, len(evs))
	fresh := make([]int, 0, len(evs))
	var keys []string
	for i := range evs {
		if r, ok := found[evs[i].ID]; ok {
			r.Duplicate = true
			res[i] = r
			continue
		}
		found[evs[i].ID] = store.PublishResult{ID: evs[i].ID} // a later mention is a duplicate of this one
		fresh = append(fresh, i)
		if evs[i].Key != "" {
			keys = append(keys, evs[i].Key)
		}
	}
	if len(fresh) == 0 {
		return res, nil
	}
	slices.Sort(keys)
	versions, err := tx.StreamVersions(topic, slices.Compact(keys))
	if err != nil {
		return nil, err
	}
	if stream && expected != store.AnyVersion && versions[key] != expected {
		return nil, &store.ConflictError{Resource: "stream", Name: topic + "/" + key, Want: expected, Current: versions[key]}
	}
	now := tx.Now()
	rows := make([]*store.Event, 0, len(fresh))
	for _, i := range fresh {
		in := &evs[i]
		head++
		ev := &store.Event{Topic: topic, Position: head, ID: in.ID, Kind: in.Kind, Key: in.Key, Tenant: in.Tenant,
			Headers: in.Headers, Payload: in.Payload, PublishedAt: now}
		if in.Key != "" {
			versions[in.Key]++
			ev.Version = versions[in.Key]
		}
		rows = append(rows, ev)
		res[i] = store.PublishResult{ID: in.ID, Position: ev.Position, Version: ev.Version}
	}
	// A later mention of an ID points at the first one's event.
	for i := range evs {
		if res[i].Duplicate && res[i].Position == 0 {
			for _, j := range fresh {
				if evs[j].ID == evs[i].ID {
					res[i] = res[j]
					res[i].Duplicate = true
					break
				}
			}
		}
	}
	if err := tx.InsertEvents(rows); err != nil {
		return nil, err
	}
	if err := tx.SetHead(topic, head, now); err != nil {
		return nil, err
	}
	if route && len(rows) <= publishRoute {
		if err := routeAtPublish(tx, topic, rows); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// publishRoute is the most events a publish routes itself, to the
// subscriptions that are caught up; routers route larger publishes, in
// batches spread over their workers.
const publishRoute = store.MaxRouteAtPublish

// publishSpread is how many deliveries a publish spreads its events over,
// per subscription: small publishes get one delivery per event, for
// parallel workers; larger ones, batches.
const publishSpread = 16

// routeAtPublish routes rows, just published, to every subscription of the
// topic whose cursor was at the head before them, in the publishing
// transaction: a caught-up subscription's deliveries become claimable when
// the publish commits, without a router's transaction in between. The
// rest are left to their routers.
func routeAtPublish(tx EventTx, topic string, rows []*store.Event) error {
	subs, lastIDs, others, err := tx.LockCaughtUp(topic, rows[0].Position-1)
	if err != nil {
		return err
	}
	if others == 0 {
		tx.Routed(topic)
	}
	if len(subs) == 0 {
		return nil
	}
	head := rows[len(rows)-1].Position
	var jobs []store.EnqueueParams
	names := make([]string, len(subs))
	for i, sub := range subs {
		names[i] = sub.Name
		var wanted []*store.Event
		for _, ev := range rows {
			if sub.WantsKind(ev.Kind) {
				wanted = append(wanted, ev)
			}
		}
		js, err := deliveries(sub, wanted, publishSpread, tx.Now(), &lastIDs[i])
		if err != nil {
			return err
		}
		jobs = append(jobs, js...)
	}
	if err := tx.SetCursors(topic, names, head, lastIDs); err != nil {
		return err
	}
	if len(jobs) == 0 {
		return nil
	}
	_, err = tx.InsertJobs(jobs)
	return err
}

// ReadEvents implements store.EventStore.
func (e *Store) ReadEvents(ctx context.Context, p store.ReadEventsParams) (*store.EventPage, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return nil, err
	}
	if err := store.ValidTopic(p.Topic); err != nil {
		return nil, err
	}
	p.Limit = cmp.Or(p.Limit, store.DefaultListLimit)
	if p.Limit < 1 || p.Limit > store.MaxReadEvents {
		return nil, &store.ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, store.MaxReadEvents)}
	}
	if p.After < 0 {
		return nil, &store.ValidationError{Field: "after", Reason: fmt.Sprintf("%d is negative", p.After)}
	}
	evs, err := ed.ReadEvents(ctx, p)
	if err != nil {
		return nil, err
	}
	page := &store.EventPage{Events: evs}
	if len(evs) > p.Limit {
		page.Events = evs[:p.Limit]
		last := page.Events[p.Limit-1]
		page.Next = last.Position
		if p.Key != "" {
			page.Next = last.Version
		}
	}
	return page, nil
}

// GetEvent implements store.EventStore.
func (e *Store) GetEvent(ctx context.Context, topic, id string) (*store.Event, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return nil, err
	}
	if topic != "" {
		if err := store.ValidTopic(topic); err != nil {
			return nil, err
		}
	}
	ev, err := ed.GetEvent(ctx, topic, id)
	if err == nil && ev == nil {
		err = &store.NotFoundError{Resource: "event", Name: id}
	}
	return ev, err
}

// Topics implements store.EventStore.
func (e *Store) Topics(ctx context.Context) ([]store.TopicInfo, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return nil, err
	}
	return ed.Topics(ctx)
}

// SetTopicRetention implements store.EventStore.
func (e *Store) SetTopicRetention(ctx context.Context, topic string, d time.Duration) error {
	ed, err := e.events(ctx)
	if err != nil {
		return err
	}
	if err := store.ValidTopic(topic); err != nil {
		return err
	}
	if d < 0 && d != store.KeepEvents {
		return &store.ValidationError{Field: "retention", Reason: fmt.Sprintf("%v is negative (KeepEvents keeps them forever)", d)}
	}
	return ed.EventTx(ctx, false, func(tx EventTx) error { return tx.SetRetention(topic, d) })
}

func subscriptionNotFound(topic, name string) error {
	return &store.NotFoundError{Resource: "subscription", Name: topic + "/" + name}
}

// CreateSubscription implements store.EventStore.
func (e *Store) CreateSubscription(ctx context.Context, p store.SubscriptionParams) (*store.Subscription, bool, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := p.Normalize(); err != nil {
		return nil, false, err
	}
	var created bool
	err = ed.EventTx(ctx, false, func(tx EventTx) error {
		created = false
		sub, _, _, err := tx.LockSubscription(p.Topic, p.Name, false)
		if err != nil {
			return err
		}
		if sub != nil {
			if !sub.SameDefinition(&p) {
				return &store.ConflictError{Resource: "subscription", Name: p.Topic + "/" + p.Name,
					Reason: "exists with another definition: delete it first, or use another name"}
			}
			return nil
		}
		cursor, err := cursorFor(tx, p.Topic, p.From)
		if err != nil {
			return err
		}
		now := tx.Now()
		created = true
		return tx.InsertSubscription(&store.Subscription{Topic: p.Topic, Name: p.Name, Queue: store.SubscriptionQueue(p.Topic, p.Name),
			Kinds: p.Kinds, Ordered: p.Ordered, OnDeadHead: p.OnDeadHead, LockFor: p.LockFor, MaxAttempts: p.MaxAttempts, MaxDeliveries: p.MaxDeliveries,
			RetryBase: p.RetryBase, RetryMax: p.RetryMax, Cursor: cursor, CreatedAt: now, UpdatedAt: now})
	})
	if err != nil {
		return nil, false, err
	}
	sub, err := e.GetSubscription(ctx, p.Topic, p.Name)
	return sub, created, err
}

// cursorFor is the cursor that makes at the next event routed.
func cursorFor(tx EventTx, topic string, at store.StartAt) (int64, error) {
	switch at.From {
	case store.StartBegin:
		return 0, nil
	case store.StartPosition:
		return at.Position - 1, nil
	case store.StartTime:
		first, err := tx.FirstAt(topic, at.Time)
		return first - 1, err
	}
	return tx.Head(topic) // StartNow
}

// GetSubscription implements store.EventStore.
func (e *Store) GetSubscription(ctx context.Context, topic, name string) (*store.Subscription, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return nil, err
	}
	if err := store.ValidSubscriptionRef(topic, name); err != nil {
		return nil, err
	}
	subs, err := ed.Subscriptions(ctx, topic, name)
	if err != nil {
		return nil, err
	}
	if len(subs) == 0 {
		return nil, subscriptionNotFound(topic, name)
	}
	return subs[0], e.fillLag(ctx, ed, subs[0])
}

// ListSubscriptions implements store.EventStore.
func (e *Store) ListSubscriptions(ctx context.Context, topic string) ([]*store.Subscription, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return nil, err
	}
	if topic != "" {
		if err := store.ValidTopic(topic); err != nil {
			return nil, err
		}
	}
	subs, err := ed.Subscriptions(ctx, topic, "")
	if err != nil {
		return nil, err
	}
	for _, s := range subs {
		if err := e.fillLag(ctx, ed, s); err != nil {
			return nil, err
		}
	}
	return subs, nil
}

// fillLag computes sub.Lag from the driver's readings.
func (e *Store) fillLag(ctx context.Context, ed EventDriver, sub *store.Subscription) error {
	f, err := ed.LagFacts(ctx, sub)
	if err != nil {
		return err
	}
	now := e.d.Now()
	lag := store.Lag{Head: f.Head, Unrouted: max(f.Head-sub.Cursor, 0), Pending: f.Pending, Dead: f.Dead}
	lag.Behind = lag.Unrouted + int64(lag.Pending)
	var oldest time.Time
	for _, t := range []time.Time{f.NextEventAt, f.OldestPending} {
		if !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
			oldest = t
		}
	}
	if !oldest.IsZero() {
		lag.OldestAge = max(now.Sub(oldest), 0)
	}
	lag.HoldsRetention = f.Retention > 0 && !f.NextEventAt.IsZero() && now.Sub(f.NextEventAt) > f.Retention
	sub.Lag = lag
	return nil
}

// lockedSubscription runs fn on a subscription locked in an event
// transaction, or returns a *NotFoundError.
func (e *Store) lockedSubscription(ctx context.Context, topic, name string, grows bool, fn func(tx EventTx, sub *store.Subscription, lastID store.ID) error) error {
	ed, err := e.events(ctx)
	if err != nil {
		return err
	}
	if err := store.ValidSubscriptionRef(topic, name); err != nil {
		return err
	}
	return ed.EventTx(ctx, grows, func(tx EventTx) error {
		sub, lastID, _, err := tx.LockSubscription(topic, name, false)
		if err != nil {
			return err
		}
		if sub == nil {
			return subscriptionNotFound(topic, name)
		}
		return fn(tx, sub, lastID)
	})
}

// PauseSubscription implements store.EventStore: its queue is paused.
func (e *Store) PauseSubscription(ctx context.Context, topic, name string) error {
	return e.pauseSubscription(ctx, topic, name, true)
}

// ResumeSubscription implements store.EventStore.
func (e *Store) ResumeSubscription(ctx context.Context, topic, name string) error {
	return e.pauseSubscription(ctx, topic, name, false)
}

func (e *Store) pauseSubscription(ctx context.Context, topic, name string, paused bool) error {
	if _, err := e.GetSubscription(ctx, topic, name); err != nil {
		return err
	}
	return e.d.SetQueuePaused(ctx, store.SubscriptionQueue(topic, name), paused)
}

// DeleteSubscription implements store.EventStore.
func (e *Store) DeleteSubscription(ctx context.Context, topic, name string) error {
	return e.lockedSubscription(ctx, topic, name, false, func(tx EventTx, sub *store.Subscription, _ store.ID) error {
		if err := tx.DeleteSubscription(sub); err != nil {
			return err
		}
		_, err := tx.ForgetInbox(sub.Ref())
		return err
	})
}

// RewindSubscription implements store.EventStore.
func (e *Store) RewindSubscription(ctx context.Context, topic, name string, to store.StartAt) (*store.Subscription, error) {
	if to.From == "" {
		to.From = store.StartBegin
	}
	if err := to.Validate(); err != nil {
		return nil, err
	}
	err := e.lockedSubscription(ctx, topic, name, false, func(tx EventTx, sub *store.Subscription, lastID store.ID) error {
		cursor, err := cursorFor(tx, topic, to)
		if err != nil {
			return err
		}
		if _, err := tx.DropWaiting(sub.Queue); err != nil {
			return err
		}
		return tx.SetCursor(topic, name, cursor, lastID)
	})
	if err != nil {
		return nil, err
	}
	return e.GetSubscription(ctx, topic, name)
}

// DefaultRoute is how many events one Route call looks at by default.
const DefaultRoute = 1000

// Route implements store.EventStore.
func (e *Store) Route(ctx context.Context, p store.RouteParams) (store.RouteResult, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return store.RouteResult{}, err
	}
	if err := store.ValidSubscriptionRef(p.Topic, p.Name); err != nil {
		return store.RouteResult{}, err
	}
	p.Limit = cmp.Or(p.Limit, DefaultRoute)
	if p.Limit < 1 || p.Limit > store.MaxRoute {
		return store.RouteResult{}, &store.ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, store.MaxRoute)}
	}
	if p.MaxPending < 0 {
		return store.RouteResult{}, &store.ValidationError{Field: "max_pending", Reason: fmt.Sprintf("%d is negative", p.MaxPending)}
	}
	var res store.RouteResult
	err = ed.EventTx(ctx, true, func(tx EventTx) error {
		res = store.RouteResult{}
		sub, lastID, busy, err := tx.LockSubscription(p.Topic, p.Name, true)
		switch {
		case err != nil:
			return err
		case busy:
			res.Busy = true
			return nil
		case sub == nil:
			return subscriptionNotFound(p.Topic, p.Name)
		}
		res.Cursor = sub.Cursor
		if res.Head, err = tx.Head(p.Topic); err != nil || res.Head <= sub.Cursor {
			return err
		}
		limit := p.Limit
		if p.MaxPending > 0 {
			n, err := tx.CountWaiting(sub.Queue)
			if err != nil {
				return err
			}
			if n >= p.MaxPending {
				res.Full = true
				return nil
			}
			if sub.Ordered || p.Spread <= 1 { // one job per event: room for this many
				limit = min(limit, p.MaxPending-n)
			}
		}
		evs, err := tx.EventsAfter(p.Topic, sub.Cursor, limit)
		if err != nil || len(evs) == 0 {
			return err
		}
		var wanted []*store.Event
		for _, ev := range evs {
			if sub.WantsKind(ev.Kind) {
				wanted = append(wanted, ev)
			} else {
				res.Filtered++
			}
		}
		jobs, err := deliveries(sub, wanted, p.Spread, tx.Now(), &lastID)
		if err != nil {
			return err
		}
		if len(jobs) > 0 {
			if _, err := tx.InsertJobs(jobs); err != nil {
				return err
			}
		}
		res.Routed, res.Jobs = len(wanted), len(jobs)
		res.Cursor = evs[len(evs)-1].Position
		return tx.SetCursor(p.Topic, p.Name, res.Cursor, lastID)
	})
	return res, err
}

// deliveries makes the jobs that deliver events to sub: one per event for
// an ordered subscription (each in its key's line, which a dead delivery
// keeps blocked when the subscription's OnDeadHead is block) or without a
// spread, else batches of about len(events)/spread events, within
// MaxBatchEvents and MaxBatchBytes. lastID advances past their IDs.
func deliveries(sub *store.Subscription, events []*store.Event, spread int, now time.Time, lastID *store.ID) ([]store.EnqueueParams, error) {
	size := 1
	if !sub.Ordered && spread > 1 {
		size = min(store.MaxBatchEvents, max(1, (len(events)+spread-1)/spread))
	}
	jobs := make([]store.EnqueueParams, 0, (len(events)+size-1)/size)
	add := func(kind, tenant, key string, payload []byte) {
		*lastID = nextID(*lastID)
		j := store.EnqueueParams{ID: *lastID, Queue: sub.Queue, Kind: kind, Payload: payload, RunAt: now,
			Tenant: tenant, MaxAttempts: sub.MaxAttempts, MaxDeliveries: sub.MaxDeliveries}
		if sub.Ordered && key != "" {
			j.OrderingKey = store.DeliveryOrderingKey(sub.Queue, key)
			j.HoldKeyWhenDead = sub.OnDeadHead == store.DeadHeadBlock
		}
		jobs = append(jobs, j)
	}
	for len(events) > 0 {
		n, bytes := 1, eventSize(events[0])
		for n < size && n < len(events) && bytes+eventSize(events[n]) <= store.MaxBatchBytes {
			bytes += eventSize(events[n])
			n++
		}
		if n == 1 {
			ev := events[0]
			payload, err := store.EncodeDelivery(ev)
			if err != nil {
				return nil, err
			}
			add(ev.Kind, ev.Tenant, ev.Key, payload)
		} else {
			payload, err := store.EncodeBatch(events[:n])
			if err != nil {
				return nil, err
			}
			add(store.BatchKind, "", "", payload)
		}
		events = events[n:]
	}
	return jobs, nil
}

// eventSize bounds the bytes an event takes in a batch's payload (base64
// makes a payload 4/3 larger).
func eventSize(e *store.Event) int {
	n := 512 + len(e.ID) + len(e.Key) + 2*len(e.Payload)
	for k, v := range e.Headers {
		n += len(k) + len(v) + 8
	}
	return n
}

// nextID returns a new ID greater than last, so that one subscription's
// deliveries are in position order by ID (the order an ordering key's line
// follows) even when routers on several machines with skewed clocks take
// turns.
func nextID(last store.ID) store.ID {
	id := store.NewID()
	if bytes.Compare(id[:], last[:]) > 0 {
		return id
	}
	id = last
	for i := len(id) - 1; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			break
		}
	}
	return id
}

// PruneEvents implements store.EventStore.
func (e *Store) PruneEvents(ctx context.Context, p store.PruneEventsParams) (int, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return 0, err
	}
	p.Limit = cmp.Or(p.Limit, store.DefaultPruneLimit)
	if p.Limit < 1 || p.Limit > store.MaxPruneLimit {
		return 0, &store.ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is outside 1..%d", p.Limit, store.MaxPruneLimit)}
	}
	var n int
	err = ed.EventTx(ctx, false, func(tx EventTx) error {
		var err error
		if n, err = tx.PruneEvents(p.Limit); err != nil {
			return err
		}
		if !p.InboxBefore.IsZero() {
			return tx.PruneInbox(p.InboxBefore)
		}
		return nil
	})
	return n, err
}

// ForgetInbox implements store.EventStore.
func (e *Store) ForgetInbox(ctx context.Context, consumer string) (int, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return 0, err
	}
	if err := checkInboxKey(consumer, "x"); err != nil {
		return 0, err
	}
	var n int
	err = ed.EventTx(ctx, false, func(tx EventTx) error {
		var err error
		n, err = tx.ForgetInbox(consumer)
		return err
	})
	return n, err
}

// MarkSeenTx implements store.EventSQLTx.
func (e *Store) MarkSeenTx(ctx context.Context, tx *sql.Tx, consumer, id string) (bool, error) {
	ed, err := e.events(ctx)
	if err != nil {
		return false, err
	}
	if tx == nil {
		return false, &store.ValidationError{Field: "tx", Reason: "is nil"}
	}
	var first bool
	err = ed.EventTxOn(ctx, tx, func(t EventTx) error {
		var err error
		first, err = MarkSeenIn(t, consumer, id)
		return err
	})
	return first, err
}

// MarkSeenIn validates and records an inbox entry in tx.
func MarkSeenIn(tx EventTx, consumer, id string) (bool, error) {
	if err := checkInboxKey(consumer, id); err != nil {
		return false, err
	}
	return tx.MarkSeen(consumer, id)
}

func checkInboxKey(consumer, id string) error {
	if consumer == "" || id == "" {
		return &store.ValidationError{Field: "inbox", Reason: "consumer and message id are required"}
	}
	if len(consumer) > store.MaxKeyLen || len(id) > store.MaxKeyLen {
		return &store.LimitError{Field: "inbox key length", Limit: store.MaxKeyLen, Got: max(len(consumer), len(id))}
	}
	return nil
}
