package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
)

// eventTests check topics, subscriptions, routing and streams.
var eventTests = []test{
	{"PositionsAndVersions", testEventPositions},
	{"DuplicateIDIsANoOp", testEventDuplicateID},
	{"BadInputWritesNothing", testEventBadInput},
	{"AppendExpectedVersion", testEventAppend},
	{"ReadPages", testEventReadPages},
	{"CreateSubscriptionIsIdempotent", testSubscriptionCreate},
	{"StartPoints", testSubscriptionStart},
	{"RouteEachEventOnce", testRouteOnce},
	{"PublishRoutesToCaughtUpSubscriptions", testPublishRoutes},
	{"RouteFiltersKinds", testRouteKinds},
	{"RouteMaxPending", testRouteMaxPending},
	{"RouteBatches", testRouteBatches},
	{"SubscriptionsAreIndependent", testSubscriptionsIndependent},
	{"OrderedOnePerKey", testOrderedPerKey},
	{"OrderedDeadHeadIsSkipped", testOrderedDeadHead},
	{"OrderedDeadHeadBlocksItsKey", testOrderedDeadHeadBlocks},
	{"OrderedDeadHeadUnblocked", testOrderedDeadHeadUnblocked},
	{"DeadHeadPolicyIsDefinition", testDeadHeadPolicy},
	{"Rewind", testRewind},
	{"PauseResume", testSubscriptionPause},
	{"DeleteRemovesDeliveries", testSubscriptionDelete},
	{"Lag", testSubscriptionLag},
	{"RetentionKeepsWhatSubscriptionsNeed", testEventRetention},
}

// eventTxTests check publishing and the inbox in a caller's transaction.
var eventTxTests = []test{
	{"PublishCommitsWithTheCaller", testPublishTx},
	{"InterleavedPublishersSkipNothing", testPublishInterleaved},
	{"MarkSeen", testMarkSeen},
}

// multiEventTests check events across two handles on one database.
var multiEventTests = []test{
	{"RacingPublishersAndRouters", testEventsRacing},
}

func (h *harness) events() store.EventStore {
	h.t.Helper()
	es := h.s.Capabilities().Events
	if es == nil {
		h.t.Fatal("the backend declares Features.Events, but Capabilities().Events is nil")
	}
	return es
}

func ev(kind, key string) store.EventInput {
	return store.EventInput{Kind: kind, Key: key, Payload: []byte(`{"k":"` + kind + `"}`)}
}

// publish publishes events to topic and fails the test on any error.
func (h *harness) publish(topic string, evs ...store.EventInput) []store.PublishResult {
	h.t.Helper()
	res, err := h.events().Publish(h.ctx, topic, evs)
	if err != nil {
		h.t.Fatalf("Publish: %v", err)
	}
	if len(res) != len(evs) {
		h.t.Fatalf("Publish of %d events returned %d results", len(evs), len(res))
	}
	return res
}

func (h *harness) subscribe(p store.SubscriptionParams) *store.Subscription {
	h.t.Helper()
	sub, created, err := h.events().CreateSubscription(h.ctx, p)
	if err != nil {
		h.t.Fatalf("CreateSubscription %s/%s: %v", p.Topic, p.Name, err)
	}
	if !created {
		h.t.Fatalf("CreateSubscription %s/%s: created false for a new subscription", p.Topic, p.Name)
	}
	return sub
}

func (h *harness) route(topic, name string) store.RouteResult {
	h.t.Helper()
	res, err := h.events().Route(h.ctx, store.RouteParams{Topic: topic, Name: name})
	if err != nil {
		h.t.Fatalf("Route %s/%s: %v", topic, name, err)
	}
	return res
}

func (h *harness) getSub(topic, name string) *store.Subscription {
	h.t.Helper()
	sub, err := h.events().GetSubscription(h.ctx, topic, name)
	if err != nil {
		h.t.Fatalf("GetSubscription %s/%s: %v", topic, name, err)
	}
	return sub
}

// deliveries claims up to limit deliveries of a subscription and decodes them.
func (h *harness) deliveries(topic, name string, limit int) ([]*store.Job, []*store.Event) {
	h.t.Helper()
	jobs := h.claim(store.SubscriptionQueue(topic, name), limit)
	var evs []*store.Event
	for _, j := range jobs {
		got, err := store.DecodeDeliveries(j)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, e := range got {
			if e.Topic != topic {
				h.t.Fatalf("delivery of %s carries topic %q", topic, e.Topic)
			}
			evs = append(evs, e)
		}
	}
	slices.SortFunc(evs, func(a, b *store.Event) int { return int(a.Position - b.Position) })
	return jobs, evs
}

func positions(evs []*store.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

func (h *harness) completeAll(jobs []*store.Job) {
	h.t.Helper()
	vs := make([]store.Verdict, len(jobs))
	for i, j := range jobs {
		vs[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Complete}
	}
	h.settleOK(vs...)
}

func wantPositions(t *testing.T, what string, got []int64, want ...int64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: positions %v, want %v", what, got, want)
	}
}

