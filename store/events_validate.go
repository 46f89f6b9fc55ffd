package store

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// ValidTopic reports why a topic name is unacceptable, or nil.
func ValidTopic(topic string) error { return ValidName("topic", topic, false) }

// ValidSubscriptionRef reports why a subscription's topic and name are
// unacceptable, or nil.
func ValidSubscriptionRef(topic, name string) error {
	err := errors.Join(ValidTopic(topic), ValidName("subscription", name, false))
	if err == nil && len(topic)+len(name) > MaxSubscriptionRef {
		err = &LimitError{Field: "topic and subscription name length", Limit: MaxSubscriptionRef, Got: len(topic) + len(name)}
	}
	return err
}

// Normalize fills an event's defaults (a new ID) and validates it,
// returning every mistake at once (errors.Join).
func (e *EventInput) Normalize() error {
	if e.ID == "" {
		e.ID = uuid.Must(uuid.NewV7()).String()
	}
	errs := []error{ValidName("kind", e.Kind, false), ValidName("tenant", e.Tenant, true)}
	if e.Kind == BatchKind {
		errs = append(errs, &ValidationError{Field: "kind", Reason: fmt.Sprintf("%q is reserved for batches of deliveries", BatchKind)})
	}
	if err := validKey("id", e.ID); err != nil {
		errs = append(errs, err)
	}
	if len(e.Key) > MaxEventKeyLen {
		errs = append(errs, &LimitError{Field: "key length", Limit: MaxEventKeyLen, Got: len(e.Key)})
	} else if err := validKey("key", e.Key); err != nil {
		errs = append(errs, err)
	}
	if len(e.Payload) > MaxEventPayload {
		errs = append(errs, &LimitError{Field: "payload size", Limit: MaxEventPayload, Got: len(e.Payload)})
	}
	if len(e.Headers) > MaxHeaders {
		errs = append(errs, &LimitError{Field: "headers", Limit: MaxHeaders, Got: len(e.Headers)})
	}
	size := 0
	for k, v := range e.Headers {
		size += len(k) + len(v)
		if k == "" {
			errs = append(errs, &ValidationError{Field: "headers", Reason: "has an empty name"})
		} else if err := validKey("header "+strconv.Quote(k), k+v); err != nil {
			errs = append(errs, err)
		}
	}
	if size > MaxHeaderBytes {
		errs = append(errs, &LimitError{Field: "headers size", Limit: MaxHeaderBytes, Got: size})
	}
	return errors.Join(errs...)
}

// NormalizeEvents copies events, fills their defaults and validates them,
// returning the *ItemError of each bad one, joined.
func NormalizeEvents(events []EventInput) ([]EventInput, error) {
	if len(events) > MaxBatch {
		return nil, &LimitError{Field: "events in one call", Limit: MaxBatch, Got: len(events)}
	}
	out := slices.Clone(events)
	var errs []error
	for i := range out {
		out[i].Headers = cloneHeaders(out[i].Headers)
		if err := out[i].Normalize(); err != nil {
			errs = append(errs, &ItemError{Index: i, Err: err})
		}
	}
	return out, errors.Join(errs...)
}

func cloneHeaders(h map[string]string) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = v
	}
	return out
}

