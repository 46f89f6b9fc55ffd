package peers

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The events workloads: publish/subscribe with durable subscriptions.
//
//   - event burn-down: Config.Events events are published in batches of
//     Config.Batch to a topic with Config.Subscriptions durable
//     subscriptions (the publish rate is measured), then the consumers
//     start, Config.Workers per subscription; each subscription's rate is
//     Events over the time from the consumers' start to that
//     subscription's last durable ack. The slowest subscription and the
//     mean of all are reported.
//   - event continuous: Config.Rate events/s for Config.Duration, published
//     one per call from Config.Producers goroutines while the consumers run;
//     the publish→handler-start latency of every (event, subscription)
//     delivery.
//
// Every event carries the same payload as a job (payload.go).

// EventSystem is one event system under test: a topic (or stream) with
// durable subscriptions, each delivering every event to its own workers.
// For each workload the harness calls Open, then Publish and Start/Stop as
// the workload needs, then Remaining, then Close. An EventSystem is used by
// one workload at a time, but its Publish may be called concurrently.
type EventSystem interface {
	// Name is the row's label, such as "NATS JetStream (sync always)".
	Name() string
	// Info says what the row's numbers mean.
	Info() Info
	// Probe checks that the system's server answers, or can be started. It
	// returns an error matching ErrUnreachable when it does not.
	Probe(ctx context.Context) error
	// Open prepares a fresh, empty instance: a topic with one durable
	// subscription per name in subscriptions, each of which will run up to
	// workersPerSubscription handlers at once.
	Open(ctx context.Context, subscriptions []string, workersPerSubscription int) error
	// Publish publishes one event per payload in one call of the system's
	// API: its single-event call for one payload, its batch call for more.
	// When it returns nil the system has acknowledged every event, as
	// durably as it allows (Info.Durability says how).
	Publish(ctx context.Context, payloads [][]byte) error
	// Start starts every subscription's workers, running a no-op handler
	// that reports to w, and returns once they run.
	Start(ctx context.Context, w EventWork) error
	// Stop stops the workers started by Start, waiting for them.
	Stop(ctx context.Context) error
	// Remaining counts, per subscription, the deliveries not yet
	// acknowledged: events not delivered yet and deliveries not acked.
	Remaining(ctx context.Context) (map[string]int, error)
	// Close releases the instance and deletes what Open made.
	Close(ctx context.Context) error
}

// EventWork is what an event system's workers report to the harness.
type EventWork struct {
	// Started is called by the handler of subscription sub as it begins
	// an event, with the payload as the system delivered it.
	Started func(sub string, payload []byte)
	// Completed is called when n more of subscription sub's acks became
	// durable, as far as the system lets the harness observe it
	// (Info.Completion says how). It may be called concurrently.
	Completed func(sub string, n int)
}

// EventOptions is what the event systems of the registry are made with.
type EventOptions struct {
	// Dir is where embedded servers and Spool's SQLite store keep their
	// stores: a fresh directory under it per workload. Default: the
	// system's temp dir.
	Dir string
	// PostgresURL and Source are for Spool's adapters: the PostgreSQL
	// database to create databases from and the commit of the Spool source
	// benchmarked.
	PostgresURL string
	Source      string
}

// eventSystems is the registry of event systems, in run order: the key the
// command's -only accepts and how to make the system. Spool's come first,
// as its job systems do.
var eventSystems = []struct {
	key  string
	make func(EventOptions) EventSystem
}{
	{"spool-sqlite-events", func(o EventOptions) EventSystem { return &SpoolSQLiteEvents{Dir: o.Dir, Source: o.Source} }},
	{"spool-postgres-events", func(o EventOptions) EventSystem {
		s := NewSpoolPostgresEvents(o.PostgresURL)
		s.Source = o.Source
		return s
	}},
	{"nats-embedded", func(o EventOptions) EventSystem { return &EmbeddedJetStream{Dir: o.Dir} }},
	{"nats-embedded-sync-always", func(o EventOptions) EventSystem { return &EmbeddedJetStream{Dir: o.Dir, SyncAlways: true} }},
}

