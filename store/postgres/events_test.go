package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
)

// publish publishes events to topic and fails the test on an error.
func publish(t *testing.T, s *postgres.Store, topic string, evs ...store.EventInput) []store.PublishResult {
	t.Helper()
	res, err := s.Publish(t.Context(), topic, evs)
	if err != nil {
		t.Fatalf("Publish to %s: %v", topic, err)
	}
	return res
}

// subscribe creates a subscription from the topic's first event.
func subscribe(t *testing.T, s *postgres.Store, p store.SubscriptionParams) *store.Subscription {
	t.Helper()
	if p.From.From == "" {
		p.From = store.StartAt{From: store.StartBegin}
	}
	sub, _, err := s.CreateSubscription(t.Context(), p)
	if err != nil {
		t.Fatalf("CreateSubscription %s/%s: %v", p.Topic, p.Name, err)
	}
	return sub
}

// routeAll routes a subscription until its cursor is at the head, waiting
// out another router that holds it.
func routeAll(ctx context.Context, s *postgres.Store, topic, name string, limit int) (store.RouteResult, error) {
	deadline := time.Now().Add(notifyWait)
	for {
		res, err := s.Route(ctx, store.RouteParams{Topic: topic, Name: name, Limit: limit})
		if err != nil || (!res.Busy && !res.More()) {
			return res, err
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("route %s/%s: still busy or behind after %v: %+v", topic, name, notifyWait, res)
		}
		if res.Busy {
			time.Sleep(time.Millisecond)
		}
	}
}

func mustRouteAll(t *testing.T, s *postgres.Store, topic, name string) store.RouteResult {
	t.Helper()
	res, err := routeAll(t.Context(), s, topic, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// deliveries reads every delivery of a subscription, in any state, as the
// events they carry.
func deliveries(t *testing.T, s *postgres.Store, topic, name string) []*store.Event {
	t.Helper()
	var out []*store.Event
	p := store.ListParams{Queue: store.SubscriptionQueue(topic, name), Limit: store.MaxListLimit}
	for {
		page, err := s.List(t.Context(), p)
		if err != nil {
			t.Fatalf("List deliveries of %s/%s: %v", topic, name, err)
		}
		for _, j := range page.Jobs {
			evs, err := store.DecodeDeliveries(j)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, evs...)
		}
		if page.Next.IsZero() {
			return out
		}
		p.After = page.Next
	}
}

// readAll reads every event a topic keeps, in position order.
func readAll(t *testing.T, s *postgres.Store, topic string) []*store.Event {
	t.Helper()
	var out []*store.Event
	p := store.ReadEventsParams{Topic: topic, Limit: store.MaxReadEvents}
	for {
		page, err := s.ReadEvents(t.Context(), p)
		if err != nil {
			t.Fatalf("ReadEvents %s: %v", topic, err)
		}
		out = append(out, page.Events...)
		if page.Next == 0 {
			return out
		}
		p.After = page.Next
	}
}

// checkRoutedOnce checks that a subscription's deliveries are exactly the
// topic's events with positions 1..len(want), each once, and that those
// events are want (IDs, in any order).
func checkRoutedOnce(t *testing.T, s *postgres.Store, topic, name string, want []string) {
	t.Helper()
	evs := readAll(t, s, topic)
	for i, e := range evs {
		if e.Position != int64(i+1) {
			t.Fatalf("topic %s: event %d has position %d: the log has a gap", topic, i, e.Position)
		}
	}
	gotIDs := make([]string, len(evs))
	for i, e := range evs {
		gotIDs[i] = e.ID
	}
	slices.Sort(gotIDs)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("topic %s keeps %d events %v, want the %d committed %v", topic, len(gotIDs), gotIDs, len(want), want)
	}
	count := map[int64]int{}
	idAt := map[int64]string{}
	for _, e := range deliveries(t, s, topic, name) {
		count[e.Position]++
		idAt[e.Position] = e.ID
	}
	for _, e := range evs {
		if n := count[e.Position]; n != 1 {
			t.Errorf("%s/%s: event %s at position %d has %d deliveries, want 1", topic, name, e.ID, e.Position, n)
		} else if idAt[e.Position] != e.ID {
			t.Errorf("%s/%s: delivery of position %d carries %s, want %s", topic, name, e.Position, idAt[e.Position], e.ID)
		}
		delete(count, e.Position)
	}
	for p, n := range count {
		t.Errorf("%s/%s: %d deliveries of position %d, which the topic does not have", topic, name, n, p)
	}
}

