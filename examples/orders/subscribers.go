package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/spoolrun/spool"
)

// The subscriptions of the topic. Each gets its own copy of every event
// (after its kind filter), its own cursor, lag, retries and dead letters:
// one failing does not hold the others back.
func subscriptions() []spool.SubscriptionParams {
	return []spool.SubscriptionParams{{
		// One confirmation e-mail per placed order. The mail server is
		// flaky: a failed delivery is retried after a short, growing
		// backoff (50ms, 100ms, ... then every second), and often enough
		// (MaxAttempts) to outlast a long outage before the delivery
		// would be dead-lettered.
		Topic: topic, Name: "email", From: spool.FromStart,
		Kinds:     []string{OrderPlaced.Name()},
		RetryBase: 50 * time.Millisecond, RetryMax: time.Second, MaxAttempts: 1000,
	}, {
		// The read model. Ordered: the events of one order are handled
		// one at a time, in stream order (placed before paid before
		// shipped); different orders run in parallel.
		Topic: topic, Name: "projection", From: spool.FromStart, Ordered: true,
		RetryBase: 25 * time.Millisecond, RetryMax: 250 * time.Millisecond,
	}, {
		// Revenue per day: only payments matter, so the subscription
		// filters on the kind. Other events are not even delivered to it.
		Topic: topic, Name: "analytics", From: spool.FromStart,
		Kinds: []string{OrderPaid.Name()},
	}}
}

// errMailDown is the simulated mail server's answer during its outage.
var errMailDown = errors.New("smtp: 421 service not available, try again later")

// mailer is the simulated mail server: an in-memory log of the e-mails it
// accepted, per order. While down it refuses every e-mail.
type mailer struct {
	mu      sync.Mutex
	down    bool
	sent    map[string]int  // e-mails accepted per order
	refused int             // attempts refused while down
	tried   map[string]bool // orders whose e-mail was refused at least once
}

func newMailer() *mailer {
	return &mailer{down: true, sent: map[string]int{}, tried: map[string]bool{}}
}

func (m *mailer) send(orderID, to, subject string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		m.refused++
		m.tried[orderID] = true
		return fmt.Errorf("send %q to %s: %w", subject, to, errMailDown)
	}
	m.sent[orderID]++
	return nil
}

func (m *mailer) setDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// stats returns the e-mails sent, the refused attempts, and how many
// orders' e-mails were refused at least once.
func (m *mailer) stats() (sent, refused, tried int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.sent {
		sent += n
	}
	return sent, m.refused, len(m.tried)
}

func (m *mailer) perOrder() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.sent)
}

// handleEmail sends the confirmation of one placed order. Its error fails
// the delivery's attempt, and Spool retries it per the subscription's
// backoff. A mail server is not transactional, so this is at least once:
// a crash after sending and before the delivery is acknowledged sends the
// e-mail again (a real provider's idempotency key, e.ID, would catch it).
func handleEmail(m *mailer) func(ctx context.Context, e *spool.Event[orderPlaced]) error {
	return func(_ context.Context, e *spool.Event[orderPlaced]) error {
		p := e.Payload
		return m.send(p.OrderID, p.Customer+"@example.com",
			fmt.Sprintf("Order %s confirmed: %s", p.OrderID, cents(p.TotalCents)))
	}
}

// analytics counts revenue per day of payment, in memory.
type analytics struct {
	mu      sync.Mutex
	seen    map[string]bool  // event IDs counted: a redelivery is not counted twice
	revenue map[string]int64 // cents per day (YYYY-MM-DD, UTC)
}

func newAnalytics() *analytics {
	return &analytics{seen: map[string]bool{}, revenue: map[string]int64{}}
}

func (a *analytics) handle(_ context.Context, e *spool.Event[orderPaid]) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen[e.ID] {
		return nil
	}
	a.seen[e.ID] = true
	a.revenue[e.Payload.PaidAt.UTC().Format(dayLayout)] += e.Payload.AmountCents
	return nil
}

func (a *analytics) snapshot() (payments int, revenue map[string]int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen), maps.Clone(a.revenue)
}

const dayLayout = "2006-01-02"

// projection keeps the read model order_summaries in the application's
// SQLite file, one row per order, from the order events.
//
// Each event is applied in a transaction of its own that also records it
// in the inbox (MarkSeen): a redelivered event (a lost lock, a crash after
// the commit) finds its mark and changes nothing, and a rolled-back
// transaction leaves no mark.
//
// The inbox consumer name carries the read model's generation, kept in
// projection_state. A rebuild empties the table and moves to the next
// generation in one transaction, so the replayed events find an empty
// inbox. Event.MarkSeen (the consumer fixed to "orders/projection") would
// need Client.ForgetInbox before the rewind, a call apart from the one
// that empties the table; the generation makes both one transaction.
type projection struct {
	db     *sql.DB
	client *spool.Client
}