// EventSystemKeys returns the keys of the event systems, in run order.
func EventSystemKeys() []string {
	keys := make([]string, len(eventSystems))
	for i, e := range eventSystems {
		keys[i] = e.key
	}
	return keys
}

// NewEventSystem returns the event system registered under key, or false.
func NewEventSystem(key string, o EventOptions) (EventSystem, bool) {
	for _, e := range eventSystems {
		if e.key == key {
			return e.make(o), true
		}
	}
	return nil, false
}

// EventRow is one event system's results.
type EventRow struct {
	System string `json:"system"`
	Info
	// Skipped says why the system was not run; the measures are then nil.
	Skipped string `json:"skipped,omitempty"`
	// Load is the machine's load average when the system's first workload
	// started.
	Load string `json:"load,omitempty"`
	// Publish is the first half of the event burn-down: the events going
	// in, in batches.
	Publish    *EventMeasure    `json:"publish,omitempty"`
	BurnDown   *EventBurnDown   `json:"burn_down,omitempty"`
	Continuous *EventContinuous `json:"continuous,omitempty"`
}

// EventMeasure is a count of events over a time: the events published, or
// the events one subscription delivered.
type EventMeasure struct {
	// Subscription names the subscription (empty for the publish measure).
	Subscription string `json:"subscription,omitempty"`
	// Events is how many events were asked for.
	Events int `json:"events"`
	// Done is how many were published, or acked (durably) by the
	// subscription.
	Done         int     `json:"done"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	Note         string  `json:"note,omitempty"`
	// Failure says why the measure is not complete; the number then covers
	// only the events that were.
	Failure string `json:"failure,omitempty"`
}

// OK reports whether the measure completed as asked.
func (m *EventMeasure) OK() bool { return m != nil && m.Failure == "" }

// EventBurnDown is the event burn-down's result: every subscription's
// delivery rate, timed from the consumers' start.
type EventBurnDown struct {
	Events        int            `json:"events"`
	Subscriptions []EventMeasure `json:"subscriptions"`
	// Slowest is the lowest of the subscriptions' events/s; Mean their mean.
	Slowest float64 `json:"slowest_events_per_sec"`
	Mean    float64 `json:"mean_events_per_sec"`
	// Failure gathers what went wrong, with the subscription it concerns.
	Failure string `json:"failure,omitempty"`
	Note    string `json:"note,omitempty"`
}

// OK reports whether every subscription delivered every event.
func (m *EventBurnDown) OK() bool { return m != nil && m.Failure == "" }

// EventContinuous is the event continuous workload's result.
type EventContinuous struct {
	// Events is how many events were asked for (rate × duration);
	// Published how many were published, at PublishRate events/s.
	Events      int     `json:"events"`
	Published   int     `json:"published"`
	PublishRate float64 `json:"publish_rate"`
	// Deliveries is how many (event, subscription) deliveries were acked
	// durably, over Seconds from the consumers' start to the last one.
	Deliveries       int     `json:"deliveries"`
	Seconds          float64 `json:"seconds"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	// LatencyMS is the publish→handler-start latency over every delivery
	// to every subscription.
	LatencyMS *Latency `json:"latency_ms,omitempty"`
	Note      string   `json:"note,omitempty"`
	Failure   string   `json:"failure,omitempty"`
}

// OK reports whether the workload completed as asked.
func (m *EventContinuous) OK() bool { return m != nil && m.Failure == "" }

// RunEvents runs the events workloads on each event system in turn, as Run
// does the job workloads. It returns an error only for a bad cfg.
func RunEvents(ctx context.Context, cfg Config, systems []EventSystem) ([]EventRow, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	rows := make([]EventRow, 0, len(systems))
	for _, sys := range systems {
		rows = append(rows, runEventSystem(ctx, cfg, sys))
	}
	return rows, nil
}