// TestEventsBasics runs the event API once over PostgreSQL's tables.
func TestEventsBasics(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.Schema(t), postgres.Config{})
	ctx := t.Context()

	res := publish(t, s, "orders",
		store.EventInput{ID: "e1", Kind: "order.placed", Key: "o-1", Payload: []byte(`{"n":1}`), Headers: map[string]string{"h": "v"}},
		store.EventInput{ID: "e2", Kind: "order.paid", Payload: []byte{0, 1, 2}, Tenant: "acme"},
		store.EventInput{ID: "e1", Kind: "order.placed"}, // a repeat in the batch
	)
	if res[0].Position != 1 || res[0].Version != 1 || res[1].Position != 2 || !res[2].Duplicate || res[2].Position != 1 {
		t.Fatalf("Publish results %+v", res)
	}
	if res := publish(t, s, "orders", store.EventInput{ID: "e2", Kind: "order.paid"}); !res[0].Duplicate || res[0].Position != 2 {
		t.Fatalf("republished ID: %+v, want a duplicate at position 2", res)
	}

	// Streams: expected versions.
	if res, err := s.Append(ctx, "orders", "o-1", 1, []store.EventInput{{ID: "e3", Kind: "order.shipped"}}); err != nil || res[0].Version != 2 || res[0].Position != 3 {
		t.Fatalf("Append at version 1: %+v, %v", res, err)
	}
	var ce *store.ConflictError
	if _, err := s.Append(ctx, "orders", "o-1", 1, []store.EventInput{{Kind: "order.shipped"}}); !errors.As(err, &ce) || ce.Current != 2 {
		t.Fatalf("Append at a stale version: %v, want a conflict at 2", err)
	}
	if _, err := s.Append(ctx, "orders", "o-2", store.NoStream, []store.EventInput{{ID: "e4", Kind: "order.placed"}}); err != nil {
		t.Fatal(err)
	}

	// Reads.
	page, err := s.ReadEvents(ctx, store.ReadEventsParams{Topic: "orders", Limit: 2})
	if err != nil || len(page.Events) != 2 || page.Next != 2 {
		t.Fatalf("ReadEvents page: %+v, %v", page, err)
	}
	e := page.Events[0]
	if e.ID != "e1" || e.Key != "o-1" || e.Version != 1 || e.Headers["h"] != "v" || string(e.Payload) != `{"n":1}` ||
		e.PublishedAt.IsZero() || e.PublishedAt.Location() != time.UTC {
		t.Fatalf("first event %+v", e)
	}
	if e := page.Events[1]; e.Tenant != "acme" || string(e.Payload) != "\x00\x01\x02" || e.Key != "" || e.Version != 0 || e.Headers != nil {
		t.Fatalf("second event %+v", e)
	}
	stream, err := s.ReadEvents(ctx, store.ReadEventsParams{Topic: "orders", Key: "o-1"})
	if err != nil || len(stream.Events) != 2 || stream.Events[1].ID != "e3" || stream.Events[1].Version != 2 {
		t.Fatalf("ReadEvents of a stream: %+v, %v", stream, err)
	}
	if e, err := s.GetEvent(ctx, "", "e3"); err != nil || e.Topic != "orders" || e.Position != 3 {
		t.Fatalf("GetEvent in any topic: %+v, %v", e, err)
	}
	if _, err := s.GetEvent(ctx, "orders", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetEvent of a missing ID: %v", err)
	}
	topics, err := s.Topics(ctx)
	if err != nil || len(topics) != 1 || topics[0].Head != 4 || topics[0].Oldest != 1 || topics[0].Retention != store.KeepEvents ||
		topics[0].Published.IsZero() {
		t.Fatalf("Topics: %+v, %v", topics, err)
	}

	// A subscription, with a kind filter.
	sub := subscribe(t, s, store.SubscriptionParams{Topic: "orders", Name: "ship", Kinds: []string{"order.placed", "order.shipped"}, Ordered: true})
	if sub.Lag.Unrouted != 4 || sub.Cursor != 0 || !slices.Equal(sub.Kinds, []string{"order.placed", "order.shipped"}) || !sub.Ordered {
		t.Fatalf("new subscription %+v", sub)
	}
	if _, created, err := s.CreateSubscription(ctx, store.SubscriptionParams{Topic: "orders", Name: "ship",
		Kinds: []string{"order.shipped", "order.placed"}, Ordered: true}); err != nil || created {
		t.Fatalf("the same subscription again: created %v, %v", created, err)
	}
	if _, _, err := s.CreateSubscription(ctx, store.SubscriptionParams{Topic: "orders", Name: "ship"}); !errors.As(err, &ce) {
		t.Fatalf("another definition: %v, want a conflict", err)
	}
	r := mustRouteAll(t, s, "orders", "ship")
	if r.Routed != 3 || r.Filtered != 1 || r.Cursor != 4 || r.Head != 4 {
		t.Fatalf("Route: %+v", r)
	}
	got := deliveries(t, s, "orders", "ship")
	if len(got) != 3 || got[0].ID != "e1" || got[0].Headers["h"] != "v" || string(got[0].Payload) != `{"n":1}` || got[2].ID != "e4" {
		t.Fatalf("deliveries %+v", got)
	}
	sub, err = s.GetSubscription(ctx, "orders", "ship")
	if err != nil || sub.Lag.Pending != 3 || sub.Lag.Unrouted != 0 || sub.Lag.OldestAge < 0 {
		t.Fatalf("after routing: %+v, %v", sub, err)
	}

	// Pause, resume, rewind.
	if err := s.PauseSubscription(ctx, "orders", "ship"); err != nil {
		t.Fatal(err)
	}
	if subs, err := s.ListSubscriptions(ctx, ""); err != nil || len(subs) != 1 || !subs[0].Paused {
		t.Fatalf("ListSubscriptions after pause: %+v, %v", subs, err)
	}
	if err := s.ResumeSubscription(ctx, "orders", "ship"); err != nil {
		t.Fatal(err)
	}
	sub, err = s.RewindSubscription(ctx, "orders", "ship", store.StartAt{From: store.StartPosition, Position: 3})
	if err != nil || sub.Cursor != 2 || sub.Lag.Pending != 0 {
		t.Fatalf("Rewind to 3: %+v, %v", sub, err)
	}
	if r := mustRouteAll(t, s, "orders", "ship"); r.Routed != 2 {
		t.Fatalf("Route after rewind: %+v", r)
	}
	if err := s.PauseSubscription(ctx, "orders", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PauseSubscription of a missing subscription: %v", err)
	}

	// Retention never deletes what a subscription was not handed.
	subscribe(t, s, store.SubscriptionParams{Topic: "orders", Name: "late", From: store.StartAt{From: store.StartPosition, Position: 3}})
	if err := s.SetTopicRetention(ctx, "orders", 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneEvents(ctx, store.PruneEventsParams{}); err != nil || n != 2 {
		t.Fatalf("PruneEvents: %d, %v, want the 2 events below the lowest cursor", n, err)
	}
	if evs := readAll(t, s, "orders"); len(evs) != 2 || evs[0].Position != 3 {
		t.Fatalf("after pruning: %+v", evs)
	}

	// Delete takes the deliveries with it.
	if err := s.DeleteSubscription(ctx, "orders", "ship"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSubscription(ctx, "orders", "ship"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSubscription after delete: %v", err)
	}
	if got := deliveries(t, s, "orders", "ship"); len(got) != 0 {
		t.Fatalf("%d deliveries left after delete", len(got))
	}
}

// TestCreateSubscriptionRace: handles that create one subscription at once
// all succeed, and exactly one reports it created.
func TestCreateSubscriptionRace(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	stores := []*postgres.Store{open(t, schema, postgres.Config{}), open(t, schema, postgres.Config{})}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for i := range 6 {
		wg.Go(func() {
			_, c, err := stores[i%2].CreateSubscription(t.Context(), store.SubscriptionParams{Topic: "t", Name: "n"})
			if err != nil {
				t.Errorf("CreateSubscription %d: %v", i, err)
			}
			mu.Lock()
			if c {
				created++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("%d callers created the subscription, want 1", created)
	}
}

// eventTxCase is one way of publishing in a caller's transaction.
type eventTxCase struct {
	name string
	// begin starts a caller's transaction and returns its operations.
	begin func(t *testing.T, s *postgres.Store) callerTx
}

type callerTx struct {
	publish  func(topic string, evs []store.EventInput) ([]store.PublishResult, error)
	append   func(topic, key string, expected int64, evs []store.EventInput) ([]store.PublishResult, error)
	markSeen func(consumer, id string) (bool, error)
	exec     func(sql string) error
	commit   func() error
	rollback func()
}

var eventTxCases = []eventTxCase{
	{"sql.Tx", func(t *testing.T, s *postgres.Store) callerTx {
		db, err := sql.Open("pgx", pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		ctx := t.Context()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback() })
		x := s.Capabilities().EventsSQLTx
		return callerTx{
			publish: func(topic string, evs []store.EventInput) ([]store.PublishResult, error) {
				return x.PublishTx(ctx, tx, topic, evs)
			},
			append: func(topic, key string, expected int64, evs []store.EventInput) ([]store.PublishResult, error) {
				return x.AppendTx(ctx, tx, topic, key, expected, evs)
			},
			markSeen: func(consumer, id string) (bool, error) { return x.MarkSeenTx(ctx, tx, consumer, id) },
			exec: func(q string) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			},
			commit:   tx.Commit,
			rollback: func() { _ = tx.Rollback() },
		}
	}},
	{"pgx.Tx", func(t *testing.T, s *postgres.Store) callerTx {
		ctx := t.Context()
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
		return callerTx{
			publish: func(topic string, evs []store.EventInput) ([]store.PublishResult, error) {
				return s.PublishPgx(ctx, tx, topic, evs)
			},
			append: func(topic, key string, expected int64, evs []store.EventInput) ([]store.PublishResult, error) {
				return s.AppendPgx(ctx, tx, topic, key, expected, evs)
			},
			markSeen: func(consumer, id string) (bool, error) { return s.MarkSeenPgx(ctx, tx, consumer, id) },
			exec: func(q string) error {
				_, err := tx.Exec(ctx, q)
				return err
			},
			commit:   func() error { return tx.Commit(ctx) },
			rollback: func() { _ = tx.Rollback(ctx) },
		}
	}},
}

// TestPublishInCallersTx: events published in a caller's transaction
// commit or roll back with its rows, a rolled-back publish gives its
// positions back, a refused call leaves the transaction usable, routers in
// other processes wake at the commit, and inbox marks follow the
// transaction.
func TestPublishInCallersTx(t *testing.T) {
	t.Parallel()
	for _, tc := range eventTxCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			schema := pgtest.Schema(t)
			s := open(t, schema, postgres.Config{})
			other := open(t, schema, postgres.Config{})
			ctx := t.Context()
			if _, err := s.Pool().Exec(ctx, `CREATE TABLE `+schema+`.orders (id int PRIMARY KEY)`); err != nil {
				t.Fatal(err)
			}

			// Rolled back: nothing, and the positions are given back.
			tx := tc.begin(t, s)
			if res, err := tx.publish("orders", []store.EventInput{{ID: "gone", Kind: "k"}}); err != nil || res[0].Position != 1 {
				t.Fatalf("publish in tx: %+v, %v", res, err)
			}
			if first, err := tx.markSeen("c", "m1"); err != nil || !first {
				t.Fatalf("MarkSeen in tx: %v, %v", first, err)
			}
			tx.rollback()
			if evs := readAll(t, s, "orders"); len(evs) != 0 {
				t.Fatalf("events of a rolled-back transaction: %+v", evs)
			}

			// Committed: the events, the caller's rows, the mark; other
			// handles' routers wake.
			woken := other.Capabilities().Notifier.Available(store.TopicSignal("orders"))
			tx = tc.begin(t, s)
			if err := tx.exec(`INSERT INTO ` + schema + `.orders (id) VALUES (1)`); err != nil {
				t.Fatal(err)
			}
			res, err := tx.publish("orders", []store.EventInput{{ID: "a", Kind: "k"}, {ID: "b", Kind: "k", Key: "o-1"}})
			if err != nil || res[0].Position != 1 || res[1].Position != 2 || res[1].Version != 1 {
				t.Fatalf("publish in tx: %+v, %v (the rolled-back positions are not reused?)", res, err)
			}
			// Refused calls leave the transaction usable.
			if _, err := tx.publish("orders", []store.EventInput{{Kind: "bad kind"}}); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("invalid event: %v", err)
			}
			var ce *store.ConflictError
			if _, err := tx.append("orders", "o-1", store.NoStream, []store.EventInput{{Kind: "k"}}); !errors.As(err, &ce) || ce.Current != 1 {
				t.Fatalf("append at a stale version: %v", err)
			}
			if res, err := tx.append("orders", "o-1", 1, []store.EventInput{{ID: "c", Kind: "k"}}); err != nil || res[0].Position != 3 || res[0].Version != 2 {
				t.Fatalf("append in tx: %+v, %v", res, err)
			}
			if first, err := tx.markSeen("c", "m1"); err != nil || !first {
				t.Fatalf("MarkSeen after a rolled-back mark: %v, %v", first, err)
			}
			if first, err := tx.markSeen("c", "m1"); err != nil || first {
				t.Fatalf("MarkSeen twice: %v, %v", first, err)
			}
			if _, err := tx.markSeen("", "m1"); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("MarkSeen without a consumer: %v", err)
			}
			if _, err := tx.markSeen("c", "a\x00b"); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("MarkSeen of an ID with a NUL byte: %v", err)
			}
			if _, err := tx.markSeen("c\xff", "m"); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("MarkSeen with invalid UTF-8: %v", err)
			}
			if err := tx.exec(`INSERT INTO ` + schema + `.orders (id) VALUES (2)`); err != nil {
				t.Fatalf("caller's transaction broken by a refused call: %v", err)
			}
			if !isOpen(woken) {
				// Not a failure of the contract, but the wake-up should wait for the commit.
				t.Log("the topic signal fired before the commit")
			}
			if err := tx.commit(); err != nil {
				t.Fatal(err)
			}
			wantClosed(t, "another handle's topic signal after the caller's commit", woken)
			evs := readAll(t, s, "orders")
			if len(evs) != 3 || evs[0].ID != "a" || evs[2].ID != "c" {
				t.Fatalf("events after commit: %+v", evs)
			}
			var n int
			if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM `+schema+`.orders`).Scan(&n); err != nil || n != 2 {
				t.Fatalf("%d caller rows, %v", n, err)
			}
			tx = tc.begin(t, s)
			if first, err := tx.markSeen("c", "m1"); err != nil || first {
				t.Fatalf("MarkSeen after the committed mark: %v, %v", first, err)
			}
			tx.rollback()
		})
	}
}

// TestTopicSignalAcrossStores: a publish in one handle wakes routers
// waiting in another, through a NOTIFY that carries the topic's signal
// name (with its ':' and '/'), and a route wakes the delivery queue's
// workers there.
func TestTopicSignalAcrossStores(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	a := open(t, schema, postgres.Config{})
	b := open(t, schema, postgres.Config{})
	const topic = "shop:eu/orders.v1"
	// A subscription behind the head: its routers are woken by a publish
	// (one that is caught up gets its deliveries from the publish itself).
	publish(t, a, topic, store.EventInput{Kind: "k"})
	subscribe(t, a, store.SubscriptionParams{Topic: topic, Name: "mail", From: store.StartAt{From: store.StartBegin}})

	here := a.Capabilities().Notifier.Available(store.TopicSignal(topic))
	there := b.Capabilities().Notifier.Available(store.TopicSignal(topic))
	elsewhere := b.Capabilities().Notifier.Available(store.TopicSignal("shop:eu/other"))
	publish(t, a, topic, store.EventInput{Kind: "k"})
	wantClosed(t, "the publishing handle's topic signal", here)
	wantClosed(t, "another handle's topic signal", there)
	if !isOpen(elsewhere) {
		t.Fatal("another topic's signal fired")
	}

	queue := b.Capabilities().Notifier.Available(store.SubscriptionQueue(topic, "mail"))
	if r := mustRouteAll(t, a, topic, "mail"); r.Routed != 2 {
		t.Fatalf("Route: %+v", r)
	}
	wantClosed(t, "another handle's delivery queue after Route", queue)
	jobs, err := b.Claim(t.Context(), store.ClaimParams{Queue: store.SubscriptionQueue(topic, "mail"), LockFor: time.Minute})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim the delivery: %v, %v", jobs, err)
	}
}

// waitBlocked waits until a statement on schema's topics table waits for
// a lock, or done is closed; it reports whether it saw the wait.
func waitBlocked(t *testing.T, pool *pgxpool.Pool, schema string, done <-chan struct{}) bool {
	t.Helper()
	deadline := time.Now().Add(notifyWait)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return false
		default:
		}
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%' || $1 || '.topics%'`,
			schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the second publisher neither finished nor waited for a lock")
	return false
}

