package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

// EventsResult is what an events run measured.
type EventsResult struct {
	Mode          string  `json:"mode"`
	Events        int     `json:"events"`
	Subscriptions int     `json:"subscriptions"`
	Workers       int     `json:"workers"` // per subscription
	PublishSecond float64 `json:"publish_seconds,omitempty"`
	PublishPerSec float64 `json:"publish_per_sec,omitempty"`
	// Seconds is from worker start to the last durable completion of every
	// subscription.
	Seconds float64 `json:"seconds"`
	// PerSubscription is each subscription's delivered events/s: events
	// over the time from worker start to its own last durable completion.
	PerSubscription []float64 `json:"per_subscription_per_sec"`
	// Slowest and Mean summarise PerSubscription.
	Slowest   float64  `json:"slowest_per_sec"`
	Mean      float64  `json:"mean_per_sec"`
	Rate      int      `json:"rate,omitempty"`
	LatencyMS *Latency `json:"latency_ms,omitempty"` // publish → handler start, every delivery
}

// EventsConfig describes an events run. Zero fields take the defaults.
type EventsConfig struct {
	Store store.Store // required; must keep events
	// Events is how many events are published. Default 100,000.
	Events int
	// Subscriptions is how many subscriptions the topic has. Default 3.
	Subscriptions int
	// Workers is each subscription's concurrency. Default 100.
	Workers int
	// Rate and Duration shape the continuous run. Defaults 1,000/s and 10s.
	Rate     int
	Duration time.Duration
	// Warmup is Config.Warmup for the continuous run. Default 1s;
	// negative: none.
	Warmup time.Duration
	// Progress, if set, is called about ten times a second with the
	// deliveries completed so far and the total.
	Progress func(done, total int)
}

func (c *EventsConfig) defaults() (store.EventStore, error) {
	if c.Store == nil {
		return nil, &store.ValidationError{Field: "store", Reason: "is required"}
	}
	es := c.Store.Capabilities().Events
	if es == nil {
		return nil, spool.ErrEventsUnsupported
	}
	c.Events = cmp.Or(c.Events, 100_000)
	c.Subscriptions = cmp.Or(c.Subscriptions, 3)
	c.Workers = cmp.Or(c.Workers, 100)
	c.Rate = cmp.Or(c.Rate, 1_000)
	c.Duration = cmp.Or(c.Duration, 10*time.Second)
	c.Warmup = warmup(c.Warmup)
	if c.Events < 1 || c.Subscriptions < 1 || c.Workers < 1 || c.Workers > store.MaxClaim/2 || c.Rate < 1 || c.Duration <= 0 {
		return nil, &store.ValidationError{Field: "events", Reason: "events, subscriptions, rate and duration must be positive; workers 1..500"}
	}
	return es, nil
}

const benchTopic = "bench"

// handled counts the events a delivery job (one event's, or a batch's)
// carried to a subscription's handler.
type handled struct {
	sub int
	n   atomic.Int64
}

// deliveryCounter wraps a store and counts, per subscription, the
// completions each Settle call applied: a delivery counts once it is
// durable. Handlers tell it which subscription a delivery belongs to.
type deliveryCounter struct {
	store.Store
	subOf  sync.Map // store.ID of a delivery job -> *handled
	counts []atomic.Int64
	target int64
	mu     sync.Mutex // guards last
	last   []time.Time
	done   chan struct{}
	once   sync.Once
	total  atomic.Int64
}

func newDeliveryCounter(st store.Store, subs, target int) *deliveryCounter {
	return &deliveryCounter{Store: st, counts: make([]atomic.Int64, subs), last: make([]time.Time, subs),
		target: int64(target), done: make(chan struct{})}
}

func (c *deliveryCounter) Settle(ctx context.Context, vs []store.Verdict) ([]error, error) {
	errs, err := c.Store.Settle(ctx, vs)
	if err != nil {
		return errs, err
	}
	now := time.Now()
	for i, e := range errs {
		if e != nil || vs[i].Outcome != store.Complete {
			continue
		}
		v, ok := c.subOf.LoadAndDelete(vs[i].ID)
		if !ok {
			continue
		}
		d, _ := v.(*handled)
		n := d.n.Load()
		if c.counts[d.sub].Add(n) == c.target {
			c.mu.Lock()
			c.last[d.sub] = now
			c.mu.Unlock()
		}
		if c.total.Add(n) == c.target*int64(len(c.counts)) {
			c.once.Do(func() { close(c.done) })
		}
	}
	return errs, nil
}

func (c *deliveryCounter) wait(ctx context.Context, progress func(done, total int)) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	all := int(c.target) * len(c.counts)
	for {
		select {
		case <-c.done:
			if progress != nil {
				progress(all, all)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if progress != nil {
				progress(int(c.total.Load()), all)
			}
		}
	}
}

// eventsWorker starts a worker on every subscription of the bench topic,
// calling onEvent from each handler.
func eventsWorker(ctx context.Context, dc *deliveryCounter, cfg EventsConfig, names []string,
	onEvent func(sub int, e *spool.Event[json.RawMessage])) (*spool.Worker, error) {
	w, err := spool.NewWorker(spool.WorkerConfig{Store: dc, Queues: map[string]spool.QueueConfig{}})
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		spool.Subscribe(w, benchTopic, name, func(_ context.Context, e *spool.Event[json.RawMessage]) error {
			v, _ := dc.subOf.LoadOrStore(e.Delivery.ID, &handled{sub: i})
			h, _ := v.(*handled)
			h.n.Add(1)
			if onEvent != nil {
				onEvent(i, e)
			}
			return nil
		}, &spool.SubscribeOptions{Concurrency: cfg.Workers, Prefetch: cfg.Workers})
	}
	return w, w.Start(ctx)
}

