package store

import (
	"context"
	"database/sql"
	"time"
)

// EventStore is the capability of keeping topics of events next to the jobs
// (Capabilities.Events): a retained log per topic, durable subscriptions
// that each get their own delivery of every event as a job, streams per
// ordering key with expected-version appends, and an inbox for idempotent
// consumers. docs/events.md has the model and the guarantees.
//
// Positions are gap-safe: a reader that has seen position p has seen every
// committed event of the topic below p. Publishers of a topic take its
// position counter under a lock held until their transaction commits, so
// positions are handed out in commit order (a rolled-back publish gives its
// positions back).
type EventStore interface {
	// Publish validates and appends events to a topic, all or nothing: if
	// any is invalid the call returns the *ItemError of each (joined) and
	// writes nothing. Results are in input order. An event whose ID the
	// topic already has is not appended again: its result names the stored
	// event, with Duplicate.
	Publish(ctx context.Context, topic string, events []EventInput) ([]PublishResult, error)

	// Append appends events to the stream of one key (an aggregate) in a
	// topic if the stream is at version expected (NoStream: it has no
	// events yet; AnyVersion: no check); otherwise it writes nothing and
	// returns a *ConflictError with the stream's current version. Each
	// event's Key must be empty or the stream's key. The events are
	// published to the topic like Publish's.
	Append(ctx context.Context, topic, key string, expected int64, events []EventInput) ([]PublishResult, error)

	// ReadEvents returns events of a topic in position order, a page at a
	// time; with Key, one stream's events (in version order).
	ReadEvents(ctx context.Context, p ReadEventsParams) (*EventPage, error)

	// GetEvent returns the event with this ID in a topic; an empty topic
	// looks in every topic and returns the first found. A *NotFoundError
	// when there is none.
	GetEvent(ctx context.Context, topic, id string) (*Event, error)

	// Topics lists the topics that have events or settings, with their heads.
	Topics(ctx context.Context) ([]TopicInfo, error)

	// SetTopicRetention keeps a topic's events for at least d (KeepEvents:
	// forever, the default). Retention never deletes an event a
	// subscription has not yet been handed.
	SetTopicRetention(ctx context.Context, topic string, d time.Duration) error

	// CreateSubscription creates a durable subscription. Creating one that
	// exists with the same definition returns it with created false; with
	// another definition, a *ConflictError (version 0 vs 0: delete it or
	// use another name). The start point only matters when it is created.
	CreateSubscription(ctx context.Context, p SubscriptionParams) (sub *Subscription, created bool, err error)

	// GetSubscription returns a subscription with its lag, or a *NotFoundError.
	GetSubscription(ctx context.Context, topic, name string) (*Subscription, error)

	// ListSubscriptions returns every subscription of a topic (of every
	// topic when topic is empty) with its lag, by topic then name.
	ListSubscriptions(ctx context.Context, topic string) ([]*Subscription, error)

	// PauseSubscription stops a subscription's deliveries from being
	// claimed (events keep being routed to it); ResumeSubscription starts
	// them again. A *NotFoundError when it does not exist.
	PauseSubscription(ctx context.Context, topic, name string) error
	ResumeSubscription(ctx context.Context, topic, name string) error

	// DeleteSubscription deletes a subscription and every delivery it has,
	// including dead letters, and its inbox entries (consumer "TOPIC/NAME").
	// A holder's settle of a deleted delivery is refused (not found).
	DeleteSubscription(ctx context.Context, topic, name string) error

	// RewindSubscription moves a subscription's cursor so that the next
	// event routed to it is the first at or after to. Deliveries waiting to
	// be claimed are dropped (the rewound cursor routes them again, or
	// skips them when rewinding forward); running ones finish. Dead ones
	// are kept, so with OnDeadHead block a dead delivery still blocks its
	// key for the events routed again until it is requeued or purged. It
	// returns the subscription as it now is.
	RewindSubscription(ctx context.Context, topic, name string, to StartAt) (*Subscription, error)

	// Route turns up to Limit events after a subscription's cursor into
	// deliveries (jobs in the subscription's queue), skipping events whose
	// kind the subscription filters out, and moves the cursor past them,
	// in one transaction: an event is routed once, or again only after a
	// rewind. When the subscription already has MaxPending deliveries
	// waiting to be claimed (0: no limit) it routes nothing. A subscription
	// another caller is routing right now is left to it (Busy).
	Route(ctx context.Context, p RouteParams) (RouteResult, error)

	// ForgetInbox deletes the inbox entries of consumer (as recorded by
	// EventSQLTx.MarkSeenTx) and returns how many: before a projection that
	// uses the inbox is rebuilt by a rewind, or its replayed events would
	// all be found seen.
	ForgetInbox(ctx context.Context, consumer string) (int, error)

	// PruneEvents deletes up to Limit events past their topic's retention
	// that every subscription of the topic has been handed, and inbox
	// entries older than InboxBefore (zero: none); it returns how many
	// events it deleted.
	PruneEvents(ctx context.Context, p PruneEventsParams) (int, error)
}

