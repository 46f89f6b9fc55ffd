package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	spool "github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// The events API: topics, their events and streams, and durable
// subscriptions. A tenant's topics are stored under its prefix ("acme/orders"),
// so its subscriptions' deliveries are in "sub/acme/orders/NAME", which
// its key names "sub/orders/NAME" to claim them like any queue's jobs.

// events returns the store's events capability, or ErrEventsUnsupported.
func (c *call) events() (store.EventStore, error) {
	es := c.s.st.Capabilities().Events
	if es == nil {
		return nil, spool.ErrEventsUnsupported
	}
	return es, nil
}

// topic returns the path's {topic} as the key names it and as it is stored.
func (c *call) topic() (name, stored string, err error) {
	name = c.r.PathValue("topic")
	if err := store.ValidTopic(name); err != nil {
		return "", "", err
	}
	stored, err = c.sc.topicIn(name)
	return name, stored, err
}

// topicEvents is topic with the store's events, for the routes of one
// topic.
func (c *call) topicEvents() (name, stored string, es store.EventStore, err error) {
	if name, stored, err = c.topic(); err != nil {
		return "", "", nil, err
	}
	es, err = c.events()
	return name, stored, es, err
}

// publishAnswer is a batch publish's answer.
type publishAnswer struct {
	Results []wire.PublishResult `json:"results"`
}