// TestRouteInterleavedPublishers: publisher A takes its position and holds
// its transaction open while publisher B publishes and a router runs.
// Positions are handed out in commit order, so B waits for A: after A
// commits (or rolls back) the router hands out every committed event once
// and skips none. A store that numbered events from a sequence would let
// B commit position 3 while A's position 2 is still invisible, and a
// router reading "position > cursor" would move its cursor past 2 for
// good.
func TestRouteInterleavedPublishers(t *testing.T) {
	t.Parallel()
	for _, commitA := range []bool{true, false} {
		t.Run(fmt.Sprintf("commitA=%v", commitA), func(t *testing.T) {
			t.Parallel()
			schema := pgtest.Schema(t)
			s := open(t, schema, postgres.Config{})
			ctx := t.Context()
			subscribe(t, s, store.SubscriptionParams{Topic: "t", Name: "r"})
			publish(t, s, "t", store.EventInput{ID: "first", Kind: "k"})

			txA, err := s.Pool().Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer txA.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
			resA, err := s.PublishPgx(ctx, txA, "t", []store.EventInput{{ID: "a", Kind: "k"}})
			if err != nil || resA[0].Position != 2 {
				t.Fatalf("A: %+v, %v", resA, err)
			}

			bDone := make(chan struct{})
			var (
				resB []store.PublishResult
				errB error
			)
			go func() {
				defer close(bDone)
				resB, errB = s.Publish(ctx, "t", []store.EventInput{{ID: "b", Kind: "k"}})
			}()
			if !waitBlocked(t, s.Pool(), schema, bDone) {
				t.Log("B committed while A held its position open")
			}
			// The router runs while A is open (and B waits, or has committed).
			if _, err := routeAll(ctx, s, "t", "r", 0); err != nil {
				t.Fatal(err)
			}

			want := []string{"first", "b"}
			if commitA {
				if err := txA.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				want = append(want, "a")
			} else if err := txA.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			<-bDone
			if errB != nil {
				t.Fatalf("B: %v", errB)
			}
			if wantPos := int64(len(want)); resB[0].Position != wantPos {
				t.Errorf("B got position %d, want %d (after A's)", resB[0].Position, wantPos)
			}
			r := mustRouteAll(t, s, "t", "r")
			if r.Cursor != int64(len(want)) || r.Head != int64(len(want)) {
				t.Errorf("route after A: %+v", r)
			}
			checkRoutedOnce(t, s, "t", "r", want)
		})
	}
}