func testEventPositions(t *testing.T, h *harness) {
	res := h.publish("orders", ev("placed", "o1"), ev("placed", "o2"), store.EventInput{Kind: "tick"}, ev("paid", "o1"))
	for i, want := range []store.PublishResult{{Position: 1, Version: 1}, {Position: 2, Version: 1}, {Position: 3}, {Position: 4, Version: 2}} {
		if res[i].Position != want.Position || res[i].Version != want.Version || res[i].Duplicate || res[i].ID == "" {
			t.Errorf("result %d = %+v, want position %d version %d with an ID", i, res[i], want.Position, want.Version)
		}
	}
	if res[0].ID == res[1].ID {
		t.Error("generated IDs repeat")
	}
	// Another topic counts from 1.
	if r := h.publish("billing", ev("invoiced", ""))[0]; r.Position != 1 {
		t.Errorf("first event of another topic at %d", r.Position)
	}
	got, err := h.events().GetEvent(h.ctx, "orders", res[3].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != "paid" || got.Key != "o1" || got.Version != 2 || got.Position != 4 || string(got.Payload) != `{"k":"paid"}` ||
		!got.PublishedAt.Equal(h.now()) {
		t.Errorf("GetEvent = %+v", got)
	}
	if got, err := h.events().GetEvent(h.ctx, "", res[0].ID); err != nil || got.Position != 1 {
		t.Errorf("GetEvent in any topic = %+v, %v", got, err)
	}
	if _, err := h.events().GetEvent(h.ctx, "orders", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetEvent of a missing ID: %v, want ErrNotFound", err)
	}
	// Headers and tenant round-trip.
	in := store.EventInput{ID: "e-h", Kind: "k", Tenant: "acme", Headers: map[string]string{"trace": "abc", "n": "1"}, Payload: []byte{0, 1, 2}}
	h.publish("orders", in)
	got, err = h.events().GetEvent(h.ctx, "orders", "e-h")
	if err != nil || got.Tenant != "acme" || got.Headers["trace"] != "abc" || len(got.Headers) != 2 || string(got.Payload) != "\x00\x01\x02" {
		t.Errorf("GetEvent = %+v, %v", got, err)
	}
	topics, err := h.events().Topics(h.ctx)
	if err != nil || len(topics) != 2 || topics[1].Name != "orders" || topics[1].Head != 5 || topics[1].Retention != store.KeepEvents {
		t.Errorf("Topics = %+v, %v", topics, err)
	}
}

func testEventDuplicateID(t *testing.T, h *harness) {
	first := h.publish("t", store.EventInput{ID: "a", Kind: "k"}, store.EventInput{ID: "b", Kind: "k", Key: "x"})
	again := h.publish("t", store.EventInput{ID: "b", Kind: "other", Key: "x"}, store.EventInput{ID: "c", Kind: "k"}, store.EventInput{ID: "c", Kind: "k"})
	if !again[0].Duplicate || again[0].Position != first[1].Position || again[0].Version != 1 {
		t.Errorf("republished b = %+v, want a duplicate of %+v", again[0], first[1])
	}
	if again[1].Duplicate || again[1].Position != 3 {
		t.Errorf("c = %+v, want position 3", again[1])
	}
	if !again[2].Duplicate || again[2].Position != 3 {
		t.Errorf("c repeated in one call = %+v, want a duplicate at 3", again[2])
	}
	page, err := h.events().ReadEvents(h.ctx, store.ReadEventsParams{Topic: "t"})
	if err != nil || len(page.Events) != 3 {
		t.Fatalf("ReadEvents = %v, %v; want 3 events", page, err)
	}
	if page.Events[1].Kind != "k" {
		t.Error("a duplicate replaced the stored event")
	}
}

func testEventBadInput(t *testing.T, h *harness) {
	es := h.events()
	cases := []struct {
		name  string
		topic string
		evs   []store.EventInput
	}{
		{"no kind", "t", []store.EventInput{{Kind: "ok"}, {}}},
		{"bad topic", "bad topic", []store.EventInput{{Kind: "k"}}},
		{"payload too large", "t", []store.EventInput{{Kind: "k", Payload: make([]byte, store.MaxEventPayload+1)}}},
		{"key too long", "t", []store.EventInput{{Kind: "k", Key: strings.Repeat("k", store.MaxEventKeyLen+1)}}},
		{"too many headers", "t", []store.EventInput{{Kind: "k", Headers: manyHeaders(store.MaxHeaders + 1)}}},
	}
	for _, c := range cases {
		if _, err := es.Publish(h.ctx, c.topic, c.evs); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, err)
		}
	}
	if _, err := es.Append(h.ctx, "t", "", store.AnyVersion, []store.EventInput{{Kind: "k"}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("append without a key: %v, want ErrInvalid", err)
	}
	if _, err := es.Append(h.ctx, "t", "a", 0, []store.EventInput{{Kind: "k", Key: "b"}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("append of another key's event: %v, want ErrInvalid", err)
	}
	if page, err := es.ReadEvents(h.ctx, store.ReadEventsParams{Topic: "t"}); err != nil || len(page.Events) != 0 {
		t.Errorf("refused publishes wrote %v (%v)", page, err)
	}
	for _, p := range []store.SubscriptionParams{
		{Topic: "t"},
		{Topic: "t", Name: "s", LockFor: time.Millisecond},
		{Topic: "t", Name: "s", From: store.StartAt{From: store.StartPosition}},
		{Topic: "t", Name: "s", Kinds: []string{"bad kind"}},
		{Topic: strings.Repeat("t", 100), Name: strings.Repeat("n", 100)},
	} {
		if _, _, err := es.CreateSubscription(h.ctx, p); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateSubscription(%+v): %v, want ErrInvalid", p, err)
		}
	}
	if subs, err := es.ListSubscriptions(h.ctx, ""); err != nil || len(subs) != 0 {
		t.Errorf("refused subscriptions wrote %v (%v)", subs, err)
	}
}

func manyHeaders(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprint("h", i)] = "v"
	}
	return m
}

