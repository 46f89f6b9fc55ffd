package spool

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/spoolrun/spool/internal/startstop"
	"github.com/spoolrun/spool/internal/tracing"
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

// eventFunc handles one event of a delivery, which is the job delivery
// (an event's own, or a batch's).
type eventFunc func(ctx context.Context, ev *store.Event, delivery *Job) error

// subscriber is a subscription a Worker works: its handlers until Start,
// and the stored subscription once Start has read it.
type subscriber struct {
	topic, name string
	opts        SubscribeOptions
	byKind      map[string]eventFunc
	all         eventFunc
	store       store.Store      // set by Start
	tx          store.EventSQLTx // set by Start: the inbox, or nil
	tracer      *tracing.Tracer  // set by Start: the worker's

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
	s := &subscriber{topic: topic, name: name, byKind: map[string]eventFunc{}}
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
	s.all = typedEvent(s, fn)
	if opts != nil {
		s.opts = *opts
	}
}

// SubscribeKind is Subscribe for the events of one kind k, decoded into T.
func SubscribeKind[T any](w *Worker, topic, name string, k Kind[T], fn func(ctx context.Context, e *Event[T]) error, opts *SubscribeOptions) {
	s := w.subscriberFor(topic, name)
	s.byKind[k.Name()] = typedEvent(s, fn)
	if opts != nil {
		s.opts = *opts
	}
}

// typedEvent adapts fn to an eventFunc: the payload is decoded into T, and
// one that does not decode is dead-lettered.
func typedEvent[T any](s *subscriber, fn func(ctx context.Context, e *Event[T]) error) eventFunc {
	return func(ctx context.Context, ev *store.Event, delivery *Job) error {
		e := &Event[T]{Topic: ev.Topic, Position: ev.Position, ID: ev.ID, Kind: ev.Kind, Key: ev.Key,
			Version: ev.Version, Tenant: ev.Tenant, Headers: ev.Headers, PublishedAt: ev.PublishedAt,
			Raw: ev.Payload, Subscription: s.ref(), Delivery: delivery, tx: s.tx}
		switch p := any(&e.Payload).(type) {
		case *json.RawMessage: // taken as is, JSON or not
			*p = ev.Payload
		case *[]byte:
			*p = ev.Payload
		default:
			if len(ev.Payload) == 0 {
				break
			}
			if err := json.Unmarshal(ev.Payload, &e.Payload); err != nil {
				return DeadLetter(fmt.Errorf("decode %s payload: %w", ev.Kind, err))
			}
		}
		return fn(ctx, e)
	}
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
		conc, capacity, err := slots(fmt.Sprintf("SubscribeOptions[%q].", s.ref()), s.opts.Concurrency, s.opts.Prefetch)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.sub, s.kick = sub, make(chan struct{}, 1)
		s.retry = Backoff{Base: sub.RetryBase, Max: sub.RetryMax}
		s.store, s.tx, s.tracer = w.cfg.Store, caps.EventsSQLTx, w.tracer
		specs = append(specs, queueSpec{name: sub.Queue, conc: conc, capacity: capacity, lock: sub.LockFor, sub: s})
	}
	return specs, errors.Join(errs...)
}

// handlerFor returns the handler for a job of kind in q and its effective
// options.
func (q *queueRunner) handlerFor(kind string) (handler, bool) {
	w := q.run.w
	s := q.sub
	if s == nil {
		return w.handlerFor(kind)
	}
	if kind == store.BatchKind {
		// Each event of a batch gets the timeout; the batch has none.
		return handler{run: s.runBatch(w.cfg.JobTimeout), opts: HandlerOptions{Timeout: -1, Retry: s.retry}}, true
	}
	f := s.lookup(kind)
	if f == nil {
		return handler{}, false
	}
	return handler{run: func(ctx context.Context, job *Job) ([]byte, error) {
		evs, err := store.DecodeDeliveries(job)
		if err != nil {
			return nil, DeadLetter(err)
		}
		return nil, s.call(ctx, f, evs[0], job)
	}, opts: HandlerOptions{Timeout: cmp.Or(s.opts.Timeout, w.cfg.JobTimeout), Retry: s.retry}}, true
}

// lookup returns the handler of events of kind, or nil.
func (s *subscriber) lookup(kind string) eventFunc {
	if f, ok := s.byKind[kind]; ok {
		return f
	}
	return s.all
}

// runBatch returns the handler of a batch delivery: its events run one
// after another, each with its own timeout, on the executor that claimed
// it. An event whose handler does not succeed leaves the batch: it becomes
// a delivery of its own (see own), where its verdict applies with the full
// job semantics, and the batch completes. A batch whose earlier delivery
// was lost (a crash, an expired lock) is not run again as a whole: its
// events become deliveries of their own, so each is counted and, if it
// keeps failing, dead-lettered on its own.
func (s *subscriber) runBatch(jobTimeout time.Duration) func(ctx context.Context, job *Job) ([]byte, error) {
	timeout := cmp.Or(s.opts.Timeout, jobTimeout)
	return func(ctx context.Context, job *Job) ([]byte, error) {
		evs, err := store.DecodeDeliveries(job)
		if err != nil {
			return nil, DeadLetter(err)
		}
		var own []store.EnqueueParams
		for i, ev := range evs {
			if job.Deliveries > 1 || ctx.Err() != nil {
				// Split, or stopping: the rest wait as deliveries of their own.
				for _, rest := range evs[i:] {
					own = append(own, s.own(rest, nil, job))
				}
				break
			}
			if err := s.runEvent(ctx, timeout, ev, job); err != nil {
				if ctx.Err() != nil { // cancelled by shutdown: not an attempt
					err = nil
				}
				own = append(own, s.own(ev, err, job))
			}
		}
		if err := s.enqueueOwn(context.WithoutCancel(ctx), own); err != nil {
			return nil, fmt.Errorf("spool: hand %d events of a batch to deliveries of their own: %w", len(own), err)
		}
		return nil, nil
	}
}

