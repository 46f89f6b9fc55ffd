package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/sqlite"
)

const (
	spoolTopic     = "bench"
	spoolEventKind = "bench.event"
)

// spoolEventSettings is how both Spool event systems are configured: as
// `spool bench --mode events` runs them.
const spoolEventSettings = "one Worker on every subscription, SubscribeOptions Concurrency=workers, Prefetch=workers (as `spool bench --mode events`); " +
	"subscriptions created FromStart, otherwise default (unordered: the router packs up to 64 events into one batch delivery job); " +
	"batches as one Client.Publish call; other settings default (settle batch ≤500, delay 2ms)"

// spoolEventCompletion says how Spool's event acks are observed.
const spoolEventCompletion = "store Settle call returned for the delivery job (the verdict is committed), counting every event the delivery carried " +
	"(a batch delivery carries up to 64); counted by a wrapper around the store"

// spoolEventRun is what the two Spool event systems share: a client on the
// store for publishing, the topic's subscriptions, and a worker over a
// wrapper of the store that counts the events of each settled delivery.
type spoolEventRun struct {
	st      store.Store
	client  *spool.Client
	subs    []string
	workers int // per subscription
	worker  *spool.Worker
}

func (r *spoolEventRun) attach(ctx context.Context, st store.Store, subs []string, workers int) error {
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		return err
	}
	for _, name := range subs {
		if _, err := client.Subscriptions().Create(ctx, spool.SubscriptionParams{Topic: spoolTopic, Name: name, From: spool.FromStart}); err != nil {
			return fmt.Errorf("create subscription %s: %w", name, err)
		}
	}
	r.st, r.client, r.subs, r.workers = st, client, subs, workers
	return nil
}

func (r *spoolEventRun) publish(ctx context.Context, payloads [][]byte) error {
	items := make([]spool.EventItem, len(payloads))
	for i, p := range payloads {
		items[i] = spool.RawEvent(spoolEventKind, p, nil)
	}
	_, err := r.client.Publish(ctx, spoolTopic, items...)
	return err
}

func (r *spoolEventRun) start(ctx context.Context, w EventWork) error {
	if r.worker != nil {
		return errors.New("already started")
	}
	counter := &eventCountingStore{Store: r.st, completed: w.Completed}
	worker, err := spool.NewWorker(spool.WorkerConfig{Store: counter, Queues: map[string]spool.QueueConfig{}})
	if err != nil {
		return err
	}
	opts := &spool.SubscribeOptions{Concurrency: r.workers, Prefetch: r.workers}
	for _, name := range r.subs {
		spool.Subscribe(worker, spoolTopic, name, func(_ context.Context, e *spool.Event[json.RawMessage]) error {
			counter.handled(name, e.Delivery.ID)
			w.Started(name, e.Raw)
			return nil
		}, opts)
	}
	if err := worker.Start(ctx); err != nil {
		return err
	}
	r.worker = worker
	return nil
}

func (r *spoolEventRun) stop(ctx context.Context) error {
	if r.worker == nil {
		return nil
	}
	err := r.worker.Stop(ctx)
	r.worker = nil
	return err
}

// remaining counts, per subscription, the events not handled yet (routed
// or not) and those dead-lettered: every delivery not completed.
func (r *spoolEventRun) remaining(ctx context.Context) (map[string]int, error) {
	subs, err := r.client.Subscriptions().List(ctx, spoolTopic)
	if err != nil {
		return nil, err
	}
	rem := make(map[string]int, len(subs))
	for _, s := range subs {
		rem[s.Name] = int(s.Lag.Behind) + s.Lag.Dead
	}
	return rem, nil
}

// eventCountingStore passes everything through and reports, per
// subscription, the events of each delivery job whose completion a Settle
// call applied, once the store has committed it. A delivery job carries
// one event, or a batch of them; the handlers record which subscription
// each delivery belongs to and how many of its events they ran.
type eventCountingStore struct {
	store.Store
	completed  func(sub string, n int)
	deliveries sync.Map // store.ID of a delivery job -> *delivery
}

// delivery is what the handlers of one delivery job ran.
type delivery struct {
	sub    string
	events atomic.Int64
}

// handled records that the handler of subscription sub ran one event of
// the delivery job id.
func (c *eventCountingStore) handled(sub string, id store.ID) {
	v, _ := c.deliveries.LoadOrStore(id, &delivery{sub: sub})
	v.(*delivery).events.Add(1)
}

func (c *eventCountingStore) Settle(ctx context.Context, vs []store.Verdict) ([]error, error) {
	errs, err := c.Store.Settle(ctx, vs)
	if err != nil {
		return errs, err
	}
	for i, e := range errs {
		// A verdict the store refused (a lost lock) forgets the delivery
		// too: if it runs again, it counts afresh.
		v, ok := c.deliveries.LoadAndDelete(vs[i].ID)
		if !ok || e != nil || vs[i].Outcome != store.Complete {
			continue
		}
		d := v.(*delivery)
		if n := d.events.Load(); n > 0 {
			c.completed(d.sub, int(n))
		}
	}
	return errs, nil
}

// SpoolSQLiteEvents is Spool's events on its embedded SQLite store, a
// fresh file per workload in Dir, with the store's shipped durability (as
// SpoolSQLite).
type SpoolSQLiteEvents struct {
	// Dir is where the database files go. Default: the system's temp dir.
	Dir string
	// Source is what the Version column says, such as the working tree's
	// commit. Default: the module version from the build info.
	Source string

	dir   string // this workload's directory, removed by Close
	store *sqlite.Store
	run   spoolEventRun
}