func runEventSystem(ctx context.Context, cfg Config, sys EventSystem) EventRow {
	row := EventRow{System: sys.Name()}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := sys.Probe(pctx)
	cancel()
	row.Info = sys.Info()
	if err != nil {
		row.Skipped = err.Error()
		fmt.Fprintf(cfg.Log, "SKIPPED %s: %v\n", row.System, err)
		return row
	}
	row.Load = LoadAverage()
	fmt.Fprintf(cfg.Log, "== events: %s %s (%s); load average %s\n", row.System, row.Version, row.Durability, row.Load)
	row.Publish, row.BurnDown = eventBurnDown(ctx, cfg, sys)
	row.Continuous = eventContinuous(ctx, cfg, sys)
	row.Info = sys.Info()
	for _, f := range []struct{ name, failure string }{
		{"publish", row.Publish.Failure}, {"event burn-down", row.BurnDown.Failure}, {"event continuous", row.Continuous.Failure},
	} {
		if f.failure != "" {
			fmt.Fprintf(cfg.Log, "FAILED %s %s: %s\n", row.System, f.name, f.failure)
		}
	}
	return row
}

// subscriptionNames returns the names of n subscriptions.
func subscriptionNames(n int) []string {
	subs := make([]string, n)
	for i := range subs {
		subs[i] = fmt.Sprintf("sub-%d", i+1)
	}
	return subs
}

// eventTrackers is one tracker per subscription.
type eventTrackers struct {
	subs []string
	by   map[string]*tracker
}

func newEventTrackers(subs []string, base time.Time, capLat int) *eventTrackers {
	ts := &eventTrackers{subs: subs, by: make(map[string]*tracker, len(subs))}
	for _, s := range subs {
		ts.by[s] = newTracker(base, capLat)
	}
	return ts
}

// work routes each report to its subscription's tracker; a report for a
// subscription the harness did not open goes nowhere, and is caught by the
// counts not adding up.
func (ts *eventTrackers) work() EventWork {
	return EventWork{
		Started: func(sub string, payload []byte) {
			if t := ts.by[sub]; t != nil {
				t.onStart(payload)
			}
		},
		Completed: func(sub string, n int) {
			if t := ts.by[sub]; t != nil {
				t.onComplete(n)
			}
		},
	}
}

func (ts *eventTrackers) setTarget(n int64) {
	for _, t := range ts.by {
		t.setTarget(n)
	}
}

func (ts *eventTrackers) progress() string {
	var b strings.Builder
	for i, s := range ts.subs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", s, ts.by[s].completed.Load())
	}
	return b.String()
}

// wait waits until every subscription has reached its target, limit passes
// or ctx ends, calling progress every 5s.
func (ts *eventTrackers) wait(ctx context.Context, limit time.Duration, progress func()) error {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for _, s := range ts.subs {
		done := ts.by[s].done
	waiting:
		for {
			select {
			case <-done:
				break waiting
			case <-timer.C:
				return fmt.Errorf("timed out after %v", limit)
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
				progress()
			}
		}
	}
	return nil
}

