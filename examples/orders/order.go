package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spoolrun/spool"
)

// topic is where every order's events go, keyed by the order's ID: the
// events of one order form its stream (versions 1, 2, 3).
const topic = "orders"

// The event kinds of the topic, with their payloads.
var (
	OrderPlaced  = spool.NewKind[orderPlaced]("order.placed")
	OrderPaid    = spool.NewKind[orderPaid]("order.paid")
	OrderShipped = spool.NewKind[orderShipped]("order.shipped")
)

type line struct {
	SKU        string `json:"sku"`
	Qty        int    `json:"qty"`
	PriceCents int64  `json:"price_cents"`
}

type orderPlaced struct {
	OrderID    string    `json:"order_id"`
	Customer   string    `json:"customer"`
	Lines      []line    `json:"lines"`
	TotalCents int64     `json:"total_cents"`
	PlacedAt   time.Time `json:"placed_at"`
}

type orderPaid struct {
	OrderID     string    `json:"order_id"`
	AmountCents int64     `json:"amount_cents"`
	PaymentRef  string    `json:"payment_ref"`
	PaidAt      time.Time `json:"paid_at"`
}

type orderShipped struct {
	OrderID   string    `json:"order_id"`
	Tracking  string    `json:"tracking"`
	ShippedAt time.Time `json:"shipped_at"`
}

// event is a domain event: it changes an Order's state (apply) and is
// published as an event of its kind (item).
type event interface {
	apply(o *Order)
	item(opts *spool.EventOptions) spool.EventItem
}

func (e orderPlaced) apply(o *Order) {
	o.ID, o.Customer, o.Lines, o.TotalCents = e.OrderID, e.Customer, e.Lines, e.TotalCents
	o.Status, o.PlacedAt = statusPlaced, e.PlacedAt
}

func (e orderPaid) apply(o *Order) { o.Status, o.PaidAt = statusPaid, e.PaidAt }

func (e orderShipped) apply(o *Order) {
	o.Status, o.ShippedAt, o.Tracking = statusShipped, e.ShippedAt, e.Tracking
}

func (e orderPlaced) item(opts *spool.EventOptions) spool.EventItem {
	return OrderPlaced.Event(e, opts)
}

func (e orderPaid) item(opts *spool.EventOptions) spool.EventItem { return OrderPaid.Event(e, opts) }

func (e orderShipped) item(opts *spool.EventOptions) spool.EventItem {
	return OrderShipped.Event(e, opts)
}

type status string

const (
	statusPlaced  status = "placed"
	statusPaid    status = "paid"
	statusShipped status = "shipped"
)

// Order is the aggregate. Its state is kept in the table orders (no
// snapshots, no replay to load it); its events are the outbox of that
// state, appended in the same transaction.
type Order struct {
	ID         string
	Customer   string
	Lines      []line
	TotalCents int64
	Status     status // "" while the order does not exist
	PlacedAt   time.Time
	PaidAt     time.Time
	ShippedAt  time.Time
	Tracking   string
	// Version is the version of the order's event stream this state
	// reflects: the number of its events, 0 before the first.
	Version int64
}

// Domain errors: the command was refused and nothing was written.
var (
	errOrderExists    = errors.New("order exists already")
	errNoSuchOrder    = errors.New("no such order")
	errEmptyOrder     = errors.New("an order needs at least one line")
	errAlreadyPaid    = errors.New("order is paid already")
	errWrongAmount    = errors.New("payment does not match the order's total")
	errNotPaid        = errors.New("order is not paid")
	errAlreadyShipped = errors.New("order is shipped already")
)

// Commands.
type (
	placeOrder struct {
		OrderID, Customer string
		Lines             []line
		At                time.Time
	}
	payOrder struct {
		OrderID, PaymentRef string
		AmountCents         int64
		At                  time.Time
	}
	shipOrder struct {
		OrderID, Tracking string
		At                time.Time
	}
)

// The decisions: given the current state and a command, the events to
// record, or why not. They write nothing.

func (o *Order) place(c placeOrder) ([]event, error) {
	if o.Status != "" {
		return nil, errOrderExists
	}
	if len(c.Lines) == 0 {
		return nil, errEmptyOrder
	}
	var total int64
	for _, l := range c.Lines {
		total += int64(l.Qty) * l.PriceCents
	}
	return []event{orderPlaced{OrderID: c.OrderID, Customer: c.Customer, Lines: c.Lines, TotalCents: total, PlacedAt: c.At}}, nil
}

func (o *Order) pay(c payOrder) ([]event, error) {
	switch {
	case o.Status == "":
		return nil, errNoSuchOrder
	case o.Status != statusPlaced:
		return nil, errAlreadyPaid
	case c.AmountCents != o.TotalCents:
		return nil, errWrongAmount
	}
	return []event{orderPaid{OrderID: o.ID, AmountCents: c.AmountCents, PaymentRef: c.PaymentRef, PaidAt: c.At}}, nil
}

func (o *Order) ship(c shipOrder) ([]event, error) {
	switch o.Status {
	case "":
		return nil, errNoSuchOrder
	case statusPlaced:
		return nil, errNotPaid
	case statusShipped:
		return nil, errAlreadyShipped
	}
	return []event{orderShipped{OrderID: o.ID, Tracking: c.Tracking, ShippedAt: c.At}}, nil
}

// orderService handles the commands: load the order from its table,
// decide, then save the new state and append its events in one
// transaction on the application's own *sql.DB (the same SQLite file as
// Spool's).
type orderService struct {
	db     *sql.DB
	client *spool.Client
}