func testEventAppend(t *testing.T, h *harness) {
	es := h.events()
	res, err := es.Append(h.ctx, "orders", "o1", store.NoStream, []store.EventInput{{ID: "1", Kind: "placed"}, {ID: "2", Kind: "paid"}})
	if err != nil || res[0].Version != 1 || res[1].Version != 2 {
		t.Fatalf("Append to a new stream = %+v, %v", res, err)
	}
	_, err = es.Append(h.ctx, "orders", "o1", 1, []store.EventInput{{ID: "3", Kind: "shipped"}})
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Current != 2 || ce.Want != 1 || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Append at a stale version: %v, want a *ConflictError at version 2", err)
	}
	if _, err := es.Append(h.ctx, "orders", "o1", store.NoStream, []store.EventInput{{ID: "3", Kind: "shipped"}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Append expecting no stream to an existing one: %v, want ErrConflict", err)
	}
	// Another writer's event in between moves the stream on.
	h.publish("orders", store.EventInput{ID: "x", Kind: "noted", Key: "o1"})
	if _, err := es.Append(h.ctx, "orders", "o1", 2, []store.EventInput{{ID: "3", Kind: "shipped"}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Append after another writer: %v, want ErrConflict", err)
	}
	res, err = es.Append(h.ctx, "orders", "o1", 3, []store.EventInput{{ID: "3", Kind: "shipped"}})
	if err != nil || res[0].Version != 4 || res[0].Position != 4 {
		t.Fatalf("Append at the current version = %+v, %v", res, err)
	}
	// A retried append (same IDs) is a no-op, whatever version it expected.
	res, err = es.Append(h.ctx, "orders", "o1", 3, []store.EventInput{{ID: "3", Kind: "shipped"}})
	if err != nil || !res[0].Duplicate || res[0].Version != 4 {
		t.Fatalf("retried Append = %+v, %v; want the stored event as a duplicate", res, err)
	}
	if res, err = es.Append(h.ctx, "orders", "o2", store.AnyVersion, []store.EventInput{{Kind: "placed"}}); err != nil || res[0].Version != 1 {
		t.Fatalf("Append with AnyVersion = %+v, %v", res, err)
	}
	page, err := es.ReadEvents(h.ctx, store.ReadEventsParams{Topic: "orders", Key: "o1", After: 1})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range page.Events {
		kinds = append(kinds, fmt.Sprint(e.Version, e.Kind))
	}
	if want := []string{"2paid", "3noted", "4shipped"}; !slices.Equal(kinds, want) {
		t.Errorf("stream o1 after version 1 = %v, want %v", kinds, want)
	}
}

func testEventReadPages(t *testing.T, h *harness) {
	for range 5 {
		h.publish("t", ev("k", ""), ev("k", ""))
	}
	var got []int64
	after := int64(0)
	for {
		page, err := h.events().ReadEvents(h.ctx, store.ReadEventsParams{Topic: "t", After: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, positions(page.Events)...)
		if page.Next == 0 {
			break
		}
		after = page.Next
	}
	wantPositions(t, "paged read", got, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	if _, err := h.events().ReadEvents(h.ctx, store.ReadEventsParams{Topic: "t", Limit: store.MaxReadEvents + 1}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("limit over the maximum: %v", err)
	}
}

func testSubscriptionCreate(t *testing.T, h *harness) {
	p := store.SubscriptionParams{Topic: "orders", Name: "mail", Kinds: []string{"b", "a", "a"}, Ordered: true}
	sub := h.subscribe(p)
	if sub.Queue != "sub/orders/mail" || !slices.Equal(sub.Kinds, []string{"a", "b"}) || !sub.Ordered ||
		sub.LockFor != 30*time.Second || sub.MaxAttempts != store.DefaultMaxAttempts || sub.MaxDeliveries != store.DefaultMaxDeliveries {
		t.Errorf("created %+v", sub)
	}
	again, created, err := h.events().CreateSubscription(h.ctx, p)
	if err != nil || created || again.Name != "mail" {
		t.Errorf("creating it again = %+v, %v, %v; want it back, not created", again, created, err)
	}
	p.Ordered = false
	if _, _, err := h.events().CreateSubscription(h.ctx, p); !errors.Is(err, store.ErrConflict) {
		t.Errorf("creating it with another definition: %v, want ErrConflict", err)
	}
	h.subscribe(store.SubscriptionParams{Topic: "orders", Name: "audit"})
	h.subscribe(store.SubscriptionParams{Topic: "billing", Name: "audit"})
	subs, err := h.events().ListSubscriptions(h.ctx, "orders")
	if err != nil || len(subs) != 2 || subs[0].Name != "audit" || subs[1].Name != "mail" {
		t.Errorf("ListSubscriptions(orders) = %v, %v", subs, err)
	}
	if subs, _ := h.events().ListSubscriptions(h.ctx, ""); len(subs) != 3 {
		t.Errorf("ListSubscriptions() has %d, want 3", len(subs))
	}
	if _, err := h.events().GetSubscription(h.ctx, "orders", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSubscription of a missing one: %v", err)
	}
}

func testSubscriptionStart(t *testing.T, h *harness) {
	h.publish("t", ev("k", ""), ev("k", ""))
	h.clock.Advance(time.Minute)
	mark := h.now()
	h.publish("t", ev("k", ""), ev("k", ""))
	for _, c := range []struct {
		name string
		from store.StartAt
		want []int64
	}{
		{"now", store.StartAt{From: store.StartNow}, []int64{5}},
		{"start", store.StartAt{From: store.StartBegin}, []int64{1, 2, 3, 4, 5}},
		{"position", store.StartAt{From: store.StartPosition, Position: 2}, []int64{2, 3, 4, 5}},
		{"time", store.StartAt{From: store.StartTime, Time: mark}, []int64{3, 4, 5}},
		{"future", store.StartAt{From: store.StartPosition, Position: 9}, nil},
	} {
		h.subscribe(store.SubscriptionParams{Topic: "t", Name: c.name, From: c.from})
	}
	h.publish("t", ev("k", ""))
	for _, name := range []string{"now", "start", "position", "time", "future"} {
		h.route("t", name)
	}
	for _, c := range []struct {
		name string
		want []int64
	}{{"now", []int64{5}}, {"start", []int64{1, 2, 3, 4, 5}}, {"position", []int64{2, 3, 4, 5}}, {"time", []int64{3, 4, 5}}, {"future", nil}} {
		_, evs := h.deliveries("t", c.name, 100)
		wantPositions(t, c.name, positions(evs), c.want...)
	}
}

func testRouteOnce(t *testing.T, h *harness) {
	h.publish("t", ev("a", "k1"), ev("b", ""), store.EventInput{Kind: "c", Tenant: "acme", Headers: map[string]string{"x": "y"}})
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", From: store.StartAt{From: store.StartBegin}, MaxAttempts: 3, MaxDeliveries: 4})
	r := h.route("t", "s")
	if r.Routed != 3 || r.Cursor != 3 || r.Head != 3 || r.More() || r.Busy || r.Full {
		t.Fatalf("Route = %+v", r)
	}
	if r := h.route("t", "s"); r.Routed != 0 || r.Cursor != 3 {
		t.Fatalf("a second Route = %+v, want nothing routed", r)
	}
	jobs, evs := h.deliveries("t", "s", 10)
	wantPositions(t, "deliveries", positions(evs), 1, 2, 3)
	for _, j := range jobs {
		if j.MaxAttempts != 3 || j.MaxDeliveries != 4 {
			t.Errorf("delivery %s has max attempts %d, max deliveries %d; want the subscription's 3 and 4", j.ID, j.MaxAttempts, j.MaxDeliveries)
		}
	}
	if e := evs[2]; e.Kind != "c" || e.Tenant != "acme" || e.Headers["x"] != "y" || e.ID == "" || !e.PublishedAt.Equal(h.now()) {
		t.Errorf("delivered event = %+v", e)
	}
	if e := evs[0]; e.Key != "k1" || e.Version != 1 || string(e.Payload) != `{"k":"a"}` {
		t.Errorf("delivered event = %+v", e)
	}
	h.completeAll(jobs)
	// Caught up, the subscription gets the next event from the publish itself.
	h.publish("t", ev("d", ""))
	if r := h.route("t", "s"); r.Routed != 0 || r.Cursor != 4 {
		t.Fatalf("Route after a publish to a caught-up subscription = %+v, want nothing left to route", r)
	}
	_, evs = h.deliveries("t", "s", 10)
	wantPositions(t, "next delivery", positions(evs), 4)
	if _, err := h.events().Route(h.ctx, store.RouteParams{Topic: "t", Name: "nope"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Route of a missing subscription: %v", err)
	}
}

func testRouteKinds(t *testing.T, h *harness) {
	h.publish("t", ev("placed", ""), ev("viewed", ""), ev("paid", ""), ev("viewed", ""))
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", Kinds: []string{"paid", "placed"}, From: store.StartAt{From: store.StartBegin}})
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "live", Kinds: []string{"paid"}})
	h.publish("t", ev("paid", ""), ev("viewed", ""))
	_, live := h.deliveries("t", "live", 10)
	wantPositions(t, "filtered at publish", positions(live), 5)
	r := h.route("t", "s")
	if r.Routed != 3 || r.Filtered != 3 || r.Cursor != 6 {
		t.Fatalf("Route = %+v, want 3 routed and 3 filtered", r)
	}
	_, evs := h.deliveries("t", "s", 10)
	wantPositions(t, "filtered", positions(evs), 1, 3, 5)
}

func testRouteMaxPending(t *testing.T, h *harness) {
	for range 5 {
		h.publish("t", ev("k", ""))
	}
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", From: store.StartAt{From: store.StartBegin}})
	es := h.events()
	r, err := es.Route(h.ctx, store.RouteParams{Topic: "t", Name: "s", MaxPending: 2})
	if err != nil || r.Routed != 2 || r.Cursor != 2 || !r.More() {
		t.Fatalf("Route with MaxPending 2 = %+v, %v", r, err)
	}
	if r, _ = es.Route(h.ctx, store.RouteParams{Topic: "t", Name: "s", MaxPending: 2}); !r.Full || r.Routed != 0 {
		t.Fatalf("Route while 2 wait = %+v, want Full", r)
	}
	jobs, _ := h.deliveries("t", "s", 1) // one running: one waits
	if r, _ = es.Route(h.ctx, store.RouteParams{Topic: "t", Name: "s", MaxPending: 2}); r.Routed != 1 || r.Cursor != 3 {
		t.Fatalf("Route with one slot free = %+v", r)
	}
	h.completeAll(jobs)
	if r, _ = es.Route(h.ctx, store.RouteParams{Topic: "t", Name: "s", Limit: 1}); r.Routed != 1 || r.Cursor != 4 {
		t.Fatalf("Route with Limit 1 = %+v", r)
	}
}

func testSubscriptionsIndependent(t *testing.T, h *harness) {
	for _, n := range []string{"mail", "projection"} {
		h.subscribe(store.SubscriptionParams{Topic: "t", Name: n, MaxAttempts: 1})
	}
	h.publish("t", ev("a", ""), ev("b", ""))
	h.route("t", "mail")
	h.route("t", "projection")
	// mail fails everything for good; the projection is untouched.
	jobs, _ := h.deliveries("t", "mail", 10)
	for _, j := range jobs {
		h.settleOK(store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Fail, Error: &store.AttemptError{Message: "smtp down"}})
	}
	mail := h.getSub("t", "mail")
	if mail.Lag.Dead != 2 || mail.Lag.Pending != 0 {
		t.Errorf("mail lag = %+v, want 2 dead", mail.Lag)
	}
	jobs, evs := h.deliveries("t", "projection", 10)
	wantPositions(t, "projection", positions(evs), 1, 2)
	h.completeAll(jobs)
	// The dead letters are the mail subscription's and can be requeued.
	dead := h.list(store.ListParams{Queue: "sub/t/mail", States: []store.State{store.StateDead}})
	if len(dead) != 2 || len(dead[0].Errors) != 1 || dead[0].Errors[0].Message != "smtp down" {
		t.Fatalf("mail dead letters = %v", dead)
	}
	if errs := h.requeue(dead[0].ID); errs[0] != nil {
		t.Fatal(errs[0])
	}
	_, evs = h.deliveries("t", "mail", 10)
	wantPositions(t, "requeued", positions(evs), 1)
}

func testOrderedPerKey(t *testing.T, h *harness) {
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", Ordered: true})
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "other", Ordered: true})
	h.publish("t", ev("1", "a"), ev("2", "b"), ev("3", "a"), ev("4", ""), ev("5", "a"))
	h.route("t", "s")
	h.route("t", "other")
	jobs, evs := h.deliveries("t", "s", 10)
	wantPositions(t, "first claim", positions(evs), 1, 2, 4)
	// Another subscription's line for key a is its own.
	otherJobs, other := h.deliveries("t", "other", 10)
	wantPositions(t, "other subscription", positions(other), 1, 2, 4)
	h.completeAll(otherJobs)
	// Failing the head keeps its place: the next of a waits for its retry.
	var a1 *store.Job
	for i, e := range evs {
		if e.Position == 1 {
			a1 = jobs[i]
		}
	}
	h.settleOK(store.Verdict{ID: a1.ID, Token: a1.LockToken, Outcome: store.Fail, Delay: time.Second})
	h.claimNone("sub/t/s")
	h.clock.Advance(2 * time.Second)
	_, evs = h.deliveries("t", "s", 10)
	wantPositions(t, "after the retry is due", positions(evs), 1)
}