const projectionSchema = `
CREATE TABLE IF NOT EXISTS order_summaries (
	order_id    TEXT PRIMARY KEY,
	customer    TEXT NOT NULL,
	items       INTEGER NOT NULL,
	total_cents INTEGER NOT NULL,
	paid_cents  INTEGER NOT NULL DEFAULT 0,
	status      TEXT NOT NULL,
	placed_at   TEXT NOT NULL,
	paid_at     TEXT,
	shipped_at  TEXT,
	tracking    TEXT,
	version     INTEGER NOT NULL -- the last event applied
);
CREATE TABLE IF NOT EXISTS projection_state (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	generation INTEGER NOT NULL
);
INSERT INTO projection_state VALUES (1, 1) ON CONFLICT DO NOTHING;`

// inboxConsumer is the projection's inbox consumer of a generation.
func inboxConsumer(generation int64) string {
	return fmt.Sprintf("%s/projection#%d", topic, generation)
}

// apply runs write for event id in a transaction, unless the current
// generation of the read model has seen the event already.
func (p *projection) apply(ctx context.Context, id string, write func(tx *sql.Tx) (sql.Result, error)) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var gen int64
	if err := tx.QueryRowContext(ctx, `SELECT generation FROM projection_state`).Scan(&gen); err != nil {
		return err
	}
	first, err := p.client.MarkSeen(ctx, tx, inboxConsumer(gen), id)
	if err != nil {
		return err
	}
	if !first {
		return nil // applied already: a redelivery
	}
	res, err := write(tx)
	if err != nil {
		return err
	}
	// The subscription is ordered, so an order's previous event is always
	// applied first; the version check in the updates would catch it if not.
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return fmt.Errorf("event %s: the summary is not at the previous version", id)
	}
	return tx.Commit()
}

func (p *projection) placed(ctx context.Context, e *spool.Event[orderPlaced]) error {
	return p.apply(ctx, e.ID, func(tx *sql.Tx) (sql.Result, error) {
		items := 0
		for _, l := range e.Payload.Lines {
			items += l.Qty
		}
		return tx.ExecContext(ctx, `INSERT INTO order_summaries (order_id, customer, items, total_cents, status, placed_at, version)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, e.Key, e.Payload.Customer, items, e.Payload.TotalCents, statusPlaced,
			formatTime(e.Payload.PlacedAt), e.Version)
	})
}

func (p *projection) paid(ctx context.Context, e *spool.Event[orderPaid]) error {
	return p.apply(ctx, e.ID, func(tx *sql.Tx) (sql.Result, error) {
		return tx.ExecContext(ctx, `UPDATE order_summaries SET status = ?, paid_cents = ?, paid_at = ?, version = ?
			WHERE order_id = ? AND version = ?`, statusPaid, e.Payload.AmountCents, formatTime(e.Payload.PaidAt), e.Version,
			e.Key, e.Version-1)
	})
}

func (p *projection) shipped(ctx context.Context, e *spool.Event[orderShipped]) error {
	return p.apply(ctx, e.ID, func(tx *sql.Tx) (sql.Result, error) {
		return tx.ExecContext(ctx, `UPDATE order_summaries SET status = ?, shipped_at = ?, tracking = ?, version = ?
			WHERE order_id = ? AND version = ?`, statusShipped, formatTime(e.Payload.ShippedAt), e.Payload.Tracking, e.Version,
			e.Key, e.Version-1)
	})
}

// summary is one row of the read model.
type summary struct {
	OrderID, Customer     string
	Items                 int
	TotalCents, PaidCents int64
	Status                string
	PlacedAt              string
	PaidAt, ShippedAt     sql.NullString
	Tracking              sql.NullString
	Version               int64
}

// summaries reads the whole read model, by order ID.
func (p *projection) summaries(ctx context.Context) ([]summary, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT order_id, customer, items, total_cents, paid_cents, status,
		placed_at, paid_at, shipped_at, tracking, version FROM order_summaries ORDER BY order_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []summary
	for rows.Next() {
		var s summary
		if err := rows.Scan(&s.OrderID, &s.Customer, &s.Items, &s.TotalCents, &s.PaidCents, &s.Status,
			&s.PlacedAt, &s.PaidAt, &s.ShippedAt, &s.Tracking, &s.Version); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// reset empties the read model for a rebuild and moves to the next
// generation of the inbox, in one transaction; it returns the new
// generation.
func (p *projection) reset(ctx context.Context) (int64, error) {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `DELETE FROM order_summaries`); err != nil {
		return 0, err
	}
	var gen int64
	if err := tx.QueryRowContext(ctx, `UPDATE projection_state SET generation = generation + 1 RETURNING generation`).Scan(&gen); err != nil {
		return 0, err
	}
	return gen, tx.Commit()
}

func cents(c int64) string { return fmt.Sprintf("$%d.%02d", c/100, c%100) }
