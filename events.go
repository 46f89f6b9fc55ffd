package spool

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool/store"
)

// Types of the events API, from package store.
type (
	// PublishResult reports one published event: its ID, position in the
	// topic, version in its key's stream, and whether the topic had it
	// already (Duplicate: nothing was written).
	PublishResult = store.PublishResult
	// StoredEvent is an event as the log keeps it.
	StoredEvent = store.Event
	// Subscription is a durable subscription with its lag.
	Subscription = store.Subscription
	// SubscriptionParams defines a subscription; see store.SubscriptionParams.
	SubscriptionParams = store.SubscriptionParams
	// StartAt says where a subscription starts or is rewound to.
	StartAt = store.StartAt
	// DeadHeadPolicy is what an ordered subscription does when a key's
	// head delivery is dead-lettered: DeadHeadSkip or DeadHeadBlock.
	DeadHeadPolicy = store.DeadHeadPolicy
	// Lag says how far behind a subscription is.
	Lag = store.Lag
	// ReadEventsParams selects events of a topic, or of one key's stream.
	ReadEventsParams = store.ReadEventsParams
	// EventPage is one page of Client.ReadEvents.
	EventPage = store.EventPage
	// TopicInfo describes a topic.
	TopicInfo = store.TopicInfo
)

// Stream versions for Client.Append.
const (
	AnyVersion = store.AnyVersion // append whatever the stream's version
	NoStream   = store.NoStream   // the stream must have no events yet
	// KeepEvents is the topic retention that keeps events forever (the default).
	KeepEvents = store.KeepEvents
)

// Dead-head policies of ordered subscriptions (SubscriptionParams.OnDeadHead).
const (
	// DeadHeadSkip: a dead-lettered delivery is skipped (kept in the dead
	// letters) and its key's next event runs. The default.
	DeadHeadSkip = store.DeadHeadSkip
	// DeadHeadBlock: a dead-lettered delivery blocks its key until it is
	// requeued (it runs again) or purged (it is skipped).
	DeadHeadBlock = store.DeadHeadBlock
)

// Start points of a subscription.
var (
	FromStart = StartAt{From: store.StartBegin} // the first event the topic keeps
	FromNow   = StartAt{From: store.StartNow}   // only events published from now on
)

// FromPosition starts at the event at position p (the first is 1).
func FromPosition(p int64) StartAt { return StartAt{From: store.StartPosition, Position: p} }

// FromTime starts at the first event published at or after t.
func FromTime(t time.Time) StartAt { return StartAt{From: store.StartTime, Time: t} }

// ErrEventsUnsupported is returned by the events API when the Client's
// store keeps no events (its Capabilities have no Events). It matches
// ErrUnsupported.
var ErrEventsUnsupported = fmt.Errorf("%w: events", store.ErrUnsupported)

// EventOptions describe an event beyond its kind and payload. A nil
// *EventOptions, and every zero field, means the default on the field.
type EventOptions struct {
	// ID identifies the event; default a new UUIDv7. Publishing an ID the
	// topic already has writes nothing and returns the stored event, so a
	// producer may retry a publish safely.
	ID string
	// Key orders and groups the event, such as its aggregate's ID: the
	// events of one key form a stream (versions 1, 2, 3...), and an ordered
	// subscription handles them one at a time in publish order.
	Key string
	// Tenant is carried to the deliveries (their jobs' tenant).
	Tenant string
	// Headers are small string metadata, such as a trace context.
	Headers map[string]string
}

// EventItem is one event ready to publish. Build it with Kind.Event for a
// typed payload or RawEvent for bytes.
type EventItem struct {
	in  store.EventInput
	err error
}

// RawEvent returns an event of kind whose payload is taken as is. opts may be nil.
func RawEvent(kind string, payload []byte, opts *EventOptions) EventItem {
	it := EventItem{in: store.EventInput{Kind: kind, Payload: payload}}
	if opts != nil {
		it.in.ID, it.in.Key, it.in.Tenant, it.in.Headers = opts.ID, opts.Key, opts.Tenant, opts.Headers
	}
	return it
}

// Event returns payload as an event of this kind, JSON-encoded, for
// Client.Publish. A payload that cannot be encoded is reported when it is
// published. opts may be nil.
func (k Kind[T]) Event(payload T, opts *EventOptions) EventItem {
	it := RawEvent(k.name, nil, opts)
	it.in.Payload, it.err = json.Marshal(payload)
	if it.err != nil {
		it.err = &store.ValidationError{Field: "payload", Reason: "cannot encode as JSON: " + it.err.Error()}
	}
	return it
}

func eventInputs(items []EventItem) ([]store.EventInput, error) {
	in := make([]store.EventInput, len(items))
	var errs []error
	for i, it := range items {
		in[i] = it.in
		if it.err != nil {
			errs = append(errs, &store.ItemError{Index: i, Err: it.err})
		}
	}
	return in, errors.Join(errs...)
}

