package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

func TestPublishRoundTrip(t *testing.T) {
	t.Parallel()
	in := []store.EventInput{
		{ID: "e-1", Kind: "order.placed", Payload: []byte(`{"total": 42}`), Key: "o-17", Tenant: "acme", Headers: map[string]string{"trace": "abc"}},
		{Kind: "raw", Payload: []byte{0, 1, 0xff}},
		{Kind: "empty"},
	}
	b, err := json.Marshal(wire.PublishRequestOf(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := wire.DecodePublish(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("DecodePublish(%s): %v", b, err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("events changed on the wire:\n in %+v\nout %+v", in, out)
	}
	// JSON payloads are kept byte for byte.
	e, err := wire.DecodeEvent(strings.NewReader(`{"kind": "k", "payload": {"a" :  1}, "headers": {}}`))
	if err != nil || string(e.Payload) != `{"a" :  1}` || e.Headers != nil {
		t.Fatalf("one event: %+v, %v", e, err)
	}

	exp, events, err := wire.DecodeAppend(strings.NewReader(`{"expected_version": 0, "events": [{"kind": "k"}]}`))
	if err != nil || exp != store.NoStream || len(events) != 1 {
		t.Fatalf("append: %d %+v %v", exp, events, err)
	}
	b, _ = json.Marshal(wire.AppendRequestOf(store.AnyVersion, in))
	if exp, out, err := wire.DecodeAppend(bytes.NewReader(b)); err != nil || exp != store.AnyVersion || !reflect.DeepEqual(in, out) {
		t.Fatalf("append round trip: %d %+v %v", exp, out, err)
	}
}

func TestEventInputsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body, field string
		item        bool
	}{
		{`{"events": [{"kind": "k", "payload": {}, "payload_base64": "AA=="}]}`, "payload", true},
		{`{"events": [{"kind": "k", "payload_base64": "!"}]}`, "payload_base64", true},
		{`{"events": [{"kind": "k", "nope": 1}]}`, "request body", false},
		{`{}`, "events", false},
		{`{"events": [{"kind": 3}]}`, "events.kind", false},
	} {
		_, err := wire.DecodePublish(strings.NewReader(tc.body))
		var ve *store.ValidationError
		var ie *store.ItemError
		if !errors.As(err, &ve) || ve.Field != tc.field || errors.As(err, &ie) != tc.item {
			t.Errorf("DecodePublish(%s) = %v, want field %q (item %v)", tc.body, err, tc.field, tc.item)
		}
	}
	for _, body := range []string{`{"events": []}`, `{"expected_version": -2, "events": []}`, `{"expected_version": "1", "events": []}`} {
		if _, _, err := wire.DecodeAppend(strings.NewReader(body)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("DecodeAppend(%s) = %v, want invalid", body, err)
		}
	}
}

func TestSubscriptionParamsRoundTrip(t *testing.T) {
	t.Parallel()
	p := store.SubscriptionParams{Topic: "orders", Name: "mail", From: store.StartAt{From: store.StartPosition, Position: 12},
		Kinds: []string{"a", "b"}, Ordered: true, OnDeadHead: store.DeadHeadBlock, LockFor: time.Minute,
		MaxAttempts: 3, MaxDeliveries: 4, RetryBase: time.Second, RetryMax: time.Hour}
	b, _ := json.Marshal(wire.SubscriptionParamsOf(p))
	want := `{"from":12,"kinds":["a","b"],"ordered":true,"on_dead_head":"block","lock_for":"1m0s","max_attempts":3,"max_deliveries":4,"retry_base":"1s","retry_max":"1h0m0s"}`
	if string(b) != want {
		t.Errorf("subscription JSON = %s, want %s", b, want)
	}
	got, err := wire.DecodeSubscription(bytes.NewReader(b), "orders", "mail")
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("subscription came back as %+v, %v", got, err)
	}
	for body, want := range map[string]store.StartAt{
		`{}`:                                    {},
		`{"from": null}`:                        {},
		`{"from": "start"}`:                     {From: store.StartBegin},
		`{"from": "now"}`:                       {From: store.StartNow},
		`{"from": "7"}`:                         {From: store.StartPosition, Position: 7},
		`{"from": "2030-01-02T04:04:05+01:00"}`: {From: store.StartTime, Time: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)},
	} {
		got, err := wire.DecodeSubscription(strings.NewReader(body), "t", "n")
		if err != nil || !reflect.DeepEqual(got.From, want) {
			t.Errorf("DecodeSubscription(%s).From = %+v, %v; want %+v", body, got.From, err, want)
		}
	}
	for _, body := range []string{`{"from": 0}`, `{"from": 1.5}`, `{"from": "yesterday"}`, `{"from": true}`, `{"lock_for": "soon"}`, `{"topic": "x"}`} {
		if _, err := wire.DecodeSubscription(strings.NewReader(body), "t", "n"); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("DecodeSubscription(%s) = %v, want invalid", body, err)
		}
	}
}