// eventBurnDown publishes cfg.Events events in batches of cfg.Batch, then
// starts the consumers and times each subscription's deliveries.
func eventBurnDown(ctx context.Context, cfg Config, sys EventSystem) (pub *EventMeasure, bd *EventBurnDown) {
	pub = &EventMeasure{Events: cfg.Events}
	bd = &EventBurnDown{Events: cfg.Events}
	subs := subscriptionNames(cfg.Subscriptions)
	if err := sys.Open(ctx, subs, cfg.Workers); err != nil {
		pub.Failure = fmt.Sprintf("open: %v", err)
		bd.Failure = pub.Failure
		return pub, bd
	}
	defer closeEventSystem(ctx, cfg, sys)

	base := time.Now()
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	start := time.Now()
	n := 0
	var pubErr error
	for n < cfg.Events && pubErr == nil {
		batch := make([][]byte, min(cfg.Batch, cfg.Events-n))
		for i := range batch {
			batch[i] = encodePayload(int64(n+i), int64(time.Since(base)))
		}
		if pubErr = sys.Publish(pctx, batch); pubErr == nil {
			n += len(batch)
		}
	}
	cancel()
	pub.Done = n
	pub.Seconds = time.Since(start).Seconds()
	pub.EventsPerSec = float64(n) / pub.Seconds
	if pubErr != nil {
		pub.Failure = fmt.Sprintf("published %d of %d: %v", n, cfg.Events, pubErr)
		bd.Failure = "publish failed"
		return pub, bd
	}
	fmt.Fprintf(cfg.Log, "   publish: %d events in %.2fs, %.0f events/s\n", n, pub.Seconds, pub.EventsPerSec)

	ts := newEventTrackers(subs, base, 0)
	ts.setTarget(int64(cfg.Events))
	start = time.Now()
	if err := sys.Start(ctx, ts.work()); err != nil {
		bd.Failure = fmt.Sprintf("start: %v", err)
		return pub, bd
	}
	waitErr := ts.wait(ctx, cfg.Timeout, func() {
		fmt.Fprintf(cfg.Log, "   event burn-down: %s of %d\n", ts.progress(), cfg.Events)
	})
	per, problems := finishEvents(ctx, sys, ts, start, waitErr)
	bd.Subscriptions = per
	for i, m := range per {
		if i == 0 || m.EventsPerSec < bd.Slowest {
			bd.Slowest = m.EventsPerSec
		}
		bd.Mean += m.EventsPerSec / float64(len(per))
		if m.Failure != "" {
			problems = append(problems, m.Subscription+": "+m.Failure)
		}
		if m.Note != "" {
			bd.Note = joinNotes(bd.Note, m.Subscription+": "+m.Note)
		}
	}
	if len(problems) > 0 {
		bd.Failure = joinProblems(problems)
	}
	for _, m := range per {
		fmt.Fprintf(cfg.Log, "   event burn-down: %s: %d events in %.2fs, %.0f events/s\n", m.Subscription, m.Done, m.Seconds, m.EventsPerSec)
	}
	fmt.Fprintf(cfg.Log, "   event burn-down: slowest %.0f, mean %.0f events/s per subscription\n", bd.Slowest, bd.Mean)
	return pub, bd
}

// eventContinuous publishes cfg.Rate events/s for cfg.Duration, one per
// call, while every subscription's consumers run.
func eventContinuous(ctx context.Context, cfg Config, sys EventSystem) *EventContinuous {
	total := int(float64(cfg.Rate) * cfg.Duration.Seconds())
	m := &EventContinuous{Events: total}
	subs := subscriptionNames(cfg.Subscriptions)
	if err := sys.Open(ctx, subs, cfg.Workers); err != nil {
		m.Failure = fmt.Sprintf("open: %v", err)
		return m
	}
	defer closeEventSystem(ctx, cfg, sys)

	base := time.Now()
	ts := newEventTrackers(subs, base, total)
	if err := sys.Start(ctx, ts.work()); err != nil {
		m.Failure = fmt.Sprintf("start: %v", err)
		return m
	}
	start := time.Now()
	sent, produceFor, pubErr := produce(ctx, cfg, sys.Publish, base, total)
	ts.setTarget(int64(sent))
	m.Published = sent
	m.PublishRate = float64(sent) / produceFor.Seconds()
	var waitErr error
	if pubErr == nil {
		waitErr = ts.wait(ctx, cfg.Drain, func() {
			fmt.Fprintf(cfg.Log, "   event continuous: draining, %s of %d\n", ts.progress(), sent)
		})
	}
	per, problems := finishEvents(ctx, sys, ts, start, waitErr)
	var last time.Time
	var lat []time.Duration
	for _, s := range subs {
		t := ts.by[s]
		if l := t.lastAt(); l.After(last) {
			last = l
		}
		lat = append(lat, t.latencies()...)
	}
	for _, p := range per {
		m.Deliveries += p.Done
		if p.Failure != "" {
			problems = append(problems, p.Subscription+": "+p.Failure)
		}
		if p.Note != "" {
			m.Note = joinNotes(m.Note, p.Subscription+": "+p.Note)
		}
	}
	if last.IsZero() {
		last = time.Now()
	}
	m.Seconds = last.Sub(start).Seconds()
	if m.Seconds > 0 {
		m.DeliveriesPerSec = float64(m.Deliveries) / m.Seconds
	}
	if pubErr != nil {
		problems = append(problems, fmt.Sprintf("publish: %v", pubErr))
	}
	if len(problems) > 0 {
		m.Failure = joinProblems(problems)
	}
	if sent < total {
		m.Note = joinNotes(m.Note, fmt.Sprintf("published %s of %s events in %v: %s events/s of the %s asked", number(float64(sent), 0), number(float64(total), 0),
			cfg.Duration, number(m.PublishRate, 0), number(float64(cfg.Rate), 0)))
	}
	m.LatencyMS = summarize(lat)
	fmt.Fprintf(cfg.Log, "   event continuous: %d events, %d deliveries, %.0f deliveries/s, publish→start p50 %.2f p95 %.2f p99 %.2f ms\n",
		m.Published, m.Deliveries, m.DeliveriesPerSec, m.LatencyMS.P50, m.LatencyMS.P95, m.LatencyMS.P99)
	return m
}