// attemptHooks let the demo watch a command's attempts; nil fields do nothing.
type attemptHooks struct {
	// beforeSave runs after the order was loaded and the decision made,
	// before it is saved: where another writer may slip in.
	beforeSave func(attempt int, loaded *Order)
	// onConflict reports a save refused because the stream moved on.
	onConflict func(attempt int, loaded *Order, err error)
}

// maxAttempts bounds the reload-and-retry loop of one command.
const maxAttempts = 5

func (s *orderService) PlaceOrder(ctx context.Context, c placeOrder, h *attemptHooks) (*Order, error) {
	return s.execute(ctx, c.OrderID, func(o *Order) ([]event, error) { return o.place(c) }, h)
}

func (s *orderService) PayOrder(ctx context.Context, c payOrder, h *attemptHooks) (*Order, error) {
	return s.execute(ctx, c.OrderID, func(o *Order) ([]event, error) { return o.pay(c) }, h)
}

func (s *orderService) ShipOrder(ctx context.Context, c shipOrder, h *attemptHooks) (*Order, error) {
	return s.execute(ctx, c.OrderID, func(o *Order) ([]event, error) { return o.ship(c) }, h)
}

// execute runs one command with optimistic concurrency: the order is read
// without a lock, and the save only succeeds if the order's stream is still
// at the version that was read. If another writer got there first, the
// save fails with spool.ErrConflict and the command starts over from a
// fresh load, deciding anew on the state as it now is.
func (s *orderService) execute(ctx context.Context, id string, decide func(*Order) ([]event, error), h *attemptHooks) (*Order, error) {
	if h == nil {
		h = &attemptHooks{}
	}
	for attempt := 1; ; attempt++ {
		o, err := s.load(ctx, id)
		if err != nil {
			return nil, err
		}
		evs, err := decide(o)
		if err != nil {
			return o, err
		}
		if h.beforeSave != nil {
			h.beforeSave(attempt, o)
		}
		saved, err := s.save(ctx, o, evs)
		if errors.Is(err, spool.ErrConflict) && attempt < maxAttempts {
			if h.onConflict != nil {
				h.onConflict(attempt, o, err)
			}
			continue
		}
		return saved, err
	}
}

// load reads an order's state. A missing order is the zero Order with its
// ID (version 0): PlaceOrder creates it.
func (s *orderService) load(ctx context.Context, id string) (*Order, error) {
	o := &Order{ID: id}
	var lines string
	var placed, paid, shipped, tracking sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT customer, lines, total_cents, status, placed_at, paid_at, shipped_at, tracking, version
		FROM orders WHERE id = ?`, id).Scan(&o.Customer, &lines, &o.TotalCents, &o.Status, &placed, &paid, &shipped, &tracking, &o.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return o, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load order %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(lines), &o.Lines); err != nil {
		return nil, fmt.Errorf("load order %s: lines: %w", id, err)
	}
	o.PlacedAt, o.PaidAt, o.ShippedAt = parseTime(placed), parseTime(paid), parseTime(shipped)
	o.Tracking = tracking.String
	return o, nil
}

// save writes the state after evs and appends evs to the order's stream,
// at the version the state was loaded at, in one transaction: both commit
// or neither does, so no event is lost or published for a state that was
// not saved (the outbox pattern, without a relay: the events are in
// Spool's log the moment the transaction commits).
func (s *orderService) save(ctx context.Context, loaded *Order, evs []event) (*Order, error) {
	next := *loaded
	items := make([]spool.EventItem, len(evs))
	for i, e := range evs {
		e.apply(&next)
		items[i] = e.item(&spool.EventOptions{Key: loaded.ID})
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	// The expected version is the one the state was loaded at (0 is
	// spool.NoStream: the order must not exist yet). If another writer
	// appended since, nothing is written and the error matches
	// spool.ErrConflict.
	res, err := s.client.AppendTx(ctx, tx, topic, loaded.ID, loaded.Version, items...)
	if err != nil {
		return nil, fmt.Errorf("save order %s: %w", loaded.ID, err)
	}
	next.Version = res[len(res)-1].Version

	lines, err := json.Marshal(next.Lines)
	if err != nil {
		return nil, err
	}
	var r sql.Result
	if loaded.Version == 0 {
		r, err = tx.ExecContext(ctx, `INSERT INTO orders (id, customer, lines, total_cents, status, placed_at, paid_at, shipped_at, tracking, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, next.ID, next.Customer, string(lines), next.TotalCents, next.Status,
			formatTime(next.PlacedAt), formatTime(next.PaidAt), formatTime(next.ShippedAt), nullString(next.Tracking), next.Version)
	} else {
		r, err = tx.ExecContext(ctx, `UPDATE orders SET status = ?, paid_at = ?, shipped_at = ?, tracking = ?, version = ?
			WHERE id = ? AND version = ?`, next.Status, formatTime(next.PaidAt), formatTime(next.ShippedAt), nullString(next.Tracking),
			next.Version, next.ID, loaded.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("save order %s: %w", loaded.ID, err)
	}
	// The append's version check already guarantees this row is at the
	// loaded version; the WHERE clause states it again for the table.
	if n, err := r.RowsAffected(); err != nil {
		return nil, err
	} else if n != 1 {
		return nil, fmt.Errorf("save order %s: the state row is not at version %d", loaded.ID, loaded.Version)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("save order %s: %w", loaded.ID, err)
	}
	return &next, nil
}

// Times are kept as RFC 3339 text in UTC; the zero time as NULL.
func formatTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return timeText(t)
}

func timeText(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func parseTime(s sql.NullString) time.Time {
	if !s.Valid {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, s.String)
	return t
}