// TestRouteNotStalledByLongTransaction: transactions open elsewhere in the
// database, an idle one with a transaction ID and one holding another
// topic, do not hold up publishing, routing or claiming. A router that
// waited for every older transaction to end (an xmin horizon) would stall
// here until they did.
func TestRouteNotStalledByLongTransaction(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	s := open(t, schema, postgres.Config{})
	ctx := t.Context()
	subscribe(t, s, store.SubscriptionParams{Topic: "t", Name: "r"})

	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	idle, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Rollback(context.Background()) //nolint:errcheck // the end of the test
	if _, err := idle.Exec(ctx, `SELECT txid_current()`); err != nil {
		t.Fatal(err)
	}
	holder, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background()) //nolint:errcheck // the end of the test
	if _, err := s.PublishPgx(ctx, holder, "other", []store.EventInput{{Kind: "k"}}); err != nil {
		t.Fatal(err)
	}

	quick, cancel := context.WithTimeout(ctx, notifyWait)
	defer cancel()
	for round := 1; round <= 3; round++ {
		woken := s.Capabilities().Notifier.Available(store.SubscriptionQueue("t", "r"))
		if _, err := s.Publish(quick, "t", []store.EventInput{{ID: fmt.Sprint("e", round), Kind: "k"}}); err != nil {
			t.Fatalf("publish with long transactions open: %v", err)
		}
		wantClosed(t, "the delivery queue's signal (the caught-up subscription is routed by the publish)", woken)
		r, err := routeAll(quick, s, "t", "r", 0)
		if err != nil || r.Cursor != int64(round) {
			t.Fatalf("round %d: route with long transactions open: %+v, %v", round, r, err)
		}
		jobs, err := s.Claim(quick, store.ClaimParams{Queue: store.SubscriptionQueue("t", "r"), LockFor: time.Minute})
		if err != nil || len(jobs) != 1 {
			t.Fatalf("round %d: claim: %v, %v", round, jobs, err)
		}
		if e, err := store.DecodeDeliveries(jobs[0]); err != nil || e[0].Position != int64(round) {
			t.Fatalf("round %d: delivery %+v, %v", round, e, err)
		}
	}
}

