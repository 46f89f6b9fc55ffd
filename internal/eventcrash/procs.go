package eventcrash

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/spoolrun/spool"
)

// SQL reaches the application's tables on the store's database: Orders, a
// row per event published in a transaction, inserted in that transaction;
// and Effects, the mailer's effects, a row per event it handled for the
// first time, inserted in the transaction of its inbox mark.
type SQL struct {
	DB      *sql.DB
	Orders  string // table names, qualified as the database needs
	Effects string
	Dollar  bool // placeholders are $1, $2... (PostgreSQL) rather than ?
}

func (s SQL) q(query string) string {
	if !s.Dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// CreateTables creates the tables.
func (s SQL) CreateTables(ctx context.Context) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + s.Orders + ` (event_id TEXT PRIMARY KEY, proc TEXT NOT NULL)`,
		// No key: an effect done twice shows as two rows.
		`CREATE TABLE IF NOT EXISTS ` + s.Effects + ` (event_id TEXT NOT NULL, proc TEXT NOT NULL, deliveries INTEGER NOT NULL)`,
	} {
		if _, err := s.DB.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// ReadOrders returns the event IDs of the orders table.
func (s SQL) ReadOrders(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := s.scan(ctx, `SELECT event_id FROM `+s.Orders, func(id string) { out[id] = true })
	return out, err
}

// ReadEffects counts the effects table's rows per event ID.
func (s SQL) ReadEffects(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	err := s.scan(ctx, `SELECT event_id FROM `+s.Effects, func(id string) { out[id]++ })
	return out, err
}

func (s SQL) scan(ctx context.Context, query string, row func(id string)) error {
	rows, err := s.DB.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		row(id)
	}
	return rows.Err()
}

// Publisher publishes the workload's events until its context ends.
type Publisher struct {
	Client *spool.Client
	// SQL is where PublishTx transactions run; with SQL.DB nil the
	// publisher uses Publish only.
	SQL  SQL
	Log  *Log
	Proc string // the process's name, unique in the run; event IDs start with it
	Seed uint64 // with Proc, decides everything the publisher publishes
	Rate int    // events per second
}

// Run publishes batches of events until ctx ends. It returns nil then, and
// the first error of a publish otherwise: a publisher of this workload has
// no business failing.
func (p *Publisher) Run(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(p.Seed, uint64(hash(p.Proc))))
	start := time.Now()
	seq := 0
	for ctx.Err() == nil {
		n := 1 + rng.IntN(3)
		items := make([]spool.EventItem, n)
		ids := make([]string, n)
		for i := range items {
			seq++
			ids[i] = p.Proc + "-" + strconv.Itoa(seq)
			kind := KindPlaced
			switch k := rng.IntN(20); {
			case k >= 17:
				kind = KindNoise
			case k >= 10:
				kind = KindPaid
			}
			opts := &spool.EventOptions{ID: ids[i]}
			if rng.IntN(4) != 0 {
				opts.Key = "k" + strconv.Itoa(rng.IntN(Keys))
			}
			items[i] = spool.RawEvent(kind, []byte(`{"seq":`+strconv.Itoa(seq)+`}`), opts)
		}
		path := PathPublish
		if p.SQL.DB != nil {
			switch r := rng.IntN(10); {
			case r >= 8:
				path = PathRollback
			case r >= 4:
				path = PathTx
			}
		}
		if err := p.publish(ctx, path, ids, items); err != nil && ctx.Err() == nil {
			return fmt.Errorf("publish %v (%s): %w", ids, path, err)
		}
		// Pace to the rate: the event numbered seq is due at seq/Rate.
		if wait := time.Until(start.Add(time.Duration(float64(seq) / float64(p.Rate) * float64(time.Second)))); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	return nil
}

func (p *Publisher) write(tag byte, ids []string, note string) error {
	for _, id := range ids {
		if err := p.Log.Write(Record{Tag: tag, Proc: p.Proc, ID: id, Note: note}); err != nil {
			return err
		}
	}
	return nil
}