func testOrderedDeadHead(t *testing.T, h *harness) {
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", Ordered: true})
	h.publish("t", ev("1", "a"), ev("2", "a"))
	h.route("t", "s")
	jobs, evs := h.deliveries("t", "s", 10)
	wantPositions(t, "head", positions(evs), 1)
	h.settleOK(store.Verdict{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.DeadLetter, Error: &store.AttemptError{Message: "poison"}})
	_, evs = h.deliveries("t", "s", 10)
	wantPositions(t, "after the head is dead", positions(evs), 2)
}

// byPosition returns the delivery job of the event at each position.
func byPosition(jobs []*store.Job, evs []*store.Event) map[int64]*store.Job {
	out := make(map[int64]*store.Job, len(evs))
	for _, j := range jobs {
		got, _ := store.DecodeDeliveries(j)
		for _, e := range got {
			out[e.Position] = j
		}
	}
	return out
}

// testOrderedDeadHeadBlocks: with OnDeadHead block, a key whose head is
// dead-lettered stops there (its next event is not claimable) while the
// other keys go on; an event without a key has no line to block.
func testOrderedDeadHeadBlocks(t *testing.T, h *harness) {
	sub := h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", Ordered: true, OnDeadHead: store.DeadHeadBlock})
	if sub.OnDeadHead != store.DeadHeadBlock {
		t.Fatalf("created with OnDeadHead %q", sub.OnDeadHead)
	}
	h.publish("t", ev("1", "a"), ev("2", "b"), ev("3", "a"), ev("4", "b"), ev("5", ""), ev("6", "a"))
	h.route("t", "s")
	jobs, evs := h.deliveries("t", "s", 10)
	wantPositions(t, "heads", positions(evs), 1, 2, 5)
	at := byPosition(jobs, evs)
	for pos, j := range at {
		if want := pos != 5; j.HoldKeyWhenDead != want {
			t.Errorf("delivery of position %d: HoldKeyWhenDead %v, want %v", pos, j.HoldKeyWhenDead, want)
		}
	}
	h.settleOK(store.Verdict{ID: at[1].ID, Token: at[1].LockToken, Outcome: store.DeadLetter, Error: &store.AttemptError{Message: "poison"}},
		verdict(at[2], store.Complete),
		store.Verdict{ID: at[5].ID, Token: at[5].LockToken, Outcome: store.DeadLetter})
	jobs, evs = h.deliveries("t", "s", 10)
	wantPositions(t, "after a's head is dead", positions(evs), 4)
	h.completeAll(jobs)
	h.claimNone(sub.Queue)
	// Failing for good by running out of attempts blocks it the same way.
	h.publish("t", ev("7", "c"), ev("8", "c"))
	h.route("t", "s")
	jobs, evs = h.deliveries("t", "s", 10)
	wantPositions(t, "c's head", positions(evs), 7)
	h.settleOK(failed(jobs[0], "boom", h.now()))
	h.clock.Advance(time.Hour)
	for range store.DefaultMaxAttempts - 1 {
		j := h.claimOne(sub.Queue)
		h.settleOK(failed(j, "boom", h.now()))
	}
	h.wantState(jobs[0].ID, store.StateDead)
	h.claimNone(sub.Queue)
	if got := h.getSub("t", "s"); got.Lag.Dead != 3 || got.Lag.Pending != 3 {
		t.Errorf("lag = %+v, want 3 dead (1, 5 and 7) and 3 pending (3, 6 and 8)", got.Lag)
	}
}

