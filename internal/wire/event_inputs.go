package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spoolrun/spool/store"
)

// The wire forms of the events API's inputs, under the rules of inputs.go:
// bytes as embedded JSON or base64 (the encoders use base64), durations as
// Go duration strings, times RFC 3339. A start point ("from", "to") is
// "start", "now", a position (a JSON number, or a string of digits) or an
// RFC 3339 time.

// EventInput is the wire form of store.EventInput.
type EventInput struct {
	ID            string            `json:"id,omitempty"`
	Kind          string            `json:"kind"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64 string            `json:"payload_base64,omitempty"`
	Key           string            `json:"key,omitempty"`
	Tenant        string            `json:"tenant,omitempty"`
	Headers       map[string]string `json:"headers,omitempty"`
}

// EventInputOf returns the wire form of e.
func EventInputOf(e store.EventInput) EventInput {
	return EventInput{ID: e.ID, Kind: e.Kind, PayloadBase64: base64Of(e.Payload), Key: e.Key, Tenant: e.Tenant, Headers: e.Headers}
}

// Params converts w to store.EventInput. Mistakes of form are
// *store.ValidationError; the store validates the rest.
func (w EventInput) Params() (store.EventInput, error) {
	p, err := bytesOf("payload", w.Payload, w.PayloadBase64)
	e := store.EventInput{ID: w.ID, Kind: w.Kind, Payload: p, Key: w.Key, Tenant: w.Tenant}
	if len(w.Headers) > 0 {
		e.Headers = w.Headers
	}
	return e, err
}

// PublishRequest is the body of a publish of several events:
// {"events": [...]}.
type PublishRequest struct {
	Events []EventInput `json:"events"`
}

// PublishRequestOf returns the request body that publishes events.
func PublishRequestOf(events []store.EventInput) PublishRequest {
	r := PublishRequest{Events: make([]EventInput, len(events))}
	for i, e := range events {
		r.Events[i] = EventInputOf(e)
	}
	return r
}

// DecodePublish reads a PublishRequest and returns its events, refusing
// what DecodeEnqueue refuses: unknown fields, trailing data, a missing or
// oversized batch, events whose fields are not in their wire form (a
// *store.ItemError each, joined). All match store.ErrInvalid.
func DecodePublish(r io.Reader) ([]store.EventInput, error) {
	var req PublishRequest
	if err := decodeStrict(r, &req, "request body"); err != nil {
		return nil, err
	}
	return convertAll(req.Events, "events", EventInput.Params)
}

// DecodeEvent reads one EventInput object, refusing what DecodePublish
// refuses; a mistake of form is a *store.ItemError of index 0.
func DecodeEvent(r io.Reader) (store.EventInput, error) {
	var w EventInput
	if err := decodeStrict(r, &w, "request body"); err != nil {
		return store.EventInput{}, err
	}
	e, err := w.Params()
	if err != nil {
		return store.EventInput{}, &store.ItemError{Index: 0, Err: err}
	}
	return e, nil
}

// AppendRequest is the body of an append to one key's stream: the version
// the stream must be at (store.NoStream, 0, for a stream that must not
// exist yet; store.AnyVersion, -1, for no check) and the events.
type AppendRequest struct {
	ExpectedVersion *int64       `json:"expected_version"`
	Events          []EventInput `json:"events"`
}

// AppendRequestOf returns the request body that appends events at
// version expected.
func AppendRequestOf(expected int64, events []store.EventInput) AppendRequest {
	r := AppendRequest{ExpectedVersion: &expected, Events: PublishRequestOf(events).Events}
	return r
}

// DecodeAppend reads an AppendRequest, refusing what DecodePublish refuses
// and a missing expected_version or one below store.AnyVersion.
func DecodeAppend(r io.Reader) (expected int64, events []store.EventInput, err error) {
	var req AppendRequest
	if err := decodeStrict(r, &req, "request body"); err != nil {
		return 0, nil, err
	}
	switch {
	case req.ExpectedVersion == nil:
		err = &store.ValidationError{Field: "expected_version", Reason: "is required: the stream's version, 0 for a new stream or -1 for any"}
	case *req.ExpectedVersion < store.AnyVersion:
		err = &store.ValidationError{Field: "expected_version", Reason: fmt.Sprintf("%d is below -1", *req.ExpectedVersion)}
	}
	if err != nil {
		return 0, nil, err
	}
	events, err = convertAll(req.Events, "events", EventInput.Params)
	if err != nil {
		return 0, nil, err
	}
	return *req.ExpectedVersion, events, nil
}

// SubscriptionParams is the wire form of store.SubscriptionParams, without
// the topic and name (which the route names). Zero fields take the store's
// defaults.
type SubscriptionParams struct {
	From          json.RawMessage `json:"from,omitempty"`
	Kinds         []string        `json:"kinds,omitempty"`
	Ordered       bool            `json:"ordered,omitempty"`
	OnDeadHead    string          `json:"on_dead_head,omitempty"`
	LockFor       string          `json:"lock_for,omitempty"`
	MaxAttempts   int             `json:"max_attempts,omitempty"`
	MaxDeliveries int             `json:"max_deliveries,omitempty"`
	RetryBase     string          `json:"retry_base,omitempty"`
	RetryMax      string          `json:"retry_max,omitempty"`
}

// SubscriptionParamsOf returns the wire form of p; its topic and name are
// left out.
func SubscriptionParamsOf(p store.SubscriptionParams) SubscriptionParams {
	return SubscriptionParams{
		From:          StartAtOf(p.From),
		Kinds:         p.Kinds,
		Ordered:       p.Ordered,
		OnDeadHead:    string(p.OnDeadHead),
		LockFor:       durationText(p.LockFor),
		MaxAttempts:   p.MaxAttempts,
		MaxDeliveries: p.MaxDeliveries,
		RetryBase:     durationText(p.RetryBase),
		RetryMax:      durationText(p.RetryMax),
	}
}

// Params converts w to the store.SubscriptionParams of subscription name
// of topic. Mistakes of form are *store.ValidationError, joined; Normalize
// validates the rest.
func (w SubscriptionParams) Params(topic, name string) (store.SubscriptionParams, error) {
	p := store.SubscriptionParams{Topic: topic, Name: name, Ordered: w.Ordered, OnDeadHead: store.DeadHeadPolicy(w.OnDeadHead),
		MaxAttempts: w.MaxAttempts, MaxDeliveries: w.MaxDeliveries}
	if len(w.Kinds) > 0 {
		p.Kinds = w.Kinds
	}
	errs := make([]error, 4)
	p.From, errs[0] = ParseStartAt("from", w.From)
	p.LockFor, errs[1] = parseDuration("lock_for", w.LockFor)
	p.RetryBase, errs[2] = parseDuration("retry_base", w.RetryBase)
	p.RetryMax, errs[3] = parseDuration("retry_max", w.RetryMax)
	return p, errors.Join(errs...)
}

// DecodeSubscription reads a SubscriptionParams object for subscription
// name of topic, refusing unknown fields, trailing data and fields not in
// their wire form.
func DecodeSubscription(r io.Reader, topic, name string) (store.SubscriptionParams, error) {
	var w SubscriptionParams
	if err := decodeStrict(r, &w, "request body"); err != nil {
		return store.SubscriptionParams{}, err
	}
	return w.Params(topic, name)
}

// StartAtOf returns the wire form of a start point: a position as a JSON
// number, anything else as its text ("start", "now", an RFC 3339 time).
func StartAtOf(s store.StartAt) json.RawMessage {
	if s.From == "" {
		return nil
	}
	if s.From == store.StartPosition {
		return json.RawMessage(strconv.FormatInt(s.Position, 10))
	}
	b, _ := json.Marshal(s.String())
	return b
}

// ParseStartAt reads a start point from its wire form (see StartAtOf; a
// position may also be given as a string of digits). Absent or null is the
// zero StartAt, which the store reads as "now". Mistakes are a
// *store.ValidationError of field.
func ParseStartAt(field string, raw json.RawMessage) (store.StartAt, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return store.StartAt{}, nil
	}
	var s string
	if raw[0] != '"' {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return store.StartAt{}, &store.ValidationError{Field: field, Reason: fmt.Sprintf("%s is not start, now, a position or an RFC 3339 time", raw)}
		}
		s = strconv.FormatInt(n, 10)
	} else if err := json.Unmarshal(raw, &s); err != nil {
		return store.StartAt{}, &store.ValidationError{Field: field, Reason: "is not a JSON string or number"}
	}
	at, err := store.ParseStartAt(s)
	if err == nil {
		err = at.Validate()
	}
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		return store.StartAt{}, &store.ValidationError{Field: field, Reason: ve.Reason}
	}
	if at.From == store.StartTime {
		at.Time = at.Time.UTC()
	}
	return at, err
}

// RewindRequest is the body of a subscription's rewind: where it moves to
// (required), and whether its inbox entries are deleted first so that its
// handlers see every replayed event as new.
type RewindRequest struct {
	To          json.RawMessage `json:"to"`
	ForgetInbox bool            `json:"forget_inbox,omitempty"`
}

// RewindRequestOf returns the request body of a rewind to to.
func RewindRequestOf(to store.StartAt, forgetInbox bool) RewindRequest {
	return RewindRequest{To: StartAtOf(to), ForgetInbox: forgetInbox}
}

// DecodeRewind reads a RewindRequest, refusing unknown fields, trailing
// data and a missing or malformed "to".
func DecodeRewind(r io.Reader) (to store.StartAt, forgetInbox bool, err error) {
	var req RewindRequest
	if err := decodeStrict(r, &req, "request body"); err != nil {
		return store.StartAt{}, false, err
	}
	to, err = ParseStartAt("to", req.To)
	if err == nil && to.From == "" {
		err = &store.ValidationError{Field: "to", Reason: "is required: start, now, a position or an RFC 3339 time"}
	}
	if err != nil {
		return store.StartAt{}, false, err
	}
	return to, req.ForgetInbox, nil
}

// RetentionRequest is the body that sets a topic's retention: a Go
// duration of 0 or more ("168h"), or "forever" (the default).
type RetentionRequest struct {
	Retention string `json:"retention"`
}

// RetentionRequestOf returns the request body that sets retention d
// (store.KeepEvents: "forever").
func RetentionRequestOf(d time.Duration) RetentionRequest {
	if d == store.KeepEvents {
		return RetentionRequest{Retention: "forever"}
	}
	return RetentionRequest{Retention: d.String()}
}

// DecodeRetention reads a RetentionRequest, refusing unknown fields,
// trailing data and a retention that is neither a duration of 0 or more
// nor "forever".
func DecodeRetention(r io.Reader) (time.Duration, error) {
	var req RetentionRequest
	if err := decodeStrict(r, &req, "request body"); err != nil {
		return 0, err
	}
	if req.Retention == "forever" {
		return store.KeepEvents, nil
	}
	d, err := time.ParseDuration(req.Retention)
	if err != nil || d < 0 {
		return 0, &store.ValidationError{Field: "retention", Reason: fmt.Sprintf("%q is not a duration of 0 or more (such as 168h) or forever", req.Retention)}
	}
	return d, nil
}