// publish is POST /v1/topics/{topic}/events: one event (an object) or many
// ({"events": [...]}), all or nothing.
func (c *call) publish() (any, error) {
	name, topic, es, err := c.topicEvents()
	if err != nil {
		return nil, err
	}
	raw, batch, err := c.batchBody("events")
	if err != nil {
		return nil, err
	}
	var events []store.EventInput
	if batch {
		if c.r.Header.Get(HeaderIdempotencyKey) != "" {
			return nil, &store.ValidationError{Field: HeaderIdempotencyKey, Reason: "applies to a single event: give each event of a batch its id"}
		}
		if events, err = wire.DecodePublish(bytes.NewReader(raw)); err != nil {
			return nil, err
		}
	} else {
		e, err := wire.DecodeEvent(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		if k := c.r.Header.Get(HeaderIdempotencyKey); k != "" {
			if e.ID != "" && e.ID != k {
				return nil, &store.ValidationError{Field: HeaderIdempotencyKey, Reason: "differs from the event's id"}
			}
			e.ID = k
		}
		events = []store.EventInput{e}
	}
	if err := c.ownEvents(events); err != nil {
		return nil, err
	}
	if tc := traceContextOf(c.r); tc != nil {
		for i := range events {
			events[i].Headers = withTraceContext(events[i].Headers, tc)
		}
	}
	res, err := es.Publish(c.ctx, topic, events)
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	out := c.published(name, res)
	if !batch {
		return out[0], nil
	}
	return publishAnswer{Results: out}, nil
}

// ownEvents gives events the key publishes its tenant; an event naming
// another is refused (an item error).
func (c *call) ownEvents(events []store.EventInput) error {
	var errs []error
	for i := range events {
		t, err := c.sc.tenantIn(events[i].Tenant)
		if err != nil {
			errs = append(errs, &store.ItemError{Index: i, Err: err})
		}
		events[i].Tenant = t
	}
	return errors.Join(errs...)
}

// published returns the views of a publish's results, and answers 201 when
// it wrote any event (200 when the topic had them all).
func (c *call) published(topic string, res []store.PublishResult) []wire.PublishResult {
	out := make([]wire.PublishResult, len(res))
	for i, r := range res {
		out[i] = wire.PublishResultOf(topic, r)
		if !r.Duplicate {
			c.status = http.StatusCreated
		}
	}
	return out
}

// appendStream is POST /v1/topics/{topic}/streams/{key}/events
// {"expected_version": N, "events": [...]}: append to one key's stream if
// it is at version N, else 409 conflict with its current version.
func (c *call) appendStream() (any, error) {
	name, topic, es, err := c.topicEvents()
	if err != nil {
		return nil, err
	}
	key := c.r.PathValue("key")
	raw, err := c.body()
	if err != nil {
		return nil, err
	}
	expected, events, err := wire.DecodeAppend(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if err := c.ownEvents(events); err != nil {
		return nil, err
	}
	res, err := es.Append(c.ctx, topic, key, expected, events)
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	return publishAnswer{Results: c.published(name, res)}, nil
}

// eventQuery are the query parameters of a read of events.
var eventQuery = []string{"after", "limit", "key"}

// readEvents is GET /v1/topics/{topic}/events?after=&limit=&key=: a page of
// the topic's events in position order, or with key, of one stream in
// version order (after is then a version).
func (c *call) readEvents() (any, error) {
	return c.readPage(c.query("key"), true)
}

// readStream is GET /v1/topics/{topic}/streams/{key}/events?after=&limit=:
// a page of one key's stream, in version order.
func (c *call) readStream() (any, error) {
	return c.readPage(c.r.PathValue("key"), false)
}

func (c *call) readPage(key string, keyQuery bool) (any, error) {
	for k := range c.r.URL.Query() {
		if !slices.Contains(eventQuery, k) || !keyQuery && k == "key" {
			return nil, &store.ValidationError{Field: k, Reason: "is not a query parameter of this route (after, limit, and key for a topic's events)"}
		}
	}
	name, topic, es, err := c.topicEvents()
	if err != nil {
		return nil, err
	}
	after, err := c.intQuery("after", 0)
	if err != nil {
		return nil, err
	}
	limit, err := c.intQuery("limit", store.DefaultListLimit)
	if err != nil {
		return nil, err
	}
	if limit < 1 || limit > store.MaxReadEvents {
		return nil, &store.LimitError{Field: "limit", Limit: store.MaxReadEvents, Got: limit}
	}
	if after < 0 {
		return nil, &store.ValidationError{Field: "after", Reason: "may not be negative"}
	}
	page, err := es.ReadEvents(c.ctx, store.ReadEventsParams{Topic: topic, After: int64(after), Key: key, Limit: limit})
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	v := wire.EventPageOf(page)
	for i := range v.Events {
		v.Events[i].Topic = name
	}
	return v, nil
}

// getEvent is GET /v1/topics/{topic}/events/{id}.
func (c *call) getEvent() (any, error) {
	name, topic, es, err := c.topicEvents()
	if err != nil {
		return nil, err
	}
	e, err := es.GetEvent(c.ctx, topic, c.r.PathValue("id"))
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	v := wire.EventOf(e)
	v.Topic = name
	return v, nil
}

// findEvent is GET /v1/events/{id}: the event with this ID in any topic the
// key sees (the first found).
func (c *call) findEvent() (any, error) {
	es, err := c.events()
	if err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if c.sc.all() && c.sc.queues == nil {
		e, err := es.GetEvent(c.ctx, "", id)
		if err != nil {
			return nil, err
		}
		return wire.EventOf(e), nil
	}
	// Another tenant may have an event of this ID: look in the key's own
	// topics only.
	topics, err := es.Topics(c.ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range topics {
		name, ok := c.sc.topicOut(t.Name)
		if !ok {
			continue
		}
		e, err := es.GetEvent(c.ctx, t.Name, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		v := wire.EventOf(e)
		v.Topic = name
		return v, nil
	}
	return nil, &store.NotFoundError{Resource: "event", Name: id}
}

// topicsAnswer is GET /v1/topics's answer.
type topicsAnswer struct {
	Topics []wire.Topic `json:"topics"`
}

// listTopics is GET /v1/topics: the key's topics with their heads and
// retention.
func (c *call) listTopics() (any, error) {
	es, err := c.events()
	if err != nil {
		return nil, err
	}
	all, err := es.Topics(c.ctx)
	if err != nil {
		return nil, err
	}
	out := topicsAnswer{Topics: []wire.Topic{}}
	for _, t := range all {
		if name, ok := c.sc.topicOut(t.Name); ok {
			t.Name = name
			out.Topics = append(out.Topics, wire.TopicOf(t))
		}
	}
	return out, nil
}

// setRetention is PUT /v1/topics/{topic}/retention {"retention": "168h"}
// (or "forever"): it answers the topic.
func (c *call) setRetention() (any, error) {
	name, topic, es, err := c.topicEvents()
	if err != nil {
		return nil, err
	}
	raw, err := c.body()
	if err != nil {
		return nil, err
	}
	d, err := wire.DecodeRetention(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	err = es.SetTopicRetention(c.ctx, topic, d)
	c.record("topic.retention", name, boolCount(err == nil), err)
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	topics, err := es.Topics(c.ctx)
	if err != nil {
		return nil, err
	}
	info := store.TopicInfo{Name: topic, Retention: d}
	if i := slices.IndexFunc(topics, func(t store.TopicInfo) bool { return t.Name == topic }); i >= 0 {
		info = topics[i]
	}
	info.Name = name
	return wire.TopicOf(info), nil
}

// subscriptionsAnswer is a list of subscriptions.
type subscriptionsAnswer struct {
	Subscriptions []wire.Subscription `json:"subscriptions"`
}

// listSubscriptions is GET /v1/topics/{topic}/subscriptions; listAllSubscriptions
// is GET /v1/subscriptions, every topic's the key sees. Each with its lag.
func (c *call) listSubscriptions() (any, error) {
	_, topic, err := c.topic()
	if err != nil {
		return nil, err
	}
	return c.subscriptionList(topic)
}

func (c *call) listAllSubscriptions() (any, error) {
	if c.sc.queues != nil {
		return subscriptionsAnswer{Subscriptions: []wire.Subscription{}}, nil
	}
	return c.subscriptionList("")
}

func (c *call) subscriptionList(topic string) (any, error) {
	es, err := c.events()
	if err != nil {
		return nil, err
	}
	subs, err := es.ListSubscriptions(c.ctx, topic)
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	out := subscriptionsAnswer{Subscriptions: []wire.Subscription{}}
	for _, s := range subs {
		if v, ok := c.subscriptionView(s); ok {
			out.Subscriptions = append(out.Subscriptions, v)
		}
	}
	return out, nil
}

// subscriptionView returns the view of a subscription in the key's names,
// and false when it is not the key's to see.
func (c *call) subscriptionView(s *store.Subscription) (wire.Subscription, bool) {
	v := wire.SubscriptionOf(s)
	var ok bool
	if v.Topic, ok = c.sc.topicOut(s.Topic); !ok {
		return v, false
	}
	v.Queue, _ = c.sc.queueOut(s.Queue)
	return v, true
}

// subscription returns the path's {topic} (as the key names it and as
// stored) and {name}.
func (c *call) subscription() (es store.EventStore, name, topic, sub string, err error) {
	if name, topic, err = c.topic(); err != nil {
		return nil, "", "", "", err
	}
	sub = c.r.PathValue("name")
	if err := store.ValidName("subscription", sub, false); err != nil {
		return nil, "", "", "", err
	}
	es, err = c.events()
	return es, name, topic, sub, err
}

// putSubscription is PUT /v1/topics/{topic}/subscriptions/{name}: create a
// subscription (201), or answer the existing one when it has the same
// definition (200, "created": false); another definition is 409 conflict.
func (c *call) putSubscription() (any, error) {
	es, _, topic, name, err := c.subscription()
	if err != nil {
		return nil, err
	}
	raw, err := c.body()
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}") // every default
	}
	p, err := wire.DecodeSubscription(bytes.NewReader(raw), topic, name)
	if err != nil {
		return nil, err
	}
	sub, created, err := es.CreateSubscription(c.ctx, p)
	c.record("subscription.create", c.r.PathValue("topic")+"/"+name, boolCount(created), err)
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	if created {
		c.status = http.StatusCreated
	}
	v, _ := c.subscriptionView(sub)
	return wire.CreatedSubscription{Subscription: v, Created: created}, nil
}

// getSubscription is GET /v1/topics/{topic}/subscriptions/{name}, with its lag.
func (c *call) getSubscription() (any, error) {
	es, _, topic, name, err := c.subscription()
	if err != nil {
		return nil, err
	}
	sub, err := es.GetSubscription(c.ctx, topic, name)
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	v, _ := c.subscriptionView(sub)
	return v, nil
}

// subscriptionAnswer says what a pause, resume or delete did.
type subscriptionAnswer struct {
	Topic   string `json:"topic"`
	Name    string `json:"name"`
	Paused  *bool  `json:"paused,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}

// deleteSubscription is DELETE /v1/topics/{topic}/subscriptions/{name}: the
// subscription and every delivery it has, dead letters included.
func (c *call) deleteSubscription() (any, error) {
	es, name, topic, sub, err := c.subscription()
	if err != nil {
		return nil, err
	}
	err = es.DeleteSubscription(c.ctx, topic, sub)
	c.record("subscription.delete", name+"/"+sub, boolCount(err == nil), err)
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	c.s.forgetSubscription(store.SubscriptionQueue(topic, sub))
	return subscriptionAnswer{Topic: name, Name: sub, Deleted: true}, nil
}

// pauseSubscription is POST .../subscriptions/{name}/pause;
// resumeSubscription .../resume.
func (c *call) pauseSubscription() (any, error)  { return c.pauseOrResume(true) }
func (c *call) resumeSubscription() (any, error) { return c.pauseOrResume(false) }

func (c *call) pauseOrResume(pause bool) (any, error) {
	es, name, topic, sub, err := c.subscription()
	if err != nil {
		return nil, err
	}
	action := "subscription.resume"
	if pause {
		err = es.PauseSubscription(c.ctx, topic, sub)
		action = "subscription.pause"
	} else {
		err = es.ResumeSubscription(c.ctx, topic, sub)
	}
	c.record(action, name+"/"+sub, boolCount(err == nil), err)
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	return subscriptionAnswer{Topic: name, Name: sub, Paused: &pause}, nil
}

// rewound is a rewind's answer: the subscription as it now is, and how
// many inbox entries were deleted when asked to.
type rewound struct {
	wire.Subscription
	InboxForgotten *int `json:"inbox_forgotten,omitempty"`
}

// rewindSubscription is POST .../subscriptions/{name}/rewind {"to": "start"
// | N | "RFC3339" | "now", "forget_inbox": bool}.
func (c *call) rewindSubscription() (any, error) {
	es, _, topic, sub, err := c.subscription()
	if err != nil {
		return nil, err
	}
	raw, err := c.body()
	if err != nil {
		return nil, err
	}
	to, forget, err := wire.DecodeRewind(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var out rewound
	if forget {
		if _, err := es.GetSubscription(c.ctx, topic, sub); err != nil {
			return nil, c.sc.errOut(err)
		}
		n, err := es.ForgetInbox(c.ctx, topic+"/"+sub)
		if err != nil {
			return nil, err
		}
		out.InboxForgotten = &n
	}
	s, err := es.RewindSubscription(c.ctx, topic, sub, to)
	c.record("subscription.rewind", c.r.PathValue("topic")+"/"+sub, boolCount(err == nil), err)
	if err != nil {
		return nil, c.sc.errOut(err)
	}
	out.Subscription, _ = c.subscriptionView(s)
	return out, nil
}

// errOut puts the names in a store's not-found or conflict error of a
// stream or subscription in the key's terms: without the tenant prefix.
func (sc *scope) errOut(err error) error {
	if sc.all() {
		return err
	}
	strip := func(resource, name string) string {
		if resource == "stream" || resource == "subscription" {
			return strings.TrimPrefix(name, sc.tenant+"/")
		}
		return name
	}
	switch e := err.(type) { //nolint:errorlint // only the store's own error itself, whose text is its fields
	case *store.NotFoundError:
		return &store.NotFoundError{Resource: e.Resource, Name: strip(e.Resource, e.Name)}
	case *store.ConflictError:
		x := *e
		x.Name = strip(e.Resource, e.Name)
		return &x
	}
	return err
}

// jobOut returns a job as the key knows it: the events a delivery carries
// name their topic without the tenant prefix. Other jobs, and every job
// for an operator's key, are returned as they are.
func (sc *scope) jobOut(j *store.Job) *store.Job {
	if sc.all() || !strings.HasPrefix(j.Queue, store.SubscriptionQueuePrefix) || len(j.Payload) == 0 {
		return j
	}
	events, err := store.DecodeDeliveries(j)
	if err != nil || len(events) == 0 {
		return j
	}
	for _, e := range events {
		e.Topic = strings.TrimPrefix(e.Topic, sc.tenant+"/")
	}
	var p []byte
	if j.Kind == store.BatchKind {
		p, err = store.EncodeBatch(events)
	} else {
		p, err = store.EncodeDelivery(events[0])
	}
	if err != nil {
		return j
	}
	out := *j
	out.Payload = p
	return &out
}

// Claims of a subscription's delivery queue route its events first when
// none waits: a worker in another language has no router of its own (a Go
// worker's Subscribe runs one). Each call routes up to routeLimit events,
// and none while routeMaxPending deliveries already wait to be claimed.
const (
	routeLimit      = 1000
	routeMaxPending = 1000
	// unknownSubFor is how long a queue under "sub/" that names no
	// subscription is remembered as such.
	unknownSubFor = time.Second
)

// subscriptionRefs remembers which subscription each delivery queue is.
type subscriptionRefs struct {
	mu sync.Mutex
	m  map[string]subRef
}

// subRef is a subscription's topic and name as stored; zero (with at set)
// for a queue that names none.
type subRef struct {
	topic, name string
	at          time.Time
}

// deliveryQueue returns the subscription whose delivery queue is queue (a
// stored name), and false for any other queue. "sub/A/B/C" may be topic
// "A/B" and name "C", or topic "A" and name "B/C": the first that exists,
// from the last "/", is taken.
func (s *Server) deliveryQueue(ctx context.Context, es store.EventStore, queue string) (subRef, bool) {
	rest, ok := strings.CutPrefix(queue, store.SubscriptionQueuePrefix)
	if !ok || es == nil {
		return subRef{}, false
	}
	now := s.cfg.Clock.Now()
	s.subRefs.mu.Lock()
	ref, known := s.subRefs.m[queue]
	s.subRefs.mu.Unlock()
	if known && (ref.name != "" || now.Sub(ref.at) < unknownSubFor) {
		return ref, ref.name != ""
	}
	ref = subRef{at: now}
	for i := strings.LastIndexByte(rest, '/'); i > 0; i = strings.LastIndexByte(rest[:i], '/') {
		_, err := es.GetSubscription(ctx, rest[:i], rest[i+1:])
		if err == nil {
			ref.topic, ref.name = rest[:i], rest[i+1:]
			break
		}
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) {
			return subRef{}, false // look again next time
		}
	}
	s.subRefs.mu.Lock()
	if s.subRefs.m == nil || len(s.subRefs.m) > 10_000 {
		s.subRefs.m = map[string]subRef{}
	}
	s.subRefs.m[queue] = ref
	s.subRefs.mu.Unlock()
	return ref, ref.name != ""
}

// forgetSubscription drops what deliveryQueue remembers of queue.
func (s *Server) forgetSubscription(queue string) {
	s.subRefs.mu.Lock()
	delete(s.subRefs.m, queue)
	s.subRefs.mu.Unlock()
}

// route routes a subscription's events into deliveries, and reports
// whether a claim may now find more: it routed some, or passed over
// filtered ones with more to look at.
func (c *call) route(es store.EventStore, ref subRef) bool {
	res, err := es.Route(c.ctx, store.RouteParams{Topic: ref.topic, Name: ref.name, Limit: routeLimit, MaxPending: routeMaxPending})
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.s.forgetSubscription(store.SubscriptionQueue(ref.topic, ref.name))
		return false
	case err != nil:
		if c.ctx.Err() == nil {
			c.s.cfg.Logger.Error("spool serve: routing events failed", "subscription", ref.topic+"/"+ref.name, "err", err)
		}
		return false
	}
	return res.Routed > 0 || res.Filtered > 0 && res.More() && !res.Busy && !res.Full
}