// Normalize fills a subscription's defaults and validates it.
func (p *SubscriptionParams) Normalize() error {
	if p.From.From == "" {
		p.From.From = StartNow
	}
	if p.LockFor == 0 {
		p.LockFor = 30 * time.Second
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxDeliveries == 0 {
		p.MaxDeliveries = DefaultMaxDeliveries
	}
	if p.RetryBase == 0 {
		p.RetryBase = time.Second
	}
	if p.RetryMax == 0 {
		p.RetryMax = time.Hour
	}
	if p.OnDeadHead == "" {
		p.OnDeadHead = DeadHeadSkip
	}
	errs := []error{ValidSubscriptionRef(p.Topic, p.Name), p.From.Validate()}
	switch {
	case p.OnDeadHead != DeadHeadSkip && p.OnDeadHead != DeadHeadBlock:
		errs = append(errs, &ValidationError{Field: "on_dead_head", Reason: fmt.Sprintf("%q is not skip or block", p.OnDeadHead)})
	case p.OnDeadHead == DeadHeadBlock && !p.Ordered:
		errs = append(errs, &ValidationError{Field: "on_dead_head", Reason: "block needs an ordered subscription: an unordered one has no line to block"})
	}
	if p.LockFor < MinLockDuration || p.LockFor > MaxLockDuration {
		errs = append(errs, &ValidationError{Field: "lock_for", Reason: fmt.Sprintf("%v is outside %v..%v", p.LockFor, MinLockDuration, MaxLockDuration)})
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > MaxAttemptsLimit {
		errs = append(errs, &ValidationError{Field: "max_attempts", Reason: fmt.Sprintf("%d is outside 1..%d", p.MaxAttempts, MaxAttemptsLimit)})
	}
	if p.MaxDeliveries < 1 || p.MaxDeliveries > MaxAttemptsLimit {
		errs = append(errs, &ValidationError{Field: "max_deliveries", Reason: fmt.Sprintf("%d is outside 1..%d", p.MaxDeliveries, MaxAttemptsLimit)})
	}
	if p.RetryBase < 0 || p.RetryMax < p.RetryBase {
		errs = append(errs, &ValidationError{Field: "retry", Reason: fmt.Sprintf("base %v and max %v: need 0 < base <= max", p.RetryBase, p.RetryMax)})
	}
	kinds := slices.Clone(p.Kinds)
	slices.Sort(kinds)
	p.Kinds = slices.Compact(kinds)
	for _, k := range p.Kinds {
		errs = append(errs, ValidName("kinds", k, false))
	}
	if len(p.Kinds) == 0 {
		p.Kinds = nil
	}
	return errors.Join(errs...)
}

// Validate reports why a start point is unacceptable, or nil.
func (s StartAt) Validate() error {
	switch s.From {
	case StartNow, StartBegin:
		return nil
	case StartPosition:
		if s.Position < 1 {
			return &ValidationError{Field: "from", Reason: fmt.Sprintf("position %d: positions start at 1", s.Position)}
		}
		return nil
	case StartTime:
		if s.Time.IsZero() {
			return &ValidationError{Field: "from", Reason: "time is zero"}
		}
		return nil
	}
	return &ValidationError{Field: "from", Reason: fmt.Sprintf("%q is not start, now, a position or a time", s.From)}
}

// String is the start point as ParseStartAt reads it.
func (s StartAt) String() string {
	switch s.From {
	case StartPosition:
		return strconv.FormatInt(s.Position, 10)
	case StartTime:
		return s.Time.UTC().Format(time.RFC3339Nano)
	case "":
		return string(StartNow)
	}
	return string(s.From)
}

// ParseStartAt reads "start", "now", a position (1, 2, ...) or an RFC 3339 time.
func ParseStartAt(s string) (StartAt, error) {
	switch s {
	case "start", "beginning":
		return StartAt{From: StartBegin}, nil
	case "now", "":
		return StartAt{From: StartNow}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		at := StartAt{From: StartPosition, Position: n}
		return at, at.Validate()
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return StartAt{From: StartTime, Time: t}, nil
	}
	return StartAt{}, &ValidationError{Field: "from", Reason: fmt.Sprintf("%q is not start, now, a position or an RFC 3339 time", s)}
}

// SameDefinition reports whether a stored subscription has the definition
// p (normalized) asks for; the start point is not part of it.
func (s *Subscription) SameDefinition(p *SubscriptionParams) bool {
	return slices.Equal(s.Kinds, p.Kinds) && s.Ordered == p.Ordered && s.OnDeadHead == p.OnDeadHead && s.LockFor == p.LockFor &&
		s.MaxAttempts == p.MaxAttempts && s.MaxDeliveries == p.MaxDeliveries &&
		s.RetryBase == p.RetryBase && s.RetryMax == p.RetryMax
}

// WantsKind reports whether the subscription takes events of kind.
func (s *Subscription) WantsKind(kind string) bool {
	if len(s.Kinds) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(s.Kinds, kind)
	return ok
}

// DeliveryOrderingKey is the ordering key of an ordered subscription's
// deliveries of events with key: scoped to the subscription, so two
// subscriptions never wait for each other.
func DeliveryOrderingKey(queue, key string) string { return queue + "|" + key }

// envelope is a delivery's payload: the event, so a delivery needs nothing
// else to be handled. A payload that is JSON is kept as it is, readable in
// listings; any other is base64.
type envelope struct {
	Topic       string            `json:"topic"`
	Position    int64             `json:"position"`
	ID          string            `json:"id"`
	Key         string            `json:"key,omitempty"`
	Version     int64             `json:"version,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	PublishedAt time.Time         `json:"published_at"`
	Payload     json.RawMessage   `json:"payload,omitempty"`
	Payload64   string            `json:"payload_base64,omitempty"`
}

// BatchKind is the kind of a delivery job that carries several events of
// an unordered subscription (see Route). Events may not have it.
const BatchKind = "spool.batch"

func toEnvelope(e *Event) envelope {
	env := envelope{Topic: e.Topic, Position: e.Position, ID: e.ID, Key: e.Key, Version: e.Version,
		Headers: e.Headers, PublishedAt: e.PublishedAt.UTC()}
	if len(e.Payload) > 0 {
		if json.Valid(e.Payload) {
			env.Payload = e.Payload
		} else {
			env.Payload64 = base64.StdEncoding.EncodeToString(e.Payload)
		}
	}
	return env
}

func (env *envelope) event(kind, tenant string) (*Event, error) {
	e := &Event{Topic: env.Topic, Position: env.Position, ID: env.ID, Kind: kind, Key: env.Key,
		Version: env.Version, Tenant: tenant, Headers: env.Headers, PublishedAt: env.PublishedAt}
	switch {
	case env.Payload64 != "":
		b, err := base64.StdEncoding.DecodeString(env.Payload64)
		if err != nil {
			return nil, fmt.Errorf("event %s: payload: %w", env.ID, err)
		}
		e.Payload = b
	case len(env.Payload) > 0:
		e.Payload = []byte(env.Payload)
	}
	return e, nil
}

// EncodeDelivery is the payload of a delivery job of one event (the job
// has the event's kind and tenant).
func EncodeDelivery(e *Event) ([]byte, error) { return json.Marshal(toEnvelope(e)) }

// DecodeDeliveries reads the events a delivery job carries: one, or a
// batch's (kind BatchKind).
func DecodeDeliveries(job *Job) ([]*Event, error) {
	if job.Kind != BatchKind {
		var env envelope
		if err := json.Unmarshal(job.Payload, &env); err != nil {
			return nil, fmt.Errorf("spool: job %s is not an event delivery: %w", job.ID, err)
		}
		e, err := env.event(job.Kind, job.Tenant)
		if err != nil {
			return nil, fmt.Errorf("spool: job %s: %w", job.ID, err)
		}
		return []*Event{e}, nil
	}
	out, err := decodeBatch(job.Payload)
	if err != nil {
		return nil, fmt.Errorf("spool: job %s is not a batch of deliveries: %w", job.ID, err)
	}
	return out, nil
}
