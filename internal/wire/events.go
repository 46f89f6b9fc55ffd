package wire

import (
	"encoding/json"
	"time"

	"github.com/spoolrun/spool/store"
)

// Event is how an event looks in JSON output. Times are RFC 3339 in UTC; a
// payload that is JSON is embedded as it is, other bytes are given
// base64-encoded in payload_base64. Key, version, tenant and headers are
// absent when unset (an event without a key has no version).
type Event struct {
	Topic         string            `json:"topic"`
	Position      int64             `json:"position"`
	ID            string            `json:"id"`
	Kind          string            `json:"kind"`
	Key           string            `json:"key,omitempty"`
	Version       int64             `json:"version,omitempty"`
	Tenant        string            `json:"tenant,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64 string            `json:"payload_base64,omitempty"`
	PublishedAt   time.Time         `json:"published_at"`
}

// EventOf returns the view of an event.
func EventOf(e *store.Event) Event {
	v := Event{
		Topic:       e.Topic,
		Position:    e.Position,
		ID:          e.ID,
		Kind:        e.Kind,
		Key:         e.Key,
		Version:     e.Version,
		Tenant:      e.Tenant,
		Headers:     e.Headers,
		PublishedAt: e.PublishedAt.UTC(),
	}
	v.Payload, v.PayloadBase64 = bytesView(e.Payload)
	return v
}

// EventsOf returns the views of events.
func EventsOf(events []*store.Event) []Event {
	out := make([]Event, len(events))
	for i, e := range events {
		out[i] = EventOf(e)
	}
	return out
}

// EventPage is one page of a topic's events: {"events": [...], "next": N}.
type EventPage struct {
	Events []Event `json:"events"`
	// Next is the "after" of the next page (a position, or a stream
	// version when reading one key's stream); 0 on the last page.
	Next int64 `json:"next"`
}

// EventPageOf returns the view of a page of events.
func EventPageOf(p *store.EventPage) EventPage {
	return EventPage{Events: EventsOf(p.Events), Next: p.Next}
}

// PublishResult is what a publish answers for one event: its topic, ID,
// position, its version in its key's stream (absent without a key), and
// whether the topic had the ID already (nothing was written: the rest
// describes the stored event).
type PublishResult struct {
	Topic     string `json:"topic"`
	ID        string `json:"id"`
	Position  int64  `json:"position"`
	Version   int64  `json:"version,omitempty"`
	Duplicate bool   `json:"duplicate"`
}

// PublishResultOf returns the view of a publish's result for topic.
func PublishResultOf(topic string, r store.PublishResult) PublishResult {
	return PublishResult{Topic: topic, ID: r.ID, Position: r.Position, Version: r.Version, Duplicate: r.Duplicate}
}

// Topic is how a topic looks in JSON output. retention_seconds is null
// when the topic keeps its events forever (the default); oldest is the
// first position still kept, absent when the topic keeps none; published
// is when its last event was published, absent before the first.
type Topic struct {
	Name             string     `json:"name"`
	Head             int64      `json:"head"`
	Oldest           int64      `json:"oldest,omitempty"`
	RetentionSeconds *float64   `json:"retention_seconds"`
	Published        *time.Time `json:"published,omitempty"`
}

// TopicOf returns the view of a topic.
func TopicOf(t store.TopicInfo) Topic {
	v := Topic{Name: t.Name, Head: t.Head, Oldest: t.Oldest, Published: timePtr(t.Published)}
	if t.Retention != store.KeepEvents {
		s := t.Retention.Seconds()
		v.RetentionSeconds = &s
	}
	return v
}

// TopicsOf returns the views of topics.
func TopicsOf(topics []store.TopicInfo) []Topic {
	out := make([]Topic, len(topics))
	for i, t := range topics {
		out[i] = TopicOf(t)
	}
	return out
}

// Subscription is how a durable subscription looks in JSON output, with its
// lag. Durations are in seconds, as in the queue statistics; kinds is empty
// when the subscription takes every kind. on_dead_head is "skip" or "block":
// what a dead-lettered delivery does to the rest of its key's events.
type Subscription struct {
	Topic            string    `json:"topic"`
	Name             string    `json:"name"`
	Queue            string    `json:"queue"`
	Kinds            []string  `json:"kinds"`
	Ordered          bool      `json:"ordered"`
	OnDeadHead       string    `json:"on_dead_head"`
	Paused           bool      `json:"paused"`
	LockForSeconds   float64   `json:"lock_for_seconds"`
	MaxAttempts      int       `json:"max_attempts"`
	MaxDeliveries    int       `json:"max_deliveries"`
	RetryBaseSeconds float64   `json:"retry_base_seconds"`
	RetryMaxSeconds  float64   `json:"retry_max_seconds"`
	Cursor           int64     `json:"cursor"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	Lag              Lag       `json:"lag"`
}

// Lag says how far behind a subscription is: the topic's head, the events
// after its cursor not yet routed to it, its deliveries not finished and
// dead, their sum (behind), how long the oldest event not yet handled has
// waited, and whether it holds events past the topic's retention (it fell
// behind).
type Lag struct {
	Head             int64   `json:"head"`
	Unrouted         int64   `json:"unrouted"`
	Pending          int     `json:"pending"`
	Dead             int     `json:"dead"`
	Behind           int64   `json:"behind"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	HoldsRetention   bool    `json:"holds_retention"`
}

// SubscriptionOf returns the view of a subscription.
func SubscriptionOf(s *store.Subscription) Subscription {
	kinds := []string{}
	kinds = append(kinds, s.Kinds...)
	return Subscription{
		Topic:            s.Topic,
		Name:             s.Name,
		Queue:            s.Queue,
		Kinds:            kinds,
		Ordered:          s.Ordered,
		OnDeadHead:       string(s.OnDeadHead),
		Paused:           s.Paused,
		LockForSeconds:   s.LockFor.Seconds(),
		MaxAttempts:      s.MaxAttempts,
		MaxDeliveries:    s.MaxDeliveries,
		RetryBaseSeconds: s.RetryBase.Seconds(),
		RetryMaxSeconds:  s.RetryMax.Seconds(),
		Cursor:           s.Cursor,
		CreatedAt:        s.CreatedAt.UTC(),
		UpdatedAt:        s.UpdatedAt.UTC(),
		Lag: Lag{
			Head:             s.Lag.Head,
			Unrouted:         s.Lag.Unrouted,
			Pending:          s.Lag.Pending,
			Dead:             s.Lag.Dead,
			Behind:           s.Lag.Behind,
			OldestAgeSeconds: s.Lag.OldestAge.Seconds(),
			HoldsRetention:   s.Lag.HoldsRetention,
		},
	}
}

// SubscriptionsOf returns the views of subscriptions.
func SubscriptionsOf(subs []*store.Subscription) []Subscription {
	out := make([]Subscription, len(subs))
	for i, s := range subs {
		out[i] = SubscriptionOf(s)
	}
	return out
}

// CreatedSubscription is a subscription as a create left it, with whether
// the create made it (false: one with the same definition existed, and
// nothing changed).
type CreatedSubscription struct {
	Subscription
	Created bool `json:"created"`
}
