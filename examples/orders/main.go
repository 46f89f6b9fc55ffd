// Command orders is the classic domain-event story on Spool: an Order
// aggregate whose commands save its state and append its events in one
// transaction, and three subscribers that each go at their own pace (a
// flaky e-mail sender, a read model, analytics), then a rebuild of the read
// model from the log that sends no e-mail again.
//
//	go run ./examples/orders [-orders 200] [-db PATH] [-outage 2s]
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store/sqlite"
)

func main() {
	var opts options
	flag.StringVar(&opts.DB, "db", "", "the SQLite file to create (default: one in a temporary directory, removed at the end)")
	flag.IntVar(&opts.Orders, "orders", 200, "how many orders to place")
	flag.DurationVar(&opts.Outage, "outage", 2*time.Second, "how long the mail server is down at least")
	flag.Parse()
	if err := runMain(opts); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// runMain runs the story until it ends or is interrupted.
func runMain(opts options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return run(ctx, os.Stdout, opts)
}

type options struct {
	DB     string        // the database file to create; "" for a temporary one
	Orders int           // orders to place
	Outage time.Duration // the mail server is down at least this long from the start
	// result, when not nil, receives the figures of the run (for the test).
	result *result
}

// result is what a run did, for the test to check.
type result struct {
	Day0                  time.Time // the day the orders were placed up to
	Orders, Paid, Shipped int
	Events                int64 // events in the topic
	// The race of two payments of one order.
	RaceConflicts int   // saves refused with ErrConflict
	RaceOutcome   error // what the second writer's retry decided
	// E-mails.
	EmailLagWhileDown spool.Lag      // the email subscription while the others were current
	EmailsRefused     int            // attempts the mail server refused
	Emails            map[string]int // e-mails sent per order, before the rebuild
	EmailsAfter       map[string]int // and after it
	// The read model before and after its rebuild, and the write model's view.
	Before, After, WriteModel []summary
	RebuildGeneration         int64
	// Analytics and the revenue per day the orders table says.
	Payments        int
	Revenue, Wanted map[string]int64
}

// waitLimit bounds every wait of a run.
const waitLimit = 2 * time.Minute

func run(ctx context.Context, out io.Writer, opts options) (err error) {
	if opts.Orders < 1 {
		return errors.New("-orders must be at least 1")
	}
	res := opts.result
	if res == nil {
		res = &result{}
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }

	// One SQLite file holds Spool's tables and the application's.
	path := opts.DB
	if path == "" {
		dir, err := os.MkdirTemp("", "spool-orders-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "orders.db")
	} else if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists: give -db the path of a new file", path)
	}
	st, err := sqlite.Open(path, sqlite.Config{}) //nolint:contextcheck // Open takes no context
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		return err
	}
	// The application's own connections to the same file, with the pragmas
	// Spool needs: their transactions carry AppendTx and MarkSeen.
	db, err := sql.Open("sqlite", sqlite.DSN(path, 10*time.Second))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, ordersSchema+projectionSchema); err != nil {
		return fmt.Errorf("create the application's tables: %w", err)
	}
	say("Database: %s", path)

	for _, p := range subscriptions() {
		if _, err := client.Subscriptions().Create(ctx, p); err != nil {
			return err
		}
	}
	mail, an := newMailer(), newAnalytics()
	proj := &projection{db: db, client: client}
	w, err := spool.NewWorker(spool.WorkerConfig{Store: st, Queues: map[string]spool.QueueConfig{}, PollInterval: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	spool.SubscribeKind(w, topic, "email", OrderPlaced, handleEmail(mail), &spool.SubscribeOptions{Concurrency: 8})
	projOpts := &spool.SubscribeOptions{Concurrency: 4}
	spool.SubscribeKind(w, topic, "projection", OrderPlaced, proj.placed, projOpts)
	spool.SubscribeKind(w, topic, "projection", OrderPaid, proj.paid, projOpts)
	spool.SubscribeKind(w, topic, "projection", OrderShipped, proj.shipped, projOpts)
	spool.SubscribeKind(w, topic, "analytics", OrderPaid, an.handle, nil)
	if err := w.Start(ctx); err != nil {
		return err
	}
	outageStart := time.Now()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, w.Stop(sctx))
	}()
	say("Subscriptions on %q: email (order.placed, retried after 50ms..1s), projection (ordered), analytics (order.paid only)", topic)
	say("The mail server is down: every e-mail fails until further notice.")

	// 1. The commands.
	svc := &orderService{db: db, client: client}
	day0 := time.Now().UTC().Truncate(24 * time.Hour)
	res.Day0 = day0
	first := newOrder(0, day0)
	if _, err := svc.PlaceOrder(ctx, first.place, nil); err != nil {
		return err
	}
	if err := race(ctx, svc, first, res, say); err != nil {
		return err
	}
	if first.ship != nil {
		if _, err := svc.ShipOrder(ctx, *first.ship, nil); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := placeOrders(ctx, svc, day0, opts.Orders); err != nil {
		return err
	}
	for i := range opts.Orders {
		o := newOrder(i, day0)
		res.Orders++
		if o.pay != nil {
			res.Paid++
		}
		if o.ship != nil {
			res.Shipped++
		}
	}
	events := int64(res.Orders + res.Paid + res.Shipped)
	say("Placed %d orders (%d paid, %d shipped): %d events appended with their orders' rows in %v.",
		res.Orders, res.Paid, res.Shipped, events, since(t0))

	// 2. The projection and analytics keep up while e-mail fails.
	var lags map[string]spool.Lag
	last := ""
	err = waitUntil(ctx, 500*time.Millisecond, func() (bool, error) {
		if lags, err = subscriptionLags(ctx, client); err != nil {
			return false, err
		}
		_, refused, tried := mail.stats()
		line := fmt.Sprintf("  projection behind %d | analytics behind %d | email behind %d (%d pending, %d dead), %d attempts refused",
			lags["projection"].Behind, lags["analytics"].Behind, lags["email"].Behind, lags["email"].Pending, lags["email"].Dead, refused)
		if line != last {
			say("%s", line)
			last = line
		}
		// Done when the others are current, and every e-mail was routed
		// and has failed at least once.
		return lags["projection"].Head == events && lags["projection"].Behind == 0 && lags["analytics"].Behind == 0 &&
			lags["email"].Unrouted == 0 && tried == res.Orders && time.Since(outageStart) >= opts.Outage, nil
	})
	if err != nil {
		return err
	}
	res.EmailLagWhileDown = lags["email"]
	sent, refused, _ := mail.stats()
	payments, _ := an.snapshot()
	rows, err := proj.summaries(ctx)
	if err != nil {
		return err
	}
	say("Projection (%d rows) and analytics (%d payments) are current; email is %d behind, oldest waiting %v, %d sent, %d attempts refused.",
		len(rows), payments, res.EmailLagWhileDown.Behind, res.EmailLagWhileDown.OldestAge.Round(time.Millisecond), sent, refused)

	// 3. The mail server comes back; the e-mail deliveries, retried with
	// their backoff, go through.
	mail.setDown(false)
	t0 = time.Now()
	say("The mail server is back after %v.", since(outageStart))
	if err := waitCaughtUp(ctx, client, "email"); err != nil {
		return err
	}
	res.Emails = mail.perOrder()
	sent, res.EmailsRefused, _ = mail.stats()
	say("Email caught up in %v: %d e-mails for %d orders, after %d refused attempts; %s.",
		since(t0), sent, len(res.Emails), res.EmailsRefused, onePerOrder(res.Emails, res.Orders))

	// 4. Check the read model and analytics against the write model.
	if res.WriteModel, res.Wanted, err = writeModel(ctx, db); err != nil {
		return err
	}
	if res.Before, err = proj.summaries(ctx); err != nil {
		return err
	}
	say("Read model: %d rows, %s.", len(res.Before), sameRows(res.Before, res.WriteModel, "the orders table"))
	res.Payments, res.Revenue = an.snapshot()
	for _, day := range slices.Sorted(maps.Keys(res.Wanted)) {
		say("  revenue %s: %s (from the orders table: %s)", day, cents(res.Revenue[day]), cents(res.Wanted[day]))
	}

	// 5. Rebuild the projection from the log, as after a change to its
	// code or schema. Pause it so that nothing is applied between the reset
	// and the rewind (no command runs now, so nothing is in flight; with
	// live traffic, wait for its running deliveries to finish too), empty
	// the read model and start a new inbox generation, rewind the
	// subscription to the first event, and resume. Only this subscription
	// moves: email and analytics keep their cursors and see nothing again.
	if err := client.Subscriptions().Pause(ctx, topic, "projection"); err != nil {
		return err
	}
	if res.RebuildGeneration, err = proj.reset(ctx); err != nil {
		return err
	}
	t0 = time.Now()
	sub, err := client.Subscriptions().Rewind(ctx, topic, "projection", spool.FromStart)
	if err != nil {
		return err
	}
	if err := client.Subscriptions().Resume(ctx, topic, "projection"); err != nil {
		return err
	}
	say("Rebuild: emptied order_summaries (inbox generation %d), rewound the projection to the start: %d events to replay.",
		res.RebuildGeneration, sub.Lag.Behind)
	if err := waitCaughtUp(ctx, client, "projection"); err != nil {
		return err
	}
	if res.After, err = proj.summaries(ctx); err != nil {
		return err
	}
	res.EmailsAfter = mail.perOrder()
	res.Events = sub.Lag.Head
	sentAfter, _, _ := mail.stats()
	say("Rebuilt %d rows from %d events in %v: %s.", len(res.After), res.Events, since(t0), sameRows(res.After, res.Before, "the read model before"))
	say("E-mails sent during the rebuild: %d (still %d in all).", sentAfter-sent, sentAfter)

	return check(res)
}