// testOrderedDeadHeadUnblocked: an operator unblocks a key by requeueing
// its dead head (it runs again, before the rest of its key) or purging it
// (the key's next event runs).
func testOrderedDeadHeadUnblocked(t *testing.T, h *harness) {
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", Ordered: true, OnDeadHead: store.DeadHeadBlock})
	h.publish("t", ev("1", "a"), ev("2", "b"), ev("3", "a"), ev("4", "b"))
	h.route("t", "s")
	jobs, evs := h.deliveries("t", "s", 10)
	wantPositions(t, "heads", positions(evs), 1, 2)
	at := byPosition(jobs, evs)
	h.settleOK(verdict(at[1], store.DeadLetter), verdict(at[2], store.DeadLetter))
	h.claimNone("sub/t/s")
	// a: requeued, its head runs again first.
	if errs := h.requeue(at[1].ID); errs[0] != nil {
		t.Fatal(errs[0])
	}
	jobs, evs = h.deliveries("t", "s", 10)
	wantPositions(t, "after requeueing a's head", positions(evs), 1)
	h.completeAll(jobs)
	_, evs = h.deliveries("t", "s", 10)
	wantPositions(t, "after a's head completed", positions(evs), 3)
	// b: purged, its next event runs.
	if n, err := h.s.Purge(h.ctx, store.PurgeParams{IDs: []store.ID{at[2].ID}}); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	_, evs = h.deliveries("t", "s", 10)
	wantPositions(t, "after purging b's head", positions(evs), 4)
}

// testDeadHeadPolicy: OnDeadHead defaults to skip, is part of the
// definition, and block needs an ordered subscription.
func testDeadHeadPolicy(t *testing.T, h *harness) {
	p := store.SubscriptionParams{Topic: "t", Name: "s", Ordered: true}
	if sub := h.subscribe(p); sub.OnDeadHead != store.DeadHeadSkip {
		t.Errorf("default OnDeadHead = %q, want skip", sub.OnDeadHead)
	}
	if _, created, err := h.events().CreateSubscription(h.ctx, store.SubscriptionParams{Topic: "t", Name: "s", Ordered: true, OnDeadHead: store.DeadHeadSkip}); err != nil || created {
		t.Errorf("creating it again with an explicit skip = %v, %v; want it back", created, err)
	}
	p.OnDeadHead = store.DeadHeadBlock
	if _, _, err := h.events().CreateSubscription(h.ctx, p); !errors.Is(err, store.ErrConflict) {
		t.Errorf("creating it again with block: %v, want ErrConflict", err)
	}
	p.Name = "b"
	if sub := h.subscribe(p); sub.OnDeadHead != store.DeadHeadBlock || h.getSub("t", "b").OnDeadHead != store.DeadHeadBlock {
		t.Errorf("created with block: %q", sub.OnDeadHead)
	}
	for _, bad := range []store.SubscriptionParams{
		{Topic: "t", Name: "x", OnDeadHead: store.DeadHeadBlock},
		{Topic: "t", Name: "x", Ordered: true, OnDeadHead: "stop"},
	} {
		if _, _, err := h.events().CreateSubscription(h.ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateSubscription(ordered %v, %q): %v, want ErrInvalid", bad.Ordered, bad.OnDeadHead, err)
		}
	}
	if _, err := h.events().GetSubscription(h.ctx, "t", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused subscription exists: %v", err)
	}
}