// enqueueOwn enqueues the deliveries of their own that events leave a
// batch with. Their IDs are made from the batch's and the event's
// position, so when a batch is split after its delivery was lost, an event
// that had already left it (and may have completed since) is not
// delivered again: its ID is taken, and it is passed over.
func (s *subscriber) enqueueOwn(ctx context.Context, own []store.EnqueueParams) error {
	if len(own) == 0 {
		return nil
	}
	_, err := s.store.Enqueue(ctx, own)
	if !isIDTaken(err) {
		return err
	}
	for _, p := range own {
		if _, err := s.store.Enqueue(ctx, []store.EnqueueParams{p}); err != nil && !isIDTaken(err) {
			return err
		}
	}
	return nil
}

// isIDTaken reports whether err refuses an item whose ID a job has.
func isIDTaken(err error) bool {
	var ve *store.ValidationError
	return errors.As(err, &ve) && ve.Field == "id"
}

// ownID is the ID of the delivery of its own that the event at position
// leaves batch with: the batch's ID with its random part replaced by a
// hash of both.
func ownID(batch store.ID, position int64) store.ID {
	h := fnv.New64a()
	h.Write(batch[:])
	_ = binary.Write(h, binary.BigEndian, position)
	id := batch
	binary.BigEndian.PutUint64(id[8:], h.Sum64())
	id[8] = id[8]&0x3f | 0x80 // the UUID variant bits
	return id
}

// runEvent runs the handler of one event of a batch, turning a panic into
// a *PanicError and a missing handler into an error.
func (s *subscriber) runEvent(ctx context.Context, timeout time.Duration, ev *store.Event, job *Job) (err error) {
	f := s.lookup(ev.Kind)
	if f == nil {
		return fmt.Errorf("no handler registered for kind %q of subscription %s", ev.Kind, s.ref())
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return s.call(ctx, f, ev, job)
}

// call runs f on the event ev of delivery job, inside the event's process
// span when tracing is on (its parent is the publisher's span on the
// delivery's first attempt, linked after), turning a panic into a
// *PanicError.
func (s *subscriber) call(ctx context.Context, f eventFunc, ev *store.Event, job *Job) (err error) {
	var span trace.Span
	if tr := s.tracer.Get(); tr != nil {
		ctx, span = tracing.StartProcess(ctx, tr, tracing.Delivery{Dest: ev.Topic, Subscription: s.name, ID: ev.ID, Kind: ev.Kind,
			Tenant: ev.Tenant, Attempt: job.Attempts + 1, Delivery: job.Deliveries, First: job.Attempts == 0 && job.Deliveries <= 1,
			Creation: tracing.Extract(ctx, ev.Headers)})
	}
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: string(debug.Stack())}
		}
		endProcess(span, verdictName(err), err)
	}()
	return f(ctx, ev, job)
}

// verdictName names the verdict a handler's error asks for.
func verdictName(err error) string {
	var oe *outcomeError
	switch {
	case err == nil:
		return store.Complete.String()
	case errors.As(err, &oe):
		return oe.outcome.String()
	}
	return store.Fail.String()
}

// own is the delivery of its own that an event leaves a batch with. With
// err nil it starts afresh; otherwise its first attempt is recorded (with
// err in its history) and it runs again after the subscription's backoff,
// or as Snooze says. A Cancel or DeadLetter verdict runs the event once
// more on its own delivery, where the verdict is recorded.
func (s *subscriber) own(ev *store.Event, err error, batch *Job) store.EnqueueParams {
	payload, encErr := store.EncodeDelivery(ev)
	if encErr != nil { // it was decoded from JSON a moment ago
		panic(encErr)
	}
	p := store.EnqueueParams{ID: ownID(batch.ID, ev.Position), Queue: s.sub.Queue, Kind: ev.Kind, Payload: payload, Tenant: ev.Tenant,
		UniqueKey:   fmt.Sprintf("%s:%d", s.sub.Queue, ev.Position), // a second split of the batch adds nothing
		MaxAttempts: s.sub.MaxAttempts, MaxDeliveries: s.sub.MaxDeliveries}
	if err == nil {
		return p
	}
	var oe *outcomeError
	if errors.As(err, &oe) && oe.outcome == store.Snooze {
		p.Delay = oe.delay
		return p
	}
	ae := AttemptError{At: time.Now().UTC(), Attempt: 1, Message: errText(err)}
	var pe *PanicError
	if errors.As(err, &pe) {
		ae.Stack = pe.Stack
	}
	p.Errors = []AttemptError{ae}
	if p.MaxAttempts > 1 {
		p.Attempts = 1
	}
	if !errors.As(err, &oe) { // a failed attempt: retried after the backoff
		p.Delay = s.retry.RetryDelay(batch, 1, err)
	}
	return p
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

// Routing looks at up to routeBatch events per call and keeps about
// maxWaiting delivery jobs of a subscription waiting to be claimed, so
// that a subscription far behind (a replay) does not flood the jobs table;
// batches carry up to store.MaxBatchEvents events each.
const (
	routeBatch    = store.MaxRoute
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
		res, err := es.Route(ctx, store.RouteParams{Topic: s.topic, Name: s.name, Limit: routeBatch,
			MaxPending: maxWaiting, Spread: q.capacity})
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