// check returns an error for each promise the run broke.
func check(res *result) error {
	var errs []error
	if res.RaceConflicts == 0 || !errors.Is(res.RaceOutcome, errAlreadyPaid) {
		errs = append(errs, fmt.Errorf("the race: %d conflicts, outcome %w", res.RaceConflicts, res.RaceOutcome))
	}
	if s := onePerOrder(res.Emails, res.Orders); s != "exactly one each" {
		errs = append(errs, fmt.Errorf("e-mails: %s", s))
	}
	if !maps.Equal(res.Emails, res.EmailsAfter) {
		errs = append(errs, errors.New("the rebuild sent e-mails"))
	}
	if !slices.Equal(res.Before, res.WriteModel) || !slices.Equal(res.After, res.Before) {
		errs = append(errs, errors.New("the read model differs from the orders table, or the rebuilt one from the first"))
	}
	if res.Payments != res.Paid || !maps.Equal(res.Revenue, res.Wanted) {
		errs = append(errs, fmt.Errorf("analytics counted %d payments, %v; want %d, %v", res.Payments, res.Revenue, res.Paid, res.Wanted))
	}
	return errors.Join(errs...)
}

// race pays order o twice at once, as two payment callbacks for one
// checkout would: writer A loads the order, and before it saves, writer B
// loads and pays it. A's append carries the version it loaded, which is
// stale now: it gets ErrConflict, reloads, and decides again on the paid
// order.
func race(ctx context.Context, svc *orderService, o plannedOrder, res *result, say func(string, ...any)) error {
	say("Two payment callbacks for %s arrive at once:", o.place.OrderID)
	var bErr error
	hooks := &attemptHooks{
		beforeSave: func(attempt int, loaded *Order) {
			if attempt != 1 {
				say("  writer A: reloaded %s at version %d (%s), decided again", loaded.ID, loaded.Version, loaded.Status)
				return
			}
			say("  writer A: loaded %s at version %d (%s), about to save the payment", loaded.ID, loaded.Version, loaded.Status)
			done := make(chan struct{})
			go func() { // writer B, on its own connection, slips in
				defer close(done)
				var saved *Order
				saved, bErr = svc.PayOrder(ctx, *o.pay, nil)
				if bErr == nil {
					say("  writer B: loaded version %d, saved the payment: stream at version %d", saved.Version-1, saved.Version)
				}
			}()
			<-done
		},
		onConflict: func(_ int, _ *Order, err error) {
			res.RaceConflicts++
			say("  writer A: refused, ErrConflict (%v)", err)
		},
	}
	second := *o.pay
	second.PaymentRef += "-retry"
	_, aErr := svc.PayOrder(ctx, second, hooks)
	if bErr != nil {
		return bErr
	}
	if !errors.Is(aErr, errAlreadyPaid) {
		return fmt.Errorf("writer A: %w, want %w", aErr, errAlreadyPaid)
	}
	res.RaceOutcome = aErr
	say("  writer A: %v: nothing appended, the customer is charged once", aErr)
	return nil
}