func (s *SpoolSQLiteEvents) Name() string { return "Spool (SQLite)" }

func (s *SpoolSQLiteEvents) Info() Info {
	info := (&SpoolSQLite{Source: s.Source}).Info()
	info.Settings = spoolEventSettings
	info.Completion = spoolEventCompletion
	return info
}

func (s *SpoolSQLiteEvents) Probe(context.Context) error { return nil }

func (s *SpoolSQLiteEvents) Open(ctx context.Context, subscriptions []string, workersPerSubscription int) error {
	if s.store != nil {
		return errors.New("already open")
	}
	dir, err := os.MkdirTemp(s.Dir, "spool-bench-events-*")
	if err != nil {
		return err
	}
	st, err := sqlite.Open(filepath.Join(dir, "spool.db"), sqlite.Config{})
	if err != nil {
		return errors.Join(err, os.RemoveAll(dir))
	}
	if err := s.run.attach(ctx, st, subscriptions, workersPerSubscription); err != nil {
		return errors.Join(err, st.Close(), os.RemoveAll(dir))
	}
	s.dir, s.store = dir, st
	return nil
}

func (s *SpoolSQLiteEvents) Publish(ctx context.Context, payloads [][]byte) error {
	if s.store == nil {
		return notOpen(s.Name())
	}
	return s.run.publish(ctx, payloads)
}

func (s *SpoolSQLiteEvents) Start(ctx context.Context, w EventWork) error {
	if s.store == nil {
		return notOpen(s.Name())
	}
	return s.run.start(ctx, w)
}

func (s *SpoolSQLiteEvents) Stop(ctx context.Context) error { return s.run.stop(ctx) }

func (s *SpoolSQLiteEvents) Remaining(ctx context.Context) (map[string]int, error) {
	if s.store == nil {
		return nil, notOpen(s.Name())
	}
	return s.run.remaining(ctx)
}

func (s *SpoolSQLiteEvents) Close(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	err := errors.Join(s.run.stop(ctx), s.store.Close(), os.RemoveAll(s.dir))
	s.store, s.dir, s.run = nil, "", spoolEventRun{}
	return err
}

// SpoolPostgresEvents is Spool's events on its PostgreSQL store, in a
// fresh database per workload (as SpoolPostgres).
type SpoolPostgresEvents struct {
	// Source is what the Version column says, such as the working tree's
	// commit. Default: the module version from the build info.
	Source string

	pg *pgServer

	db    string // this workload's database, dropped by Close
	store *postgres.Store
	run   spoolEventRun
}

// NewSpoolPostgresEvents returns Spool's events on the PostgreSQL server
// that adminURL (a URL to an existing database, such as postgres) points
// to.
func NewSpoolPostgresEvents(adminURL string) *SpoolPostgresEvents {
	return &SpoolPostgresEvents{pg: &pgServer{adminURL: adminURL}}
}

func (s *SpoolPostgresEvents) Name() string { return "Spool (PostgreSQL)" }

func (s *SpoolPostgresEvents) Info() Info {
	info := (&SpoolPostgres{Source: s.Source, pg: s.pg}).Info()
	info.Settings = spoolEventSettings + "; pgxpool default size"
	info.Completion = spoolEventCompletion
	return info
}

func (s *SpoolPostgresEvents) Probe(ctx context.Context) error { return s.pg.probe(ctx) }

func (s *SpoolPostgresEvents) Open(ctx context.Context, subscriptions []string, workersPerSubscription int) error {
	if s.store != nil {
		return errors.New("already open")
	}
	name, url, err := s.pg.createDB(ctx, "spool_bench_events")
	if err != nil {
		return err
	}
	st, err := postgres.Open(ctx, url, postgres.Config{})
	if err != nil {
		return errors.Join(err, s.pg.dropDB(context.WithoutCancel(ctx), name))
	}
	if err := s.run.attach(ctx, st, subscriptions, workersPerSubscription); err != nil {
		return errors.Join(err, st.Close(), s.pg.dropDB(context.WithoutCancel(ctx), name))
	}
	s.db, s.store = name, st
	return nil
}

func (s *SpoolPostgresEvents) Publish(ctx context.Context, payloads [][]byte) error {
	if s.store == nil {
		return notOpen(s.Name())
	}
	return s.run.publish(ctx, payloads)
}

func (s *SpoolPostgresEvents) Start(ctx context.Context, w EventWork) error {
	if s.store == nil {
		return notOpen(s.Name())
	}
	return s.run.start(ctx, w)
}

func (s *SpoolPostgresEvents) Stop(ctx context.Context) error { return s.run.stop(ctx) }

func (s *SpoolPostgresEvents) Remaining(ctx context.Context) (map[string]int, error) {
	if s.store == nil {
		return nil, notOpen(s.Name())
	}
	return s.run.remaining(ctx)
}

func (s *SpoolPostgresEvents) Close(ctx context.Context) error {
	if s.store == nil {
		return nil
	}
	err := errors.Join(s.run.stop(ctx), s.store.Close(), s.pg.dropDB(ctx, s.db))
	s.store, s.db, s.run = nil, "", spoolEventRun{}
	return err
}