func (p *Publisher) publish(ctx context.Context, path string, ids []string, items []spool.EventItem) error {
	if err := p.write(TagIntent, ids, path); err != nil {
		return err
	}
	if path == PathPublish {
		if _, err := p.Client.Publish(ctx, Topic, items...); err != nil {
			return err
		}
		return p.write(TagAck, ids, path)
	}
	tx, err := p.SQL.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, p.SQL.q(`INSERT INTO `+p.SQL.Orders+` (event_id, proc) VALUES (?, ?)`), id, p.Proc); err != nil {
			return err
		}
	}
	if _, err := p.Client.PublishTx(ctx, tx, Topic, items...); err != nil {
		return err
	}
	if path == PathRollback {
		if err := p.write(TagRollback, ids, path); err != nil {
			return err
		}
		return tx.Rollback()
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return p.write(TagAck, ids, path)
}

// Subscriber is the handlers of a worker process.
type Subscriber struct {
	Log  *Log
	Proc string // the process's name, unique in the run
	// SQL is where the mailer's inbox transactions run; with SQL.DB nil
	// the mailer only records its events.
	SQL SQL
}

// errPlanned is the failure a handler returns on purpose.
var errPlanned = errors.New("eventcrash: planned failure")

// Register makes w work the three subscriptions with opts.
func (s *Subscriber) Register(w *spool.Worker, opts *spool.SubscribeOptions) {
	work := func(ctx context.Context, e *spool.Event[json.RawMessage]) (string, error) {
		// A moment of work, so that kills find handlers running.
		d := time.Duration(hash(e.Subscription+e.ID)%4) * time.Millisecond
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return "", nil
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	}
	spool.Subscribe(w, Topic, Audit, s.handler(Audit, work), opts)
	spool.Subscribe(w, Topic, Ledger, s.handler(Ledger, work), opts)
	spool.Subscribe(w, Topic, Mailer, s.handler(Mailer, s.mail), opts)
}

// handler records the start of a handling, runs body, fails as planned,
// and records the outcome.
func (s *Subscriber) handler(sub string, body func(ctx context.Context, e *spool.Event[json.RawMessage]) (string, error)) func(ctx context.Context, e *spool.Event[json.RawMessage]) error {
	return func(ctx context.Context, e *spool.Event[json.RawMessage]) error {
		rec := Record{Tag: TagStart, Proc: s.Proc, Sub: sub, ID: e.ID, Pos: e.Position, Key: e.Key, Version: e.Version,
			Job: e.Delivery.ID.String(), Deliveries: e.Delivery.Deliveries, Attempts: e.Delivery.Attempts}
		if err := s.Log.Write(rec); err != nil {
			return err
		}
		note, err := body(ctx, e)
		if err == nil && e.Delivery.Attempts < failures(sub, e.ID) {
			note, err = "planned", errPlanned
		}
		rec.Tag, rec.Note = TagEnd, note
		if err != nil {
			rec.Tag = TagFail
			if rec.Note == "" {
				rec.Note = strings.Join(strings.Fields(err.Error()), "_")
				rec.Note = rec.Note[:min(len(rec.Note), 40)]
			}
		}
		return errors.Join(err, s.Log.Write(rec))
	}
}

// mail is the mailer's work: the inbox mark and, the first time, the
// effect, in one transaction.
func (s *Subscriber) mail(ctx context.Context, e *spool.Event[json.RawMessage]) (string, error) {
	if s.SQL.DB == nil {
		return "noinbox", nil
	}
	tx, err := s.SQL.DB.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	first, err := e.MarkSeen(ctx, tx)
	if err != nil {
		return "", err
	}
	note := "seen"
	if first {
		note = "new"
		if _, err := tx.ExecContext(ctx, s.SQL.q(`INSERT INTO `+s.SQL.Effects+` (event_id, proc, deliveries) VALUES (?, ?, ?)`),
			e.ID, s.Proc, e.Delivery.Deliveries); err != nil {
			return "", err
		}
	}
	return note, tx.Commit()
}