// plannedOrder is what happens to one order: placed, maybe paid, maybe shipped.
type plannedOrder struct {
	place placeOrder
	pay   *payOrder
	ship  *shipOrder
}

var customers = []string{"ada", "grace", "linus", "barbara", "ken", "margaret", "dennis", "frances"}

// newOrder is the i-th order of the run, the same every time: placed over
// the last three days, three in four paid, half of those shipped.
func newOrder(i int, day0 time.Time) plannedOrder {
	id := fmt.Sprintf("o-%04d", i+1)
	at := day0.AddDate(0, 0, -(i % 3)).Add(time.Duration(8*60+i%600) * time.Minute)
	var lines []line
	var total int64
	for k := range 1 + (i/3)%3 {
		l := line{SKU: fmt.Sprintf("SKU-%d", (i+k)%17), Qty: 1 + (i+k)%3, PriceCents: 499 + 250*int64((i*7+k)%9)}
		lines = append(lines, l)
		total += int64(l.Qty) * l.PriceCents
	}
	p := plannedOrder{place: placeOrder{OrderID: id, Customer: customers[i%len(customers)], Lines: lines, At: at}}
	if i%4 != 3 {
		p.pay = &payOrder{OrderID: id, PaymentRef: "pay-" + id, AmountCents: total, At: at.Add(30 * time.Minute)}
		if i%2 == 0 {
			p.ship = &shipOrder{OrderID: id, Tracking: "trk-" + id, At: at.Add(26 * time.Hour)}
		}
	}
	return p
}