// EventSQLTx is the capability of SQL backends to publish inside a caller's
// transaction (the outbox: the events commit or roll back with the caller's
// rows) and to record an inbox entry there. The caller's *sql.Tx must be on
// the store's database.
type EventSQLTx interface {
	PublishTx(ctx context.Context, tx *sql.Tx, topic string, events []EventInput) ([]PublishResult, error)
	AppendTx(ctx context.Context, tx *sql.Tx, topic, key string, expected int64, events []EventInput) ([]PublishResult, error)
	// MarkSeenTx records that consumer (such as "orders/email") has handled
	// message id (an event or job ID) and reports whether this is the first
	// time. Call it in the transaction of the handler's own writes: a
	// redelivery then finds the mark and does nothing, and a rolled-back
	// handler leaves no mark.
	MarkSeenTx(ctx context.Context, tx *sql.Tx, consumer, id string) (first bool, err error)
}

// EventInput is one event to publish.
type EventInput struct {
	// ID identifies the event: at most MaxKeyLen bytes; default a new
	// UUIDv7. Publishing an ID the topic has is a no-op that returns the
	// stored event (producer retries are safe).
	ID string
	// Kind is the event's type name, such as "order.placed". Required.
	Kind    string
	Payload []byte // at most MaxEventPayload
	// Key orders and groups events: an aggregate's ID, for example. Events
	// of one key form a stream with versions 1, 2, 3...; an ordered
	// subscription handles them one at a time in that order. At most
	// MaxEventKeyLen bytes.
	Key     string
	Tenant  string
	Headers map[string]string // at most MaxHeaders entries of MaxHeaderBytes in all
}