func testRewind(t *testing.T, h *harness) {
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", From: store.StartAt{From: store.StartBegin}})
	for range 4 {
		h.publish("t", ev("k", ""))
	}
	h.route("t", "s")
	jobs, _ := h.deliveries("t", "s", 10)
	h.completeAll(jobs)
	sub, err := h.events().RewindSubscription(h.ctx, "t", "s", store.StartAt{From: store.StartPosition, Position: 2})
	if err != nil || sub.Cursor != 1 {
		t.Fatalf("Rewind to 2 = %+v, %v", sub, err)
	}
	h.route("t", "s")
	_, evs := h.deliveries("t", "s", 10)
	wantPositions(t, "replayed", positions(evs), 2, 3, 4)
	// Rewinding forward drops what waits and skips ahead.
	h.publish("t", ev("k", ""), ev("k", ""))
	h.route("t", "s")
	if sub, err = h.events().RewindSubscription(h.ctx, "t", "s", store.StartAt{From: store.StartPosition, Position: 6}); err != nil || sub.Cursor != 5 {
		t.Fatalf("Rewind forward = %+v, %v", sub, err)
	}
	h.route("t", "s")
	_, evs = h.deliveries("t", "s", 10)
	wantPositions(t, "after rewinding forward", positions(evs), 6)
	if sub, err = h.events().RewindSubscription(h.ctx, "t", "s", store.StartAt{From: store.StartBegin}); err != nil || sub.Cursor != 0 {
		t.Fatalf("Rewind to start = %+v, %v", sub, err)
	}
	if _, err := h.events().RewindSubscription(h.ctx, "t", "nope", store.StartAt{From: store.StartBegin}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Rewind of a missing subscription: %v", err)
	}
}

func testSubscriptionPause(t *testing.T, h *harness) {
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s"})
	if err := h.events().PauseSubscription(h.ctx, "t", "s"); err != nil {
		t.Fatal(err)
	}
	h.publish("t", ev("k", ""))
	h.route("t", "s")
	h.claimNone("sub/t/s")
	if sub := h.getSub("t", "s"); !sub.Paused || sub.Lag.Pending != 1 {
		t.Errorf("paused subscription = %+v", sub)
	}
	if err := h.events().ResumeSubscription(h.ctx, "t", "s"); err != nil {
		t.Fatal(err)
	}
	_, evs := h.deliveries("t", "s", 10)
	wantPositions(t, "after resume", positions(evs), 1)
	if err := h.events().PauseSubscription(h.ctx, "t", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Pause of a missing subscription: %v", err)
	}
}

func testSubscriptionDelete(t *testing.T, h *harness) {
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s"})
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "keep"})
	h.publish("t", ev("k", ""), ev("k", ""))
	h.route("t", "s")
	h.route("t", "keep")
	jobs, _ := h.deliveries("t", "s", 1)
	if err := h.events().DeleteSubscription(h.ctx, "t", "s"); err != nil {
		t.Fatal(err)
	}
	if got := h.list(store.ListParams{Queue: "sub/t/s"}); len(got) != 0 {
		t.Errorf("deleted subscription left %d deliveries", len(got))
	}
	if errs := h.settle(store.Verdict{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.Complete}); !errors.Is(errs[0], store.ErrNotFound) {
		t.Errorf("settling a deleted delivery: %v, want ErrNotFound", errs[0])
	}
	if err := h.events().DeleteSubscription(h.ctx, "t", "s"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting it again: %v", err)
	}
	if got := h.list(store.ListParams{Queue: "sub/t/keep"}); len(got) != 2 {
		t.Errorf("the other subscription has %d deliveries, want 2", len(got))
	}
}

func testSubscriptionLag(t *testing.T, h *harness) {
	h.subscribe(store.SubscriptionParams{Topic: "empty", Name: "s", From: store.StartAt{From: store.StartBegin}})
	if lag := h.getSub("empty", "s").Lag; lag != (store.Lag{}) {
		t.Errorf("lag of an empty topic = %+v", lag)
	}
	h.publish("t", ev("k", ""), ev("k", ""))
	h.clock.Advance(10 * time.Second)
	h.publish("t", ev("k", ""))
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", From: store.StartAt{From: store.StartBegin}})
	lag := h.getSub("t", "s").Lag
	if lag.Head != 3 || lag.Unrouted != 3 || lag.Behind != 3 || lag.Pending != 0 || lag.OldestAge != 10*time.Second {
		t.Errorf("lag before routing = %+v", lag)
	}
	h.route("t", "s")
	h.clock.Advance(5 * time.Second)
	jobs, _ := h.deliveries("t", "s", 1)
	h.completeAll(jobs)
	lag = h.getSub("t", "s").Lag
	if lag.Unrouted != 0 || lag.Pending != 2 || lag.Behind != 2 || lag.OldestAge != 5*time.Second {
		t.Errorf("lag after routing and one completion = %+v", lag)
	}
}

