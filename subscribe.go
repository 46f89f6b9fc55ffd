package spool

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/store"
)

// Event is one delivery of an event to a subscription's handler: the event
// as published, its decoded payload, and the delivery (a job in the
// subscription's queue, with its attempts and deliveries).
type Event[T any] struct {
	Topic       string
	Position    int64 // 1, 2, 3... per topic, in commit order
	ID          string
	Kind        string
	Key         string
	Version     int64 // the event's place in its key's stream; zero without a key
	Tenant      string
	Headers     map[string]string
	PublishedAt time.Time
	Payload     T
	Raw         []byte // the payload as published
	// Subscription is "TOPIC/NAME".
	Subscription string
	// Delivery is the job that carries this delivery: Delivery.Attempts
	// failed before, Delivery.Deliveries counts claims including this one.
	Delivery *Job

	tx store.EventSQLTx
}

// MarkSeen records, in tx, that this event was handled by this
// subscription, and reports whether it is the first time: the inbox. Call
// it in the transaction of the handler's own writes and skip them when it
// reports false, so that a redelivery (after a lost lock or a crash)
// changes nothing.
func (e *Event[T]) MarkSeen(ctx context.Context, tx *sql.Tx) (first bool, err error) {
	if e.tx == nil {
		return false, fmt.Errorf("%w: events in a caller's transaction", store.ErrUnsupported)
	}
	return e.tx.MarkSeenTx(ctx, tx, e.Subscription, e.ID)
}

// SubscribeOptions tune how a Worker works one subscription. Zero fields
// take the defaults on each. The subscription's own settings (lock
// duration, retries, max deliveries, ordering) are stored with it: see
// SubscriptionParams.
type SubscribeOptions struct {
	// Concurrency is how many of its events run at once. Default 10.
	Concurrency int
	// Prefetch is how many deliveries are claimed ahead. Default 0.
	Prefetch int
	// Timeout bounds each handler call. Default WorkerConfig.JobTimeout;
	// negative: none.
	Timeout time.Duration
}

// subscriber is a subscription a Worker works: its handlers until Start,
// and the stored subscription once Start has read it.
type subscriber struct {
	topic, name string
	opts        SubscribeOptions
	byKind      map[string]handler
	all         *handler

	// Set by Start.
	sub   *store.Subscription
	retry RetryPolicy
	kick  chan struct{} // capacity 1: deliveries were claimed, the router may route more
}

func (s *subscriber) ref() string { return s.topic + "/" + s.name }

// claimed tells the router that deliveries left the waiting line.
func (s *subscriber) claimed() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// subscriberFor returns w's subscriber of topic/name, making it.
func (w *Worker) subscriberFor(topic, name string) *subscriber {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.run != nil {
		panic("spool: Subscribe called after the worker started")
	}
	key := topic + "/" + name
	if s, ok := w.subs[key]; ok {
		return s
	}
	if w.subs == nil {
		w.subs = map[string]*subscriber{}
	}
	s := &subscriber{topic: topic, name: name, byKind: map[string]handler{}}
	w.subs[key] = s
	return s
}

// Subscribe makes w work the subscription topic/name: every event it gets
// runs fn, with its payload decoded from JSON into T (use json.RawMessage
// to take it as is). Handlers registered with SubscribeKind for a kind win
// over it. The subscription must exist when the worker starts (create it
// with Client.Subscriptions().Create or `spool subscriptions add`): Start
// fails otherwise. opts may be nil; the last non-nil opts given for a
// subscription apply.
//
// fn's error decides the delivery's fate as a job handler's does: nil
// completes it; Cancel, Snooze and DeadLetter say what they say; any other
// error fails the attempt, retried per the subscription's backoff until its
// max attempts, then dead-lettered in its queue ("sub/TOPIC/NAME"), where
// `spool dlq` and Client.Requeue find it. A payload that does not decode
// into T is dead-lettered at once.
func Subscribe[T any](w *Worker, topic, name string, fn func(ctx context.Context, e *Event[T]) error, opts *SubscribeOptions) {
	s := w.subscriberFor(topic, name)
	h := eventHandler(s, fn)
	s.all = &h
	if opts != nil {
		s.opts = *opts
	}
}

// SubscribeKind is Subscribe for the events of one kind k, decoded into T.
func SubscribeKind[T any](w *Worker, topic, name string, k Kind[T], fn func(ctx context.Context, e *Event[T]) error, opts *SubscribeOptions) {
	s := w.subscriberFor(topic, name)
	s.byKind[k.Name()] = eventHandler(s, fn)
	if opts != nil {
		s.opts = *opts
	}
}

func eventHandler[T any](s *subscriber, fn func(ctx context.Context, e *Event[T]) error) handler {
	return handler{run: func(ctx context.Context, job *Job) ([]byte, error) {
		stored, err := store.DecodeDelivery(job)
		if err != nil {
			return nil, DeadLetter(err)
		}
		e := &Event[T]{Topic: stored.Topic, Position: stored.Position, ID: stored.ID, Kind: stored.Kind, Key: stored.Key,
			Version: stored.Version, Tenant: stored.Tenant, Headers: stored.Headers, PublishedAt: stored.PublishedAt,
			Raw: stored.Payload, Subscription: s.ref(), Delivery: job}
		e.tx, _ = ctx.Value(eventTxKey{}).(store.EventSQLTx)
		if len(stored.Payload) > 0 {
			if err := json.Unmarshal(stored.Payload, &e.Payload); err != nil {
				return nil, DeadLetter(fmt.Errorf("decode %s payload: %w", job.Kind, err))
			}
		}
		return nil, fn(ctx, e)
	}}
}

