package spool_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// openLiveStore opens a SQLite store on the real clock (retries come due),
// closed when the test ends.
func openLiveStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

type orderPlaced struct {
	Order string `json:"order"`
	Total int    `json:"total"`
}

var orderPlacedKind = spool.NewKind[orderPlaced]("order.placed")

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counter counts handled events by ID, safely.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[id]++
}

func (c *counter) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, v := range c.n {
		t += v
	}
	return t
}

func TestSubscribersAreIndependent(t *testing.T) {
	st := openLiveStore(t, filepath.Join(t.TempDir(), "spool.db"))
	c := newClient(t, st)
	ctx := t.Context()
	for _, p := range []spool.SubscriptionParams{
		{Topic: "orders", Name: "mail", RetryBase: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond, MaxAttempts: 10},
		{Topic: "orders", Name: "projection"},
		{Topic: "orders", Name: "analytics", Kinds: []string{"order.placed"}},
	} {
		if _, err := c.Subscriptions().Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	var mail, projection, analytics counter
	var mailFailures counter
	w := startWorker(t, spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{}}, func(w *spool.Worker) {
		spool.Subscribe(w, "orders", "mail", func(_ context.Context, e *spool.Event[orderPlaced]) error {
			mailFailures.add(e.ID) // every call
			if e.Delivery.Attempts < 3 {
				return errors.New("smtp down")
			}
			mail.add(e.ID)
			return nil
		}, nil)
		spool.Subscribe(w, "orders", "projection", func(_ context.Context, e *spool.Event[json.RawMessage]) error {
			projection.add(e.ID)
			return nil
		}, &spool.SubscribeOptions{Concurrency: 4})
		spool.SubscribeKind(w, "orders", "analytics", orderPlacedKind, func(_ context.Context, e *spool.Event[orderPlaced]) error {
			if e.Payload.Order == "" || e.Kind != "order.placed" || e.Topic != "orders" || e.Position == 0 {
				t.Errorf("analytics got %+v", e)
			}
			analytics.add(e.ID)
			return nil
		}, nil)
	})
	_ = w
	for i := range 20 {
		if _, err := c.Publish(ctx, "orders", orderPlacedKind.Event(orderPlaced{Order: fmt.Sprint("o", i), Total: i}, &spool.EventOptions{Key: fmt.Sprint("o", i)})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Publish(ctx, "orders", spool.RawEvent("order.viewed", []byte(`{}`), nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the projection and analytics", func() bool { return projection.distinct() == 21 && analytics.distinct() == 20 })
	waitFor(t, "mail after its failures", func() bool { return mail.distinct() == 21 })
	// The mail handler ran each event 4 times (3 failures, then success);
	// the others once each.
	if projection.total() != 21 || analytics.total() != 20 {
		t.Errorf("projection ran %d times, analytics %d; want 21 and 20 (once per event)", projection.total(), analytics.total())
	}
	if mail.total() != 21 || mailFailures.total() != 84 {
		t.Errorf("mail succeeded %d times after %d calls; want 21 after 84", mail.total(), mailFailures.total())
	}
	waitFor(t, "the lag to drain", func() bool {
		subs, err := c.Subscriptions().List(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			if s.Lag.Behind != 0 {
				return false
			}
		}
		return true
	})
}

func TestOrderedSubscriptionAcrossWorkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	st := openLiveStore(t, path)
	c := newClient(t, st)
	ctx := t.Context()
	if _, err := c.Subscriptions().Create(ctx, spool.SubscriptionParams{Topic: "accounts", Name: "ledger", Ordered: true}); err != nil {
		t.Fatal(err)
	}
	const keys, per = 4, 12
	var mu sync.Mutex
	running := map[string]bool{}
	last := map[string]int64{}
	handled := 0
	handler := func(_ context.Context, e *spool.Event[json.RawMessage]) error {
		mu.Lock()
		if running[e.Key] {
			t.Errorf("two events of key %s run at once", e.Key)
		}
		if e.Version != last[e.Key]+1 {
			t.Errorf("key %s: version %d after %d", e.Key, e.Version, last[e.Key])
		}
		running[e.Key] = true
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		running[e.Key] = false
		last[e.Key] = e.Version
		handled++
		mu.Unlock()
		return nil
	}
	// Two workers on two handles of one file, as two processes would be.
	for _, s := range []*sqlite.Store{st, openLiveStore(t, path)} {
		startWorker(t, spool.WorkerConfig{Store: s, Queues: map[string]spool.QueueConfig{}}, func(w *spool.Worker) {
			spool.Subscribe(w, "accounts", "ledger", handler, &spool.SubscribeOptions{Concurrency: 8})
		})
	}
	for i := range per {
		var evs []spool.EventItem
		for k := range keys {
			evs = append(evs, spool.RawEvent("entry", []byte(fmt.Sprint(i)), &spool.EventOptions{Key: fmt.Sprint("acct", k)}))
		}
		if _, err := c.Publish(ctx, "accounts", evs...); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every entry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled == keys*per
	})
}

func TestInboxMakesRedeliveryANoOp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	st := openLiveStore(t, path)
	c := newClient(t, st)
	ctx := t.Context()
	db, err := sql.Open("sqlite", sqlite.DSN(path, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE totals (order_id TEXT PRIMARY KEY, total INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscriptions().Create(ctx, spool.SubscriptionParams{Topic: "orders", Name: "totals", RetryBase: 10 * time.Millisecond, RetryMax: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var calls, skipped counter
	startWorker(t, spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{}}, func(w *spool.Worker) {
		spool.Subscribe(w, "orders", "totals", func(ctx context.Context, e *spool.Event[orderPlaced]) error {
			calls.add(e.ID)
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
			first, err := e.MarkSeen(ctx, tx)
			if err != nil {
				return err
			}
			if !first {
				skipped.add(e.ID)
				return nil
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO totals VALUES (?, ?)
				ON CONFLICT (order_id) DO UPDATE SET total = total + excluded.total`, e.Payload.Order, e.Payload.Total); err != nil {
				return err
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			if e.Delivery.Attempts == 0 {
				// The write committed, then the acknowledgement was lost:
				// the event comes again.
				return errors.New("lost after commit")
			}
			return nil
		}, nil)
	})
	if _, err := c.Publish(ctx, "orders", orderPlacedKind.Event(orderPlaced{Order: "o1", Total: 5}, nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the redelivery", func() bool { return skipped.total() == 1 })
	var total int
	if err := db.QueryRow(`SELECT total FROM totals WHERE order_id = 'o1'`).Scan(&total); err != nil || total != 5 {
		t.Fatalf("total = %d, %v; want 5 (counted once)", total, err)
	}
	if calls.total() != 2 {
		t.Errorf("handler called %d times, want 2", calls.total())
	}
}

func TestSubscribeNeedsTheSubscription(t *testing.T) {
	st := openLiveStore(t, filepath.Join(t.TempDir(), "spool.db"))
	w, err := spool.NewWorker(spool.WorkerConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	spool.Subscribe(w, "orders", "mail", func(context.Context, *spool.Event[json.RawMessage]) error { return nil }, nil)
	err = w.Start(t.Context())
	if !errors.Is(err, spool.ErrNotFound) {
		_ = w.Stop(t.Context())
		t.Fatalf("Start without the subscription: %v, want ErrNotFound", err)
	}
}

func TestPublishTxRollsBackWithTheCaller(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.db")
	st := openLiveStore(t, path)
	c := newClient(t, st)
	ctx := t.Context()
	db, err := sql.Open("sqlite", sqlite.DSN(path, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishTx(ctx, tx, "orders", orderPlacedKind.Event(orderPlaced{Order: "x"}, &spool.EventOptions{ID: "e1"})); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetEvent(ctx, "orders", "e1"); !errors.Is(err, spool.ErrNotFound) {
		t.Fatalf("rolled-back event: %v", err)
	}
	if _, err := c.Publish(ctx, "orders", spool.RawEvent("bad kind", nil, nil)); !errors.Is(err, spool.ErrInvalid) {
		t.Fatalf("bad kind: %v", err)
	}
	if _, err := newClient(t, plainStore{st}).Publish(ctx, "orders", spool.RawEvent("k", nil, nil)); !errors.Is(err, spool.ErrEventsUnsupported) {
		t.Fatalf("a store without events: %v", err)
	}
}

func TestRequestWaitsForTheReply(t *testing.T) {
	st := openLiveStore(t, filepath.Join(t.TempDir(), "spool.db"))
	c := newClient(t, st)
	quote := spool.NewKind[orderPlaced]("quote")
	startWorker(t, spool.WorkerConfig{Store: st}, func(w *spool.Worker) {
		spool.Handle(w, quote, func(_ context.Context, task *spool.Task[orderPlaced]) error {
			if task.Payload.Total < 0 {
				return spool.DeadLetter(errors.New("negative total"))
			}
			return task.SetResult(map[string]int{"price": task.Payload.Total * 2})
		}, nil)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	job, err := c.Request(ctx, quote.Item(orderPlaced{Total: 21}, nil))
	if err != nil {
		t.Fatal(err)
	}
	reply, err := spool.DecodeResult[map[string]int](job)
	if err != nil || reply["price"] != 42 {
		t.Fatalf("reply = %v, %v", reply, err)
	}
	job, err = c.Request(ctx, quote.Item(orderPlaced{Total: -1}, nil))
	var failed *spool.JobFailedError
	if !errors.As(err, &failed) || job.State != store.StateDead {
		t.Fatalf("a dead-lettered request: %v, %v", job, err)
	}
}

// A worker given an empty (non-nil) Queues map works its subscriptions
// only: a job in the default queue is left alone.
func TestSubscriptionOnlyWorkerLeavesQueuesAlone(t *testing.T) {
	st := openLiveStore(t, filepath.Join(t.TempDir(), "spool.db"))
	c := newClient(t, st)
	ctx := t.Context()
	if _, err := c.Subscriptions().Create(ctx, spool.SubscriptionParams{Topic: "orders", Name: "audit"}); err != nil {
		t.Fatal(err)
	}
	res, err := c.EnqueueMany(ctx, spool.RawItem("chore", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	var handled counter
	startWorker(t, spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{}, PollInterval: 10 * time.Millisecond}, func(w *spool.Worker) {
		spool.Subscribe(w, "orders", "audit", func(_ context.Context, e *spool.Event[json.RawMessage]) error {
			handled.add(e.ID)
			return nil
		}, nil)
	})
	if _, err := c.Publish(ctx, "orders", spool.RawEvent("order.placed", []byte(`{}`), nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event", func() bool { return handled.total() == 1 })
	job, err := c.Get(ctx, res[0].ID)
	if err != nil || job.State != store.StateAvailable || job.Deliveries != 0 {
		t.Fatalf("the default queue's job: %+v, %v; want it untouched", job, err)
	}
}

// TestFailedEventLeavesItsBatch: events published before the worker
// starts are delivered in batches; one that fails becomes a delivery of
// its own with its attempt recorded, and runs again; the rest of its batch
// is not run twice.
func TestFailedEventLeavesItsBatch(t *testing.T) {
	st := openLiveStore(t, filepath.Join(t.TempDir(), "spool.db"))
	c := newClient(t, st)
	ctx := t.Context()
	if _, err := c.Subscriptions().Create(ctx, spool.SubscriptionParams{Topic: "t", Name: "s", RetryBase: 10 * time.Millisecond, RetryMax: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var evs []spool.EventItem
	for i := range 40 {
		evs = append(evs, spool.RawEvent("k", []byte(fmt.Sprint(i)), &spool.EventOptions{ID: fmt.Sprint("e", i)}))
	}
	if _, err := c.Publish(ctx, "t", evs...); err != nil {
		t.Fatal(err)
	}
	var calls counter
	var batched sync.Map
	startWorker(t, spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{}}, func(w *spool.Worker) {
		spool.Subscribe(w, "t", "s", func(_ context.Context, e *spool.Event[json.RawMessage]) error {
			calls.add(e.ID)
			if e.Delivery.Kind == store.BatchKind {
				batched.Store(e.ID, true)
			}
			switch e.ID {
			case "e7":
				if e.Delivery.Attempts == 0 {
					return errors.New("flaky")
				}
			case "e9":
				if e.Delivery.Attempts == 0 {
					panic("boom")
				}
			}
			return nil
		}, &spool.SubscribeOptions{Concurrency: 2})
	})
	waitFor(t, "every event and both retries", func() bool { return calls.total() == 42 && calls.distinct() == 40 })
	if _, ok := batched.Load("e0"); !ok {
		t.Fatal("events published before the worker started were not batched")
	}
	var page *spool.ListPage
	waitFor(t, "the own deliveries to complete", func() bool {
		var err error
		page, err = c.List(ctx, spool.ListParams{Queue: "sub/t/s", Kind: "k"})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page.Jobs {
			if j.State != spool.StateCompleted {
				return false
			}
		}
		return true
	})
	if len(page.Jobs) != 2 {
		t.Fatalf("%d deliveries of their own, want 2 (e7 and e9)", len(page.Jobs))
	}
	for _, j := range page.Jobs {
		j := mustGet(t, c, j.ID)
		if j.Attempts != 1 || len(j.Errors) != 1 || j.State != spool.StateCompleted {
			t.Errorf("own delivery %s: attempts %d, errors %+v, state %s", j.UniqueKey, j.Attempts, j.Errors, j.State)
		}
		if strings.HasSuffix(j.UniqueKey, ":10") && (j.Errors[0].Message != "panic: boom" || j.Errors[0].Stack == "") {
			t.Errorf("the panic's own delivery records %+v", j.Errors[0])
		}
	}
}

// TestLostBatchIsSplit: a batch whose delivery was lost (its holder
// crashed) is not run again as a whole; its events become deliveries of
// their own, each run once.
func TestLostBatchIsSplit(t *testing.T) {
	st := openLiveStore(t, filepath.Join(t.TempDir(), "spool.db"))
	c := newClient(t, st)
	ctx := t.Context()
	if _, err := c.Subscriptions().Create(ctx, spool.SubscriptionParams{Topic: "t", Name: "s"}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := c.Publish(ctx, "t", spool.RawEvent("k", nil, &spool.EventOptions{ID: fmt.Sprint("e", i)})); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := st.Route(ctx, store.RouteParams{Topic: "t", Name: "s", Spread: 1}); err != nil || r.Jobs != 5 {
		t.Fatalf("Route = %+v, %v", r, err)
	}
	// Route them again as one batch: rewind drops the waiting ones.
	if _, err := c.Subscriptions().Rewind(ctx, "t", "s", spool.FromStart); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Route(ctx, store.RouteParams{Topic: "t", Name: "s", Spread: 2}); err != nil || r.Jobs != 2 {
		t.Fatalf("Route = %+v, %v", r, err)
	}
	// A worker that claims the batches and dies.
	if jobs, err := st.Claim(ctx, store.ClaimParams{Queue: "sub/t/s", Limit: 10, LockFor: store.MinLockDuration}); err != nil || len(jobs) != 2 {
		t.Fatalf("Claim = %v, %v", jobs, err)
	}
	time.Sleep(2 * store.MinLockDuration)
	var calls counter
	startWorker(t, spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{},
		Maintenance: spool.MaintenanceConfig{ReapInterval: 50 * time.Millisecond}}, func(w *spool.Worker) {
		spool.Subscribe(w, "t", "s", func(_ context.Context, e *spool.Event[json.RawMessage]) error {
			if e.Delivery.Kind == store.BatchKind {
				t.Errorf("event %s ran in a batch whose delivery was lost", e.ID)
			}
			calls.add(e.ID)
			return nil
		}, nil)
	})
	waitFor(t, "every event", func() bool { return calls.distinct() == 5 })
	time.Sleep(100 * time.Millisecond)
	if calls.total() != 5 {
		t.Errorf("%d calls for 5 events", calls.total())
	}
}