// finishEvents stops the workers and returns each subscription's measure,
// checking that every event was started and acked by every subscription
// and that the system holds no delivery unacked. problems are those that
// concern no single subscription.
func finishEvents(ctx context.Context, sys EventSystem, ts *eventTrackers, start time.Time, waitErr error) (per []EventMeasure, problems []string) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := sys.Stop(sctx); err != nil {
		problems = append(problems, fmt.Sprintf("stop: %v", err))
	}
	rem, remErr := sys.Remaining(sctx)
	if remErr != nil {
		problems = append(problems, fmt.Sprintf("count remaining: %v", remErr))
	}
	for _, s := range ts.subs {
		t := ts.by[s]
		done, target := t.completed.Load(), t.target.Load()
		m := EventMeasure{Subscription: s, Events: int(target), Done: int(done)}
		last := t.lastAt()
		if last.IsZero() {
			last = time.Now()
		}
		m.Seconds = last.Sub(start).Seconds()
		if m.Seconds > 0 {
			m.EventsPerSec = float64(done) / m.Seconds
		}
		var p []string
		if waitErr != nil && done < target {
			p = append(p, fmt.Sprintf("incomplete: %s of %s acked (%v)", number(float64(done), 0), number(float64(target), 0), waitErr))
		}
		if started := t.started.Load(); started < target && waitErr == nil {
			p = append(p, fmt.Sprintf("only %d of %d events started", started, target))
		}
		if done > target {
			m.Note = fmt.Sprintf("%d acks for %d events", done, target)
		}
		if n, ok := rem[s]; remErr == nil && !ok {
			p = append(p, "no count of remaining deliveries")
		} else if n != 0 && waitErr == nil {
			p = append(p, fmt.Sprintf("%d deliveries left unacked in the system", n))
		}
		if len(p) > 0 {
			m.Failure = joinProblems(p)
		}
		per = append(per, m)
	}
	if waitErr != nil && !hasFailure(per) {
		problems = append(problems, waitErr.Error())
	}
	return per, problems
}

func hasFailure(ms []EventMeasure) bool {
	for _, m := range ms {
		if m.Failure != "" {
			return true
		}
	}
	return false
}

func joinNotes(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func closeEventSystem(ctx context.Context, cfg Config, sys EventSystem) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := sys.Close(cctx); err != nil {
		fmt.Fprintf(cfg.Log, "   %s: close: %v\n", sys.Name(), err)
	}
}