// resolveSubscriptions reads the stored subscriptions w works and returns
// their queues.
func (w *Worker) resolveSubscriptions(ctx context.Context) ([]queueSpec, error) {
	if len(w.subs) == 0 {
		return nil, nil
	}
	caps := w.cfg.Store.Capabilities()
	es := caps.Events
	if es == nil {
		return nil, ErrEventsUnsupported
	}
	var specs []queueSpec
	var errs []error
	for _, s := range w.subs {
		sub, err := es.GetSubscription(ctx, s.topic, s.name)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = fmt.Errorf("%w (create it with Client.Subscriptions().Create or `spool subscriptions add %s %s`)", err, s.topic, s.name)
			}
			errs = append(errs, err)
			continue
		}
		conc := cmp.Or(s.opts.Concurrency, defaultConcurrency)
		if conc < 1 || s.opts.Prefetch < 0 || conc+s.opts.Prefetch > store.MaxClaim {
			errs = append(errs, &store.ValidationError{Field: fmt.Sprintf("SubscribeOptions[%q]", s.ref()),
				Reason: fmt.Sprintf("concurrency %d and prefetch %d: need 1 <= concurrency, 0 <= prefetch, sum <= %d", conc, s.opts.Prefetch, store.MaxClaim)})
			continue
		}
		s.sub, s.kick = sub, make(chan struct{}, 1)
		s.retry = Backoff{Base: sub.RetryBase, Max: sub.RetryMax}
		for k, h := range s.byKind {
			s.byKind[k] = s.withOptions(h, caps.EventsSQLTx)
		}
		if s.all != nil {
			h := s.withOptions(*s.all, caps.EventsSQLTx)
			s.all = &h
		}
		specs = append(specs, queueSpec{name: sub.Queue, conc: conc, capacity: conc + s.opts.Prefetch, lock: sub.LockFor, sub: s})
	}
	return specs, errors.Join(errs...)
}

// withOptions gives h the subscription's timeout and retry policy, and its
// events the inbox.
func (s *subscriber) withOptions(h handler, tx store.EventSQLTx) handler {
	h.opts = HandlerOptions{Timeout: s.opts.Timeout, Retry: s.retry}
	run := h.run
	h.run = func(ctx context.Context, job *Job) ([]byte, error) {
		return run(withEventTx(ctx, tx), job)
	}
	return h
}

// The inbox of an Event is reached through its handler's context, so that
// eventHandler, which is generic, needs no field of the Worker.
type eventTxKey struct{}

func withEventTx(ctx context.Context, tx store.EventSQLTx) context.Context {
	if tx == nil {
		return ctx
	}
	return context.WithValue(ctx, eventTxKey{}, tx)
}

// handlerFor returns the handler for a job of kind in q and its effective
// options.
func (q *queueRunner) handlerFor(kind string) (handler, bool) {
	w := q.run.w
	s := q.sub
	if s == nil {
		return w.handlerFor(kind)
	}
	h, ok := s.byKind[kind]
	if !ok && s.all != nil {
		h, ok = *s.all, true
	}
	if !ok {
		return handler{}, false
	}
	h.opts.Timeout = cmp.Or(h.opts.Timeout, w.cfg.JobTimeout)
	return h, true
}

// retry is the retry policy of q's jobs that have no handler.
func (q *queueRunner) retry() RetryPolicy {
	if q.sub != nil {
		return q.sub.retry
	}
	return q.run.w.cfg.Retry
}

// shortestLock is the shortest lock duration of the run's queues: the
// renewer ticks at a quarter of it.
func (run *workerRun) shortestLock() time.Duration {
	lock := run.w.cfg.LockDuration
	for _, q := range run.queues {
		lock = min(lock, q.lock)
	}
	return lock
}

// routers is the service of a run's routers, one per subscription: each
// turns the topic's new events into the subscription's deliveries
// (store.EventStore.Route), keeping a bounded number waiting.
type routers struct {
	run  *workerRun
	base startstop.Base
}

func (r *routers) Start(ctx context.Context) error {
	return r.base.Start(ctx, func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, q := range r.run.queues {
			if q.sub != nil {
				wg.Go(func() { q.route(ctx) })
			}
		}
		wg.Wait()
	})
}

func (r *routers) Stop(ctx context.Context) error { return r.base.Stop(ctx) }

// Routing works in calls of routeBatch events and keeps about maxWaiting
// deliveries of a subscription waiting to be claimed, so that a
// subscription far behind (a replay) does not flood the jobs table.
const (
	routeBatch    = 1000
	minMaxWaiting = 2000
)

// route routes q's subscription until ctx ends: at once while events
// remain, then when the topic announces new ones, deliveries are claimed,
// or the poll interval passes.
func (q *queueRunner) route(ctx context.Context) {
	w := q.run.w
	s := q.sub
	es := w.cfg.Store.Capabilities().Events
	notifier := w.cfg.Store.Capabilities().Notifier
	maxWaiting := max(minMaxWaiting, 4*q.capacity)
	backoff := minBackoff
	for ctx.Err() == nil {
		var published <-chan struct{}
		if notifier != nil {
			published = notifier.Available(store.TopicSignal(s.topic)) // before routing: no lost wake-up
		}
		res, err := es.Route(ctx, store.RouteParams{Topic: s.topic, Name: s.name, Limit: routeBatch, MaxPending: maxWaiting})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Error("spool: routing events failed; retrying", "subscription", s.ref(), "err", err, "after", backoff)
			sleep(ctx, w.clock, backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		if res.More() && !res.Full && !res.Busy {
			continue
		}
		var kick <-chan struct{}
		if res.Full {
			kick = s.kick
		}
		poll := w.clock.NewTimer(w.cfg.PollInterval)
		select {
		case <-published:
		case <-kick:
		case <-poll.Chan():
		case <-ctx.Done():
		}
		poll.Stop()
	}
}