func testEventRetention(t *testing.T, h *harness) {
	es := h.events()
	if err := es.SetTopicRetention(h.ctx, "t", time.Hour); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		h.publish("t", ev("k", ""))
	}
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "fast", From: store.StartAt{From: store.StartBegin}})
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "slow", From: store.StartAt{From: store.StartBegin}})
	h.route("t", "fast")
	if _, err := es.Route(h.ctx, store.RouteParams{Topic: "t", Name: "slow", Limit: 2}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * time.Hour)
	h.publish("t", ev("k", ""))
	n, err := es.PruneEvents(h.ctx, store.PruneEventsParams{})
	if err != nil || n != 2 {
		t.Fatalf("PruneEvents = %d, %v; want the 2 events every subscription was handed", n, err)
	}
	page, _ := es.ReadEvents(h.ctx, store.ReadEventsParams{Topic: "t"})
	wantPositions(t, "kept", positions(page.Events), 3, 4, 5)
	slow := h.getSub("t", "slow")
	if !slow.Lag.HoldsRetention {
		t.Errorf("the slow subscription holds retention but its lag says %+v", slow.Lag)
	}
	if h.getSub("t", "fast").Lag.HoldsRetention {
		t.Error("the fast subscription is said to hold retention")
	}
	h.route("t", "slow")
	h.route("t", "fast")
	if n, _ := es.PruneEvents(h.ctx, store.PruneEventsParams{}); n != 2 {
		t.Fatalf("PruneEvents after the slow one caught up = %d, want 2 (the newest is within retention)", n)
	}
	// A subscription starting at the beginning now starts at what is kept.
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "late", From: store.StartAt{From: store.StartBegin}})
	h.route("t", "late")
	_, evs := h.deliveries("t", "late", 10)
	wantPositions(t, "late subscriber", positions(evs), 5)
	if err := es.SetTopicRetention(h.ctx, "t", -5); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("negative retention: %v", err)
	}
}

func (h *harness) eventTx() store.EventSQLTx {
	h.t.Helper()
	x := h.s.Capabilities().EventsSQLTx
	if x == nil {
		h.t.Fatal("the backend declares Features.Events and SQLTx, but Capabilities().EventsSQLTx is nil")
	}
	return x
}