// Event is one event as the log keeps it.
type Event struct {
	Topic    string `json:"topic"`
	Position int64  `json:"position"` // 1, 2, 3... per topic, in commit order
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Key      string `json:"key,omitempty"`
	// Version is the event's place in its key's stream (1, 2, 3...); zero
	// without a key.
	Version     int64             `json:"version,omitempty"`
	Tenant      string            `json:"tenant,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Payload     []byte            `json:"payload,omitempty"`
	PublishedAt time.Time         `json:"published_at"`
}

// PublishResult reports what happened to one EventInput.
type PublishResult struct {
	ID        string `json:"id"`
	Position  int64  `json:"position"`
	Version   int64  `json:"version,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"` // the topic had this ID: nothing was written
}

// Stream versions with a meaning of their own for Append.
const (
	AnyVersion int64 = -1 // append whatever the stream's version
	NoStream   int64 = 0  // the stream must have no events yet
)

// Limits on events and subscriptions.
const (
	MaxEventPayload = MaxPayloadBytes - 64<<10 // room for the delivery's envelope
	MaxEventKeyLen  = 120                      // leaves room for the subscription in a delivery's ordering key
	MaxHeaders      = 32
	MaxHeaderBytes  = 8 << 10 // names and values of one event's headers together
	MaxReadEvents   = 10_000  // events in one ReadEvents page
	MaxRoute        = 10_000  // events one Route call looks at
	// MaxSubscriptionRef is the longest topic plus name: a subscription's
	// queue, "sub/TOPIC/NAME", is a queue name.
	MaxSubscriptionRef = MaxNameLen - 5
	// KeepEvents is the retention that keeps a topic's events forever.
	KeepEvents time.Duration = -1
)

// ReadEventsParams selects events of one topic.
type ReadEventsParams struct {
	Topic string
	// After is a position: only events after it (0: from the first). With
	// Key it is a stream version instead.
	After int64
	Key   string
	Limit int // 1..MaxReadEvents; default DefaultListLimit
}

// EventPage is one page of ReadEvents.
type EventPage struct {
	Events []*Event
	// Next is the After of the next page; zero when this is the last.
	Next int64
}

// TopicInfo describes one topic.
type TopicInfo struct {
	Name      string        `json:"name"`
	Head      int64         `json:"head"`               // the last position given out; 0 before the first event
	Retention time.Duration `json:"retention_ns"`       // KeepEvents: forever
	Oldest    int64         `json:"oldest,omitempty"`   // the first position still kept
	Published time.Time     `json:"published,omitzero"` // when the last event was published
}

// StartAt says where a subscription starts, or where a rewind moves it.
// The zero value is StartNow.
type StartAt struct {
	From     StartFrom `json:"from"`
	Position int64     `json:"position,omitempty"` // StartPosition: the first event to route (≥ 1)
	Time     time.Time `json:"time,omitzero"`      // StartTime: the first event published at or after it
}

// StartFrom names a kind of start point.
type StartFrom string

// Start points.
const (
	StartNow      StartFrom = "now"      // only events published after the subscription is created (the default)
	StartBegin    StartFrom = "start"    // from the first event the topic still keeps
	StartPosition StartFrom = "position" // from StartAt.Position
	StartTime     StartFrom = "time"     // from the first event published at or after StartAt.Time
)

// SubscriptionParams defines a subscription. Zero fields take the
// documented defaults.
type SubscriptionParams struct {
	Topic string
	Name  string
	// From is where a new subscription starts. Default StartNow.
	From StartAt
	// Kinds limits the subscription to these event kinds; empty: every kind.
	Kinds []string
	// Ordered hands a key's events out one at a time, in publish order:
	// the next waits until the previous completed or was cancelled. What
	// happens when it is dead-lettered is OnDeadHead's choice.
	Ordered bool
	// OnDeadHead says what a dead-lettered delivery does to the rest of
	// its key's events in an ordered subscription: DeadHeadSkip (the
	// default) skips it, keeping it in the dead letters, and the key's
	// next event runs; DeadHeadBlock stops the key there until the dead
	// delivery is requeued (it runs again, in its place) or purged (it is
	// skipped), while other keys go on. Block needs Ordered.
	OnDeadHead DeadHeadPolicy
	// LockFor is how long a claim holds a delivery. Default 30s.
	LockFor time.Duration
	// MaxAttempts and MaxDeliveries bound each delivery, as for jobs.
	// Defaults DefaultMaxAttempts and DefaultMaxDeliveries.
	MaxAttempts   int
	MaxDeliveries int
	// RetryBase and RetryMax bound the exponential backoff between failed
	// attempts. Defaults 1s and 1h.
	RetryBase time.Duration
	RetryMax  time.Duration
}

// DeadHeadPolicy is what an ordered subscription does when the delivery at
// the head of a key's line is dead-lettered (SubscriptionParams.OnDeadHead).
type DeadHeadPolicy string

// Dead-head policies.
const (
	// DeadHeadSkip: the dead delivery leaves the line (it is kept in the
	// dead letters) and the key's next event runs.
	DeadHeadSkip DeadHeadPolicy = "skip"
	// DeadHeadBlock: the dead delivery keeps its key's line blocked, while
	// other keys go on, until an operator requeues it (it runs again, still
	// first in line) or purges it (the line moves on). Its deliveries carry
	// EnqueueParams.HoldKeyWhenDead.
	DeadHeadBlock DeadHeadPolicy = "block"
)

// Subscription is a durable subscription as stored, with its lag.
type Subscription struct {
	Topic         string         `json:"topic"`
	Name          string         `json:"name"`
	Queue         string         `json:"queue"` // its deliveries' queue: "sub/TOPIC/NAME"
	Kinds         []string       `json:"kinds,omitempty"`
	Ordered       bool           `json:"ordered,omitempty"`
	OnDeadHead    DeadHeadPolicy `json:"on_dead_head"` // DeadHeadSkip or DeadHeadBlock (see SubscriptionParams)
	LockFor       time.Duration  `json:"lock_for_ns"`
	MaxAttempts   int            `json:"max_attempts"`
	MaxDeliveries int            `json:"max_deliveries"`
	RetryBase     time.Duration  `json:"retry_base_ns"`
	RetryMax      time.Duration  `json:"retry_max_ns"`
	Paused        bool           `json:"paused,omitempty"`
	// Cursor is the last position routed to the subscription: every event
	// up to it has a delivery (or was filtered out).
	Cursor    int64     `json:"cursor"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Lag       Lag       `json:"lag"`
}