func (c *Client) eventStore() (store.EventStore, error) {
	es := c.store.Capabilities().Events
	if es == nil {
		return nil, ErrEventsUnsupported
	}
	return es, nil
}

func (c *Client) eventTx() (store.EventSQLTx, error) {
	x := c.store.Capabilities().EventsSQLTx
	if x == nil {
		return nil, fmt.Errorf("%w: events in a caller's transaction", store.ErrUnsupported)
	}
	return x, nil
}

// Publish appends events to topic, all or nothing: if any is invalid the
// call writes nothing and returns a *store.ItemError for each bad one
// (joined, matching ErrInvalid). When it returns nil the events are
// durable, and every subscription of the topic gets its own delivery of
// each (after the filter of its kinds). Results are in input order.
func (c *Client) Publish(ctx context.Context, topic string, events ...EventItem) ([]PublishResult, error) {
	es, err := c.eventStore()
	if err != nil {
		return nil, err
	}
	in, err := eventInputs(events)
	if err != nil {
		return nil, err
	}
	return c.tracePublish(ctx, topic, in, func(in []store.EventInput) ([]PublishResult, error) {
		return es.Publish(ctx, topic, in)
	})
}

// PublishTx appends events to topic inside the caller's transaction tx (the
// outbox): they commit with the caller's rows, or vanish if tx rolls back.
// tx must be on the store's database. Publishers of one topic take turns
// from this call until tx ends: keep such transactions short.
func (c *Client) PublishTx(ctx context.Context, tx *sql.Tx, topic string, events ...EventItem) ([]PublishResult, error) {
	x, err := c.eventTx()
	if err != nil {
		return nil, err
	}
	in, err := eventInputs(events)
	if err != nil {
		return nil, err
	}
	return c.tracePublish(ctx, topic, in, func(in []store.EventInput) ([]PublishResult, error) {
		return x.PublishTx(ctx, tx, topic, in)
	})
}

// Append appends events to the stream of key (an aggregate's ID) in topic,
// only if the stream is at version expected (NoStream when it must not
// exist yet, AnyVersion for no check). Otherwise it writes nothing and
// returns a *store.ConflictError (matching ErrConflict) with the stream's
// current version: read the stream again and decide anew. The events are
// published to the topic like Publish's.
func (c *Client) Append(ctx context.Context, topic, key string, expected int64, events ...EventItem) ([]PublishResult, error) {
	es, err := c.eventStore()
	if err != nil {
		return nil, err
	}
	in, err := eventInputs(events)
	if err != nil {
		return nil, err
	}
	return c.tracePublish(ctx, topic, in, func(in []store.EventInput) ([]PublishResult, error) {
		return es.Append(ctx, topic, key, expected, in)
	})
}

// AppendTx is Append inside the caller's transaction tx.
func (c *Client) AppendTx(ctx context.Context, tx *sql.Tx, topic, key string, expected int64, events ...EventItem) ([]PublishResult, error) {
	x, err := c.eventTx()
	if err != nil {
		return nil, err
	}
	in, err := eventInputs(events)
	if err != nil {
		return nil, err
	}
	return c.tracePublish(ctx, topic, in, func(in []store.EventInput) ([]PublishResult, error) {
		return x.AppendTx(ctx, tx, topic, key, expected, in)
	})
}

// ReadEvents returns a page of a topic's events in position order, or with
// p.Key, of one stream in version order (p.After is then a version).
func (c *Client) ReadEvents(ctx context.Context, p ReadEventsParams) (*EventPage, error) {
	es, err := c.eventStore()
	if err != nil {
		return nil, err
	}
	return es.ReadEvents(ctx, p)
}

// GetEvent returns the event id of topic (of any topic when topic is
// empty), or an error matching ErrNotFound.
func (c *Client) GetEvent(ctx context.Context, topic, id string) (*StoredEvent, error) {
	es, err := c.eventStore()
	if err != nil {
		return nil, err
	}
	return es.GetEvent(ctx, topic, id)
}

// MarkSeen records, in the caller's transaction tx, that consumer has
// handled message id (an event or job ID), and reports whether it is the
// first time: the inbox of an idempotent consumer. Do it in the same
// transaction as the handler's own writes, and skip them when first is
// false: a redelivery then changes nothing, and a handler that rolls back
// leaves no mark. Entries are kept 7 days by default
// (MaintenanceConfig.InboxRetention).
func (c *Client) MarkSeen(ctx context.Context, tx *sql.Tx, consumer, id string) (first bool, err error) {
	x, err := c.eventTx()
	if err != nil {
		return false, err
	}
	return x.MarkSeenTx(ctx, tx, consumer, id)
}

// ForgetInbox deletes consumer's inbox entries (Event.MarkSeen records
// them under the subscription's "TOPIC/NAME"), so that the messages they
// name count as unseen again: do it when rebuilding a projection that uses
// the inbox, after clearing its state and before rewinding it. It returns
// how many entries it deleted.
func (c *Client) ForgetInbox(ctx context.Context, consumer string) (int, error) {
	es, err := c.eventStore()
	if err != nil {
		return 0, err
	}
	return es.ForgetInbox(ctx, consumer)
}