func createSubscriptions(ctx context.Context, es store.EventStore, n int, prefix string) ([]string, error) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d", prefix, i+1)
		if _, _, err := es.CreateSubscription(ctx, store.SubscriptionParams{Topic: benchTopic, Name: names[i],
			From: store.StartAt{From: store.StartBegin}}); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// publishAll publishes n small events in calls of 1000 and returns how long it took.
func publishAll(ctx context.Context, es store.EventStore, n int) (time.Duration, error) {
	start := time.Now()
	const batch = 1000
	evs := make([]store.EventInput, 0, batch)
	for done := 0; done < n; {
		evs = evs[:0]
		for ; len(evs) < batch && done < n; done++ {
			evs = append(evs, store.EventInput{Kind: "bench.event", Payload: []byte(fmt.Sprintf(`{"n":%d}`, done))})
		}
		if _, err := es.Publish(ctx, benchTopic, evs); err != nil {
			return 0, fmt.Errorf("bench: publish: %w", err)
		}
	}
	return time.Since(start), nil
}

func (r *EventsResult) summarise(start time.Time, last []time.Time) {
	end := start
	for _, t := range last {
		rate := float64(r.Events) / t.Sub(start).Seconds()
		r.PerSubscription = append(r.PerSubscription, rate)
		r.Mean += rate / float64(len(last))
		if t.After(end) {
			end = t
		}
	}
	r.Slowest = slices.Min(r.PerSubscription)
	r.Seconds = end.Sub(start).Seconds()
}

// EventsBurnDown publishes cfg.Events events to a topic with
// cfg.Subscriptions subscriptions, then starts a worker on all of them and
// reports each subscription's delivered events/s.
func EventsBurnDown(ctx context.Context, cfg EventsConfig) (*EventsResult, error) {
	return burnDown(ctx, cfg, "events", 0, true)
}

// Replay publishes cfg.Events events to a topic with no subscription, then
// creates one that starts at the beginning and reports how fast it catches
// up: events/s from worker start to its last durable completion.
func Replay(ctx context.Context, cfg EventsConfig) (*EventsResult, error) {
	return burnDown(ctx, cfg, "replay", 1, false)
}

// burnDown publishes cfg.Events events, with subs subscriptions (0:
// cfg.Subscriptions) created before (subscribeFirst) or after, then works
// them all.
func burnDown(ctx context.Context, cfg EventsConfig, mode string, subs int, subscribeFirst bool) (*EventsResult, error) {
	es, err := cfg.defaults()
	if err != nil {
		return nil, err
	}
	subs = cmp.Or(subs, cfg.Subscriptions)
	var names []string
	if subscribeFirst {
		if names, err = createSubscriptions(ctx, es, subs, "s"); err != nil {
			return nil, err
		}
	}
	took, err := publishAll(ctx, es, cfg.Events)
	if err != nil {
		return nil, err
	}
	if !subscribeFirst {
		if names, err = createSubscriptions(ctx, es, subs, "rebuild"); err != nil {
			return nil, err
		}
	}
	dc := newDeliveryCounter(cfg.Store, subs, cfg.Events)
	start := time.Now()
	w, err := eventsWorker(ctx, dc, cfg, names, nil)
	if err != nil {
		return nil, err
	}
	err = dc.wait(ctx, cfg.Progress)
	stopErr := stop(ctx, w)
	if err != nil {
		return nil, err
	}
	r := &EventsResult{Mode: mode, Events: cfg.Events, Subscriptions: subs, Workers: cfg.Workers,
		PublishSecond: took.Seconds(), PublishPerSec: float64(cfg.Events) / took.Seconds()}
	r.summarise(start, dc.last)
	return r, stopErr
}

// EventsContinuous publishes cfg.Rate events/s for cfg.Duration, one
// Publish call per event from 16 producers, while a worker handles every
// subscription, and reports the publish → handler start latency of every
// delivery.
func EventsContinuous(ctx context.Context, cfg EventsConfig) (*EventsResult, error) {
	es, err := cfg.defaults()
	if err != nil {
		return nil, err
	}
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	if total < 1 {
		return nil, &store.ValidationError{Field: "rate", Reason: "rate × duration is less than one event"}
	}
	warm := int(float64(cfg.Rate) * cfg.Warmup.Seconds())
	names, err := createSubscriptions(ctx, es, cfg.Subscriptions, "s")
	if err != nil {
		return nil, err
	}
	dc := newDeliveryCounter(cfg.Store, cfg.Subscriptions, warm+total)
	lat := newLatencies(warm, total*cfg.Subscriptions)
	w, err := eventsWorker(ctx, dc, cfg, names, func(_ int, e *spool.Event[json.RawMessage]) { lat.record(e.Raw) })
	if err != nil {
		return nil, err
	}
	// Payloads are stamps (16 bytes, not JSON: stored as is).
	err = pace(ctx, cfg.Rate, warm+total, func(ctx context.Context, n int) error {
		_, err := es.Publish(ctx, benchTopic, []store.EventInput{{Kind: "bench.event", Payload: lat.stamp(n)}})
		return err
	})
	if err != nil {
		err = fmt.Errorf("bench: publish: %w", err)
	} else {
		err = dc.wait(ctx, cfg.Progress)
	}
	stopErr := stop(ctx, w)
	if err != nil {
		return nil, err
	}
	r := &EventsResult{Mode: "events-continuous", Events: total, Subscriptions: cfg.Subscriptions, Workers: cfg.Workers, Rate: cfg.Rate,
		LatencyMS: lat.summary()}
	r.summarise(lat.start, dc.last)
	return r, stopErr
}