// TestRouteConcurrentPublishersAndRouters: publishers on two handles
// (plain publishes, and publishes in callers' transactions that commit or
// roll back) race routers of two subscriptions on both handles. Every
// committed event is in the log with positions 1..n and routed exactly
// once per subscription; rolled-back events appear nowhere.
func TestRouteConcurrentPublishersAndRouters(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	stores := []*postgres.Store{open(t, schema, postgres.Config{}), open(t, schema, postgres.Config{})}
	ctx := t.Context()
	const topic = "t"
	subs := []string{"all", "ordered"}
	subscribe(t, stores[0], store.SubscriptionParams{Topic: topic, Name: "all"})
	subscribe(t, stores[1], store.SubscriptionParams{Topic: topic, Name: "ordered", Ordered: true})

	const publishers, rounds = 6, 20
	var (
		mu         sync.Mutex
		committed  []string
		rolledBack []string
		pubs       sync.WaitGroup
		routers    sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
	}
	for p := range publishers {
		s := stores[p%2]
		pubs.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			for i := range rounds {
				n := 1 + rng.IntN(3)
				evs := make([]store.EventInput, n)
				ids := make([]string, n)
				for k := range evs {
					ids[k] = fmt.Sprintf("p%d-r%d-%d", p, i, k)
					evs[k] = store.EventInput{ID: ids[k], Kind: "k", Key: fmt.Sprintf("key-%d", rng.IntN(4))}
				}
				switch mode := rng.IntN(3); mode {
				case 0:
					if _, err := s.Publish(ctx, topic, evs); err != nil {
						fail("publish: %v", err)
						return
					}
					mu.Lock()
					committed = append(committed, ids...)
					mu.Unlock()
				default: // in a caller's transaction, held open a moment
					tx, err := s.Pool().Begin(ctx)
					if err != nil {
						fail("begin: %v", err)
						return
					}
					if _, err := s.PublishPgx(ctx, tx, topic, evs); err != nil {
						_ = tx.Rollback(ctx)
						fail("publish in tx: %v", err)
						return
					}
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
					if mode == 1 {
						if err := tx.Commit(ctx); err != nil {
							fail("commit: %v", err)
							return
						}
						mu.Lock()
						committed = append(committed, ids...)
						mu.Unlock()
					} else {
						if err := tx.Rollback(ctx); err != nil {
							fail("rollback: %v", err)
							return
						}
						mu.Lock()
						rolledBack = append(rolledBack, ids...)
						mu.Unlock()
					}
				}
			}
		})
	}
	stop := make(chan struct{})
	for _, s := range stores {
		for _, name := range subs {
			routers.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := s.Route(ctx, store.RouteParams{Topic: topic, Name: name, Limit: 5}); err != nil {
						fail("route %s: %v", name, err)
						return
					}
				}
			})
		}
	}
	pubs.Wait()
	close(stop)
	routers.Wait()
	if t.Failed() {
		return
	}
	for _, name := range subs {
		if _, err := routeAll(ctx, stores[1], topic, name, 0); err != nil {
			t.Fatal(err)
		}
		checkRoutedOnce(t, stores[0], topic, name, committed)
	}
	for _, e := range deliveries(t, stores[0], topic, "all") {
		if slices.Contains(rolledBack, e.ID) {
			t.Errorf("delivery of rolled-back event %s", e.ID)
		}
	}
	t.Logf("%d events committed, %d rolled back", len(committed), len(rolledBack))
}