// Topics lists the topics with their heads and retention.
func (c *Client) Topics(ctx context.Context) ([]TopicInfo, error) {
	es, err := c.eventStore()
	if err != nil {
		return nil, err
	}
	return es.Topics(ctx)
}

// SetTopicRetention keeps a topic's events for d (KeepEvents: forever, the
// default). Events a subscription has not been handed are kept whatever
// their age; such a subscription reports Lag.HoldsRetention.
func (c *Client) SetTopicRetention(ctx context.Context, topic string, d time.Duration) error {
	es, err := c.eventStore()
	if err != nil {
		return err
	}
	return es.SetTopicRetention(ctx, topic, d)
}

// Subscriptions manages durable subscriptions. Get it from Client.Subscriptions.
type Subscriptions struct{ c *Client }

// Subscriptions returns the Client's subscription API. Its methods fail
// with ErrEventsUnsupported if the store keeps no events.
func (c *Client) Subscriptions() *Subscriptions { return &Subscriptions{c: c} }

// Create creates a subscription, or returns it when one with the same
// definition exists (so it is safe to call at every start). One that
// exists with another definition is a *store.ConflictError (ErrConflict).
func (x *Subscriptions) Create(ctx context.Context, p SubscriptionParams) (*Subscription, error) {
	es, err := x.c.eventStore()
	if err != nil {
		return nil, err
	}
	sub, _, err := es.CreateSubscription(ctx, p)
	return sub, err
}

// Get returns a subscription with its lag, or an error matching ErrNotFound.
func (x *Subscriptions) Get(ctx context.Context, topic, name string) (*Subscription, error) {
	es, err := x.c.eventStore()
	if err != nil {
		return nil, err
	}
	return es.GetSubscription(ctx, topic, name)
}

// List returns the subscriptions of topic (of every topic when empty) with their lag.
func (x *Subscriptions) List(ctx context.Context, topic string) ([]*Subscription, error) {
	es, err := x.c.eventStore()
	if err != nil {
		return nil, err
	}
	return es.ListSubscriptions(ctx, topic)
}

// Pause stops a subscription's deliveries from being handed out; events go
// on being routed to it and wait. Resume undoes it.
func (x *Subscriptions) Pause(ctx context.Context, topic, name string) error {
	es, err := x.c.eventStore()
	if err != nil {
		return err
	}
	return es.PauseSubscription(ctx, topic, name)
}

// Resume hands out a paused subscription's deliveries again.
func (x *Subscriptions) Resume(ctx context.Context, topic, name string) error {
	es, err := x.c.eventStore()
	if err != nil {
		return err
	}
	return es.ResumeSubscription(ctx, topic, name)
}

// Delete deletes a subscription and all its deliveries, dead letters included.
func (x *Subscriptions) Delete(ctx context.Context, topic, name string) error {
	es, err := x.c.eventStore()
	if err != nil {
		return err
	}
	return es.DeleteSubscription(ctx, topic, name)
}

// Rewind moves a subscription so the next event it gets is the first at or
// after to: FromStart to rebuild a projection from the whole log, or a
// position or time. Deliveries not yet claimed are dropped (rewinding routes
// them again, or skips them when moving forward). Rewind only what may run
// again: a projection that rebuilds its state, not a subscription that sends
// e-mails (see docs/events.md). The subscription's inbox entries are kept,
// so a handler that checks Event.MarkSeen skips what it handled before:
// call ForgetInbox first to rebuild.
func (x *Subscriptions) Rewind(ctx context.Context, topic, name string, to StartAt) (*Subscription, error) {
	es, err := x.c.eventStore()
	if err != nil {
		return nil, err
	}
	return es.RewindSubscription(ctx, topic, name, to)
}

// JobFailedError is returned by Request when the job finished without
// completing (cancelled or dead); Job has its error history.
type JobFailedError struct{ Job *Job }

func (e *JobFailedError) Error() string {
	msg := fmt.Sprintf("spool: job %s finished %s", e.Job.ID, e.Job.State)
	if n := len(e.Job.Errors); n > 0 {
		msg += ": " + e.Job.Errors[n-1].Message
	}
	return msg
}

// Request enqueues a command job and waits for it to finish: request and
// reply in one call, the reply being the job's result (read it with
// DecodeResult). The job's ID is the correlation ID. It returns the
// finished job, with a *JobFailedError when it was cancelled or
// dead-lettered. Bound the wait with ctx: when ctx ends first, Request
// returns ctx.Err() and the job stays queued (cancel it with Client.Cancel
// if the reply is no longer wanted).
func (c *Client) Request(ctx context.Context, it Item) (*Job, error) {
	res, err := c.EnqueueMany(ctx, it)
	if err != nil {
		return nil, unwrapSingle(err)
	}
	job, err := c.Wait(ctx, res[0].ID)
	if err != nil {
		return nil, err
	}
	if job.State != StateCompleted {
		return job, &JobFailedError{Job: job}
	}
	return job, nil
}