func testPublishTx(t *testing.T, h *harness) {
	x := h.eventTx()
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s"})
	tx := h.b.BeginTx(t, h.s)
	if _, err := x.PublishTx(h.ctx, tx, "t", []store.EventInput{{ID: "gone", Kind: "k"}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	tx = h.b.BeginTx(t, h.s)
	if _, err := x.PublishTx(h.ctx, tx, "t", []store.EventInput{{Kind: ""}}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad event in tx: %v", err)
	}
	res, err := x.PublishTx(h.ctx, tx, "t", []store.EventInput{{ID: "kept", Kind: "k"}})
	if err != nil || res[0].Position != 1 {
		t.Fatalf("PublishTx after a refused one = %+v, %v (want position 1: the rolled-back one gave it back)", res, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	h.route("t", "s")
	_, evs := h.deliveries("t", "s", 10)
	if len(evs) != 1 || evs[0].ID != "kept" {
		t.Fatalf("delivered %v, want only the committed event", evs)
	}
	if _, err := h.events().GetEvent(h.ctx, "t", "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a rolled-back event is stored: %v", err)
	}
}

// testPublishInterleaved: a publisher holding its transaction open does
// not let another publisher's later event, or a router, pass it.
func testPublishInterleaved(t *testing.T, h *harness) {
	x := h.eventTx()
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s"})
	tx := h.b.BeginTx(t, h.s)
	if _, err := x.PublishTx(h.ctx, tx, "t", []store.EventInput{{ID: "slow", Kind: "k"}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var fast []store.PublishResult
	var ferr error
	wg.Go(func() { fast, ferr = h.events().Publish(h.ctx, "t", []store.EventInput{{ID: "fast", Kind: "k"}}) })
	routed := make(chan store.RouteResult, 1)
	wg.Go(func() {
		r, err := h.events().Route(h.ctx, store.RouteParams{Topic: "t", Name: "s"})
		if err != nil {
			t.Error(err)
		}
		routed <- r
	})
	time.Sleep(50 * time.Millisecond) // let both reach the store while tx is open
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if ferr != nil || fast[0].Position != 2 {
		t.Fatalf("the second publisher got %+v, %v; want position 2", fast, ferr)
	}
	<-routed
	h.route("t", "s")
	h.route("t", "s")
	_, evs := h.deliveries("t", "s", 10)
	wantPositions(t, "both publishers", positions(evs), 1, 2)
}

func testMarkSeen(t *testing.T, h *harness) {
	x := h.eventTx()
	mark := func(id string, commit bool) bool {
		t.Helper()
		tx := h.b.BeginTx(t, h.s)
		first, err := x.MarkSeenTx(h.ctx, tx, "t/s", id)
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
		return first
	}
	if !mark("e1", false) {
		t.Error("first mark not first")
	}
	if !mark("e1", true) {
		t.Error("a rolled-back mark was kept")
	}
	if mark("e1", true) {
		t.Error("second mark reported first")
	}
	if !mark("e2", true) {
		t.Error("another id not first")
	}
	tx := h.b.BeginTx(t, h.s)
	if _, err := x.MarkSeenTx(h.ctx, tx, "", "e"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty consumer: %v", err)
	}
	_ = tx.Rollback()
	// Forgetting a consumer's inbox makes its messages unseen again.
	if n, err := h.events().ForgetInbox(h.ctx, "t/s"); err != nil || n != 2 {
		t.Fatalf("ForgetInbox = %d, %v; want the 2 entries", n, err)
	}
	if !mark("e2", true) || mark("e2", true) {
		t.Error("after ForgetInbox, a message is not first exactly once")
	}
	if _, err := h.events().ForgetInbox(h.ctx, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ForgetInbox of no consumer: %v", err)
	}
	// Deleting the subscription forgets its inbox.
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s"})
	if err := h.events().DeleteSubscription(h.ctx, "t", "s"); err != nil {
		t.Fatal(err)
	}
	if !mark("e2", true) {
		t.Error("a deleted subscription's inbox entry is still there")
	}
	// Old inbox entries are pruned.
	h.clock.Advance(time.Hour)
	if _, err := h.events().PruneEvents(h.ctx, store.PruneEventsParams{InboxBefore: h.now()}); err != nil {
		t.Fatal(err)
	}
	if !mark("e1", true) {
		t.Error("a pruned inbox entry still marks its id as seen")
	}
}

func testEventsRacing(t *testing.T, h *harness) {
	o := h.other()
	const publishers, per = 4, 25
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", From: store.StartAt{From: store.StartBegin}})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range publishers {
		hh := []*harness{h, o}[i%2]
		wg.Go(func() {
			for j := range per {
				if _, err := hh.events().Publish(hh.ctx, "t", []store.EventInput{{ID: fmt.Sprint(i, "-", j), Kind: "k", Key: fmt.Sprint("key", j%3)}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var routers sync.WaitGroup
	for _, hh := range []*harness{h, o} {
		routers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := hh.events().Route(hh.ctx, store.RouteParams{Topic: "t", Name: "s", Limit: 7}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	routers.Wait()
	h.route("t", "s")
	seen := map[int64]int{}
	ids := map[string]bool{}
	for {
		jobs, evs := h.deliveries("t", "s", 100)
		if len(jobs) == 0 {
			break
		}
		for _, e := range evs {
			seen[e.Position]++
			ids[e.ID] = true
		}
		h.completeAll(jobs)
	}
	if len(seen) != publishers*per || len(ids) != publishers*per {
		t.Fatalf("%d positions and %d IDs delivered, want %d", len(seen), len(ids), publishers*per)
	}
	for p := int64(1); p <= publishers*per; p++ {
		if seen[p] != 1 {
			t.Errorf("position %d delivered %d times", p, seen[p])
		}
	}
	// Versions per key are 1..n without gaps.
	for k := range 3 {
		page, err := h.events().ReadEvents(h.ctx, store.ReadEventsParams{Topic: "t", Key: fmt.Sprint("key", k), Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range page.Events {
			if e.Version != int64(i+1) {
				t.Fatalf("key%d: event %d has version %d", k, i, e.Version)
			}
		}
	}
}

func testRouteBatches(t *testing.T, h *harness) {
	es := h.events()
	var in []store.EventInput
	for i := range 10 {
		in = append(in, store.EventInput{Kind: fmt.Sprint("k", i%2), Tenant: "acme", Key: fmt.Sprint("key", i%3), Payload: []byte{byte(i)}})
	}
	h.publish("t", in...)
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "s", MaxAttempts: 4, From: store.StartAt{From: store.StartBegin}})
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "ordered", Ordered: true, From: store.StartAt{From: store.StartBegin}})
	r, err := es.Route(h.ctx, store.RouteParams{Topic: "t", Name: "s", Spread: 3})
	if err != nil || r.Routed != 10 || r.Jobs != 3 || r.Cursor != 10 {
		t.Fatalf("Route with Spread 3 = %+v, %v; want 10 events in 3 jobs", r, err)
	}
	if lag := h.getSub("t", "s").Lag; lag.Pending != 10 || lag.Behind != 10 {
		t.Errorf("lag counts jobs, not events: %+v", lag)
	}
	jobs, evs := h.deliveries("t", "s", 10)
	if len(jobs) != 3 || jobs[0].Kind != store.BatchKind || jobs[0].MaxAttempts != 4 {
		t.Fatalf("claimed %d jobs, first of kind %q", len(jobs), jobs[0].Kind)
	}
	wantPositions(t, "batched", positions(evs), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	for _, e := range evs {
		if e.Kind != fmt.Sprint("k", (e.Position-1)%2) || e.Tenant != "acme" || len(e.Payload) != 1 || int64(e.Payload[0]) != e.Position-1 || e.Version == 0 {
			t.Errorf("batched event %d = %+v", e.Position, e)
		}
	}
	// A dead batch counts its events.
	h.settleOK(store.Verdict{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.DeadLetter})
	h.completeAll(jobs[1:])
	if lag := h.getSub("t", "s").Lag; lag.Dead != 4 || lag.Pending != 0 {
		t.Errorf("lag after a batch of 4 died = %+v, want 4 dead", lag)
	}
	// An ordered subscription has one delivery per event whatever the spread.
	if r, _ = es.Route(h.ctx, store.RouteParams{Topic: "t", Name: "ordered", Spread: 3}); r.Jobs != 10 || r.Routed != 10 {
		t.Errorf("ordered Route with Spread 3 = %+v, want 10 jobs", r)
	}
	// A batch never goes over MaxBatchEvents.
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "big", From: store.StartAt{From: store.StartBegin}})
	more := make([]store.EventInput, 200)
	for i := range more {
		more[i] = store.EventInput{Kind: "k"}
	}
	h.publish("t", more...)
	if r, _ = es.Route(h.ctx, store.RouteParams{Topic: "t", Name: "big", Spread: 2}); r.Routed != 210 || r.Jobs != 4 {
		t.Errorf("Route of 210 events with Spread 2 = %+v, want 4 jobs of at most %d", r, store.MaxBatchEvents)
	}
	if _, err := es.Publish(h.ctx, "t", []store.EventInput{{Kind: store.BatchKind}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("publishing the batch kind: %v, want ErrInvalid", err)
	}
}

// testPublishRoutes: a publish of a few events routes them itself to the
// subscriptions that are caught up, in its own transaction; one that lags
// behind, and larger publishes, are left to routers.
func testPublishRoutes(t *testing.T, h *harness) {
	h.publish("t", ev("old", ""))
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "live"})
	h.subscribe(store.SubscriptionParams{Topic: "t", Name: "behind", From: store.StartAt{From: store.StartBegin}})
	h.publish("t", ev("a", "k"), ev("b", ""))
	jobs, evs := h.deliveries("t", "live", 10)
	wantPositions(t, "caught up", positions(evs), 2, 3)
	if len(jobs) != 2 || jobs[0].Kind != "a" {
		t.Errorf("a publish of 2 events made %d deliveries, want one each", len(jobs))
	}
	if sub := h.getSub("t", "live"); sub.Cursor != 3 || sub.Lag.Unrouted != 0 {
		t.Errorf("caught-up subscription after the publish = %+v", sub)
	}
	if sub := h.getSub("t", "behind"); sub.Cursor != 0 || sub.Lag.Unrouted != 3 {
		t.Errorf("a subscription behind was routed by the publish: %+v", sub)
	}
	many := make([]store.EventInput, store.MaxRouteAtPublish+1)
	for i := range many {
		many[i] = store.EventInput{Kind: "k"}
	}
	h.publish("t", many...)
	if sub := h.getSub("t", "live"); sub.Cursor != 3 {
		t.Errorf("a publish of %d events routed them itself: cursor %d", len(many), sub.Cursor)
	}
	if r := h.route("t", "live"); r.Routed != len(many) {
		t.Errorf("the router routed %d, want %d", r.Routed, len(many))
	}
}