// TestEventsMigrationDownUp: migration 0003 (with the migrations above it)
// comes off cleanly and goes back on with working tables.
func TestEventsMigrationDownUp(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	s := open(t, schema, postgres.Config{})
	ctx := t.Context()
	pool := s.Pool()
	tables := func() (n int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1
			AND tablename IN ('topics', 'events', 'subscriptions', 'inbox')`, schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := tables(); n != 4 {
		t.Fatalf("%d event tables after Open", n)
	}
	publish(t, s, "t", store.EventInput{Kind: "k"})
	latest := postgres.LatestVersion()
	if steps, err := postgres.Migrate(ctx, pool, schema, 2); err != nil || len(steps) != knownAbove(t, 2) ||
		!steps[len(steps)-1].Down || steps[len(steps)-1].Version != 3 {
		t.Fatalf("Migrate down to 2: %+v, %v", steps, err)
	}
	if n := tables(); n != 0 {
		t.Fatalf("%d event tables left after down", n)
	}
	if steps, err := postgres.Migrate(ctx, pool, schema, latest); err != nil || len(steps) != knownAbove(t, 2) || steps[0].Version != 3 {
		t.Fatalf("Migrate up again: %+v, %v", steps, err)
	}
	if res := publish(t, s, "t", store.EventInput{Kind: "k"}); res[0].Position != 1 {
		t.Fatalf("first publish after up: %+v", res)
	}
}

// TestDeadHeadMigrationDownUp: migration 0004 comes off cleanly (the jobs'
// hold_when_dead, its index and the subscriptions' on_dead_head go) and goes
// back on with the defaults: no job holds its key, every subscription skips.
func TestDeadHeadMigrationDownUp(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	s := open(t, schema, postgres.Config{})
	ctx := t.Context()
	pool := s.Pool()
	subscribe(t, s, store.SubscriptionParams{Topic: "t", Name: "s", Ordered: true, OnDeadHead: store.DeadHeadBlock})
	res, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", OrderingKey: "o", HoldKeyWhenDead: true}})
	if err != nil {
		t.Fatal(err)
	}
	objects := func() (n int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM information_schema.columns WHERE table_schema = $1
				AND (table_name, column_name) IN (('jobs', 'hold_when_dead'), ('subscriptions', 'on_dead_head')))
			+ (SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'jobs_dead_holds')`, schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := objects(); n != 3 {
		t.Fatalf("%d of migration 0004's objects after Open, want 3", n)
	}
	latest := postgres.LatestVersion()
	if steps, err := postgres.Migrate(ctx, pool, schema, 3); err != nil || len(steps) != knownAbove(t, 3) ||
		!steps[len(steps)-1].Down || steps[len(steps)-1].Version != 4 {
		t.Fatalf("Migrate down to 3: %+v, %v", steps, err)
	}
	if n := objects(); n != 0 {
		t.Fatalf("%d of migration 0004's objects left after down", n)
	}
	if steps, err := postgres.Migrate(ctx, pool, schema, latest); err != nil || len(steps) != knownAbove(t, 3) || steps[0].Version != 4 {
		t.Fatalf("Migrate up again: %+v, %v", steps, err)
	}
	if j, err := s.Get(ctx, res[0].ID); err != nil || j.HoldKeyWhenDead {
		t.Fatalf("job after down and up: %+v, %v", j, err)
	}
	if sub, err := s.GetSubscription(ctx, "t", "s"); err != nil || sub.OnDeadHead != store.DeadHeadSkip {
		t.Fatalf("subscription after down and up: %+v, %v", sub, err)
	}
}

// TestPublishGroups: concurrent publishes are committed in groups, each
// answered on its own: a refused one changes nothing and does not undo the
// others, a caller that gives up leaves the others be, and positions stay
// contiguous.
func TestPublishGroups(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.Schema(t), postgres.Config{})
	ctx := t.Context()
	subscribe(t, s, store.SubscriptionParams{Topic: "t", Name: "s"})
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused, gaveUp := map[string]int64{}, 0, 0
	for i := range n {
		wg.Go(func() {
			ev := store.EventInput{ID: fmt.Sprint("e", i), Kind: "k"}
			c := ctx
			switch i % 10 {
			case 3:
				ev.Kind = "bad kind"
			case 7:
				var cancel context.CancelFunc
				c, cancel = context.WithCancel(ctx)
				cancel()
			}
			res, err := s.Publish(c, "t", []store.EventInput{ev})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case i%10 == 3:
				if !errors.Is(err, store.ErrInvalid) {
					t.Errorf("bad event %d: %v", i, err)
				}
				refused++
			case i%10 == 7 && err != nil:
				gaveUp++
			case err != nil:
				t.Errorf("publish %d: %v", i, err)
			default:
				ok[ev.ID] = res[0].Position
			}
		})
	}
	wg.Wait()
	evs := readAll(t, s, "t")
	if len(evs) != len(ok) {
		t.Fatalf("%d events in the log, %d publishes succeeded (%d refused, %d gave up)", len(evs), len(ok), refused, gaveUp)
	}
	for i, e := range evs {
		if e.Position != int64(i+1) || ok[e.ID] != e.Position {
			t.Fatalf("event %s at %d, its publish said %d (index %d)", e.ID, e.Position, ok[e.ID], i)
		}
	}
	if got := len(deliveries(t, s, "t", "s")); got != len(ok) {
		t.Fatalf("%d deliveries for %d events", got, len(ok))
	}
}