func TestRewindAndRetention(t *testing.T) {
	t.Parallel()
	to, forget, err := wire.DecodeRewind(strings.NewReader(`{"to": "start", "forget_inbox": true}`))
	if err != nil || to.From != store.StartBegin || !forget {
		t.Fatalf("rewind: %+v %v %v", to, forget, err)
	}
	for _, body := range []string{`{}`, `{"to": null}`, `{"to": -1}`} {
		if _, _, err := wire.DecodeRewind(strings.NewReader(body)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("DecodeRewind(%s) = %v, want invalid", body, err)
		}
	}
	for body, want := range map[string]time.Duration{`{"retention": "forever"}`: store.KeepEvents, `{"retention": "168h"}`: 168 * time.Hour, `{"retention": "0s"}`: 0} {
		if d, err := wire.DecodeRetention(strings.NewReader(body)); err != nil || d != want {
			t.Errorf("DecodeRetention(%s) = %v, %v; want %v", body, d, err, want)
		}
	}
	for _, body := range []string{`{}`, `{"retention": "-1h"}`, `{"retention": 3600}`} {
		if _, err := wire.DecodeRetention(strings.NewReader(body)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("DecodeRetention(%s) = %v, want invalid", body, err)
		}
	}
}

func FuzzDecodePublish(f *testing.F) {
	b, _ := json.Marshal(wire.PublishRequestOf([]store.EventInput{
		{ID: "e", Kind: "k", Payload: []byte{0, 1}, Key: "o-1", Tenant: "t", Headers: map[string]string{"a": "b"}}, {Kind: "k"}}))
	fuzzRequest(f, []string{
		string(b),
		`{"events": [{"kind": "k", "payload": {"a": [1, "x", null]}, "headers": {}}]}`,
		`{"events": []}`,
	}, func(r *bytes.Reader) ([]store.EventInput, error) { return wire.DecodePublish(r) },
		func(p []store.EventInput) any { return wire.PublishRequestOf(p) })
}

func FuzzDecodeEvent(f *testing.F) {
	fuzzRequest(f, []string{
		`{"id": "e-1", "kind": "k", "payload": {"a": 1}, "key": "o-1", "headers": {"t": "x"}}`,
		`{"kind": "k", "payload_base64": "AAE="}`,
	}, func(r *bytes.Reader) (store.EventInput, error) { return wire.DecodeEvent(r) },
		func(p store.EventInput) any { return wire.EventInputOf(p) })
}

func FuzzDecodeAppend(f *testing.F) {
	type appendReq struct {
		expected int64
		events   []store.EventInput
	}
	fuzzRequest(f, []string{
		`{"expected_version": 3, "events": [{"kind": "k", "payload": {"a": 1}}]}`,
		`{"expected_version": -1, "events": []}`,
	}, func(r *bytes.Reader) (appendReq, error) {
		exp, events, err := wire.DecodeAppend(r)
		return appendReq{exp, events}, err
	}, func(p appendReq) any { return wire.AppendRequestOf(p.expected, p.events) })
}

func FuzzDecodeSubscription(f *testing.F) {
	fuzzRequest(f, []string{
		`{"from": "start", "kinds": ["a"], "ordered": true, "on_dead_head": "block", "lock_for": "1m", "max_attempts": 3, "max_deliveries": 4, "retry_base": "1s", "retry_max": "1h"}`,
		`{"from": 12}`,
		`{"from": "2030-01-02T03:04:05.5+02:00"}`,
		`{}`,
	}, func(r *bytes.Reader) (store.SubscriptionParams, error) { return wire.DecodeSubscription(r, "t", "n") },
		func(p store.SubscriptionParams) any { return wire.SubscriptionParamsOf(p) })
}

func FuzzDecodeRewind(f *testing.F) {
	type rewind struct {
		to     store.StartAt
		forget bool
	}
	fuzzRequest(f, []string{`{"to": "start", "forget_inbox": true}`, `{"to": 5}`, `{"to": "2030-01-02T03:04:05Z"}`},
		func(r *bytes.Reader) (rewind, error) {
			to, forget, err := wire.DecodeRewind(r)
			return rewind{to, forget}, err
		}, func(p rewind) any { return wire.RewindRequestOf(p.to, p.forget) })
}

func FuzzDecodeRetention(f *testing.F) {
	fuzzRequest(f, []string{`{"retention": "forever"}`, `{"retention": "1h30m"}`, `{"retention": "0"}`},
		func(r *bytes.Reader) (time.Duration, error) { return wire.DecodeRetention(r) },
		func(d time.Duration) any { return wire.RetentionRequestOf(d) })
}