// Ref is the subscription's "TOPIC/NAME".
func (s *Subscription) Ref() string { return s.Topic + "/" + s.Name }

// Lag says how far behind a subscription is.
type Lag struct {
	Head     int64 `json:"head"`     // the topic's last position
	Unrouted int64 `json:"unrouted"` // events after the cursor (Head - Cursor)
	Pending  int   `json:"pending"`  // events routed and not finished (scheduled, available, running)
	Dead     int   `json:"dead"`     // events dead-lettered and kept
	// Behind is Unrouted + Pending: events not yet handled.
	Behind int64 `json:"behind"`
	// OldestAge is how long the oldest event not yet handled has waited
	// (zero when none): the older of the first unrouted event and the
	// oldest pending delivery.
	OldestAge time.Duration `json:"oldest_age_ns"`
	// HoldsRetention says the subscription has not been handed events past
	// the topic's retention, so they are kept for it: it fell behind.
	HoldsRetention bool `json:"holds_retention,omitempty"`
}

// RouteParams asks Route to route one subscription's events.
type RouteParams struct {
	Topic, Name string
	Limit       int // 1..MaxRoute; default 1000
	// MaxPending stops routing while this many delivery jobs wait to be
	// claimed (and, without batches, routes no more than makes up this
	// many); 0: no limit.
	MaxPending int
	// Spread packs the events of an unordered subscription into batches
	// (delivery jobs of kind BatchKind) of up to MaxBatchEvents, so that
	// one call's events make about Spread jobs: the consumers' capacity,
	// so that none sits idle while another works through a batch. 0 or 1:
	// one job per event. An ordered subscription has one job per event.
	Spread int
}

// MaxRouteAtPublish is the most events a publish (in the store's own
// transaction) routes itself to the subscriptions that are caught up;
// routers route larger ones.
const MaxRouteAtPublish = 256

// MaxBatchEvents is the most events one batch delivery carries; a batch's
// payload is also kept under MaxBatchBytes.
const (
	MaxBatchEvents = 64
	MaxBatchBytes  = MaxPayloadBytes / 2
)

// RouteResult says what Route did.
type RouteResult struct {
	Routed   int   // events routed: deliveries created
	Jobs     int   // the jobs that carry them (fewer with batches)
	Filtered int   // events passed over by the kind filter
	Cursor   int64 // the cursor after the call
	Head     int64 // the topic's last position
	Busy     bool  // another caller is routing this subscription
	Full     bool  // MaxPending deliveries wait already
}

// More reports whether events remain after the cursor.
func (r RouteResult) More() bool { return r.Cursor < r.Head }

// PruneEventsParams bounds PruneEvents.
type PruneEventsParams struct {
	Limit       int       // 1..MaxPruneLimit; default DefaultPruneLimit
	InboxBefore time.Time // inbox entries seen before it are deleted; zero: none
}

// SubscriptionQueue is the queue of a subscription's deliveries.
func SubscriptionQueue(topic, name string) string {
	return SubscriptionQueuePrefix + topic + "/" + name
}

// SubscriptionQueuePrefix starts the name of every subscription's delivery
// queue.
const SubscriptionQueuePrefix = "sub/"

// TopicSignal is the name under which Notifier.Available signals that a
// topic has new events. It is not a valid queue name, so it never collides
// with one.
func TopicSignal(topic string) string { return "$topic/" + topic }