// placeOrders runs the commands of orders 1..n-1 (order 0 is the race's),
// several orders at once as several clerks would.
func placeOrders(ctx context.Context, svc *orderService, day0 time.Time, n int) error {
	const clerks = 4
	next := make(chan int)
	errs := make([]error, clerks)
	var wg sync.WaitGroup
	for c := range clerks {
		wg.Go(func() {
			for i := range next {
				if errs[c] != nil {
					continue
				}
				o := newOrder(i, day0)
				_, err := svc.PlaceOrder(ctx, o.place, nil)
				if err == nil && o.pay != nil {
					_, err = svc.PayOrder(ctx, *o.pay, nil)
				}
				if err == nil && o.ship != nil {
					_, err = svc.ShipOrder(ctx, *o.ship, nil)
				}
				errs[c] = err
			}
		})
	}
	for i := 1; i < n && ctx.Err() == nil; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// subscriptionLags returns the lag of each subscription of the topic, by name.
func subscriptionLags(ctx context.Context, client *spool.Client) (map[string]spool.Lag, error) {
	subs, err := client.Subscriptions().List(ctx, topic)
	if err != nil {
		return nil, err
	}
	lags := map[string]spool.Lag{}
	for _, s := range subs {
		lags[s.Name] = s.Lag
	}
	return lags, nil
}

// waitCaughtUp waits until the subscription has handled every event of the
// topic. Behind counts deliveries until they are settled, so once it is
// zero every handler's transaction has committed.
func waitCaughtUp(ctx context.Context, client *spool.Client, name string) error {
	return waitUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		sub, err := client.Subscriptions().Get(ctx, topic, name)
		if err != nil {
			return false, err
		}
		if sub.Lag.Dead > 0 {
			return false, fmt.Errorf("subscription %s has %d dead letters", sub.Ref(), sub.Lag.Dead)
		}
		return sub.Lag.Behind == 0, nil
	})
}

// waitUntil calls cond every interval until it reports true or fails.
func waitUntil(ctx context.Context, every time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

const ordersSchema = `
CREATE TABLE IF NOT EXISTS orders (
	id          TEXT PRIMARY KEY,
	customer    TEXT NOT NULL,
	lines       TEXT NOT NULL, -- JSON
	total_cents INTEGER NOT NULL,
	status      TEXT NOT NULL,
	placed_at   TEXT NOT NULL,
	paid_at     TEXT,
	shipped_at  TEXT,
	tracking    TEXT,
	version     INTEGER NOT NULL -- the order's stream version
);`

// writeModel reads the orders table as the read model should show it, and
// the revenue per day of payment it implies.
func writeModel(ctx context.Context, db *sql.DB) ([]summary, map[string]int64, error) {
	ids, err := orderIDs(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	svc := &orderService{db: db}
	var out []summary
	revenue := map[string]int64{}
	for _, id := range ids {
		o, err := svc.load(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		s := summary{OrderID: o.ID, Customer: o.Customer, TotalCents: o.TotalCents, Status: string(o.Status),
			PlacedAt: timeText(o.PlacedAt), Version: o.Version}
		for _, l := range o.Lines {
			s.Items += l.Qty
		}
		if !o.PaidAt.IsZero() {
			s.PaidCents = o.TotalCents
			s.PaidAt = sql.NullString{String: timeText(o.PaidAt), Valid: true}
			revenue[o.PaidAt.UTC().Format(dayLayout)] += o.TotalCents
		}
		if !o.ShippedAt.IsZero() {
			s.ShippedAt = sql.NullString{String: timeText(o.ShippedAt), Valid: true}
			s.Tracking = sql.NullString{String: o.Tracking, Valid: true}
		}
		out = append(out, s)
	}
	return out, revenue, nil
}

func orderIDs(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT id FROM orders ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func onePerOrder(perOrder map[string]int, orders int) string {
	extra := 0
	for _, n := range perOrder {
		extra += n - 1
	}
	if len(perOrder) == orders && extra == 0 {
		return "exactly one each"
	}
	return fmt.Sprintf("%d of %d orders got one, %d extra", len(perOrder), orders, extra)
}

func sameRows(got, want []summary, what string) string {
	if slices.Equal(got, want) {
		return "identical to " + what
	}
	return "DIFFERENT from " + what
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
