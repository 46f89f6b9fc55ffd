package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store/sqlite"
)

// TestRun runs the whole story on a few orders and checks its outcome
// against what the orders were meant to be, not against timing.
func TestRun(t *testing.T) {
	const n = 8
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "orders.db")
	var res result
	var out bytes.Buffer
	err := run(ctx, &out, options{DB: path, Orders: n, result: &res})
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}

	// What the orders were meant to be.
	paid, shipped := 0, 0
	revenue := map[string]int64{}
	for i := range n {
		o := newOrder(i, res.Day0)
		if o.pay != nil {
			paid++
			revenue[o.pay.At.Format(dayLayout)] += o.pay.AmountCents
		}
		if o.ship != nil {
			shipped++
		}
	}
	if res.Orders != n || res.Paid != paid || res.Shipped != shipped || res.Events != int64(n+paid+shipped) {
		t.Errorf("orders %d, paid %d, shipped %d, events %d; want %d, %d, %d, %d",
			res.Orders, res.Paid, res.Shipped, res.Events, n, paid, shipped, n+paid+shipped)
	}

	// The stale writer got ErrConflict once, reloaded, and found the order paid.
	if res.RaceConflicts != 1 || !errors.Is(res.RaceOutcome, errAlreadyPaid) {
		t.Errorf("the race: %d conflicts, outcome %v; want 1 and %v", res.RaceConflicts, res.RaceOutcome, errAlreadyPaid)
	}

	// E-mail: every one failed while the others caught up, then exactly one
	// per order went out, and none during the rebuild.
	if lag := res.EmailLagWhileDown; lag.Behind != n || lag.Pending != n || res.EmailsRefused < n {
		t.Errorf("while the mail server was down: email lag %+v, %d refused; want %d behind and pending, at least %d refused",
			res.EmailLagWhileDown, res.EmailsRefused, n, n)
	}
	for i := range n {
		id := fmt.Sprintf("o-%04d", i+1)
		if res.Emails[id] != 1 {
			t.Errorf("order %s got %d e-mails, want 1", id, res.Emails[id])
		}
	}
	if len(res.Emails) != n || !maps.Equal(res.EmailsAfter, res.Emails) {
		t.Errorf("e-mails before the rebuild %v, after %v; want one per order, unchanged", res.Emails, res.EmailsAfter)
	}

	// The read model matched the orders table, and its rebuild matched it.
	if len(res.Before) != n || !slices.Equal(res.Before, res.WriteModel) {
		t.Errorf("read model %+v\nwant %+v", res.Before, res.WriteModel)
	}
	if !slices.Equal(res.After, res.Before) || res.RebuildGeneration != 2 {
		t.Errorf("rebuilt read model (generation %d) %+v\nwant %+v", res.RebuildGeneration, res.After, res.Before)
	}

	// Analytics counted each payment once.
	if res.Payments != paid || !maps.Equal(res.Revenue, revenue) {
		t.Errorf("analytics: %d payments, revenue %v; want %d, %v", res.Payments, res.Revenue, paid, revenue)
	}

	// In the log, the raced order has one payment: placed, paid, shipped.
	st, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	client, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	page, err := client.ReadEvents(ctx, spool.ReadEventsParams{Topic: topic, Key: "o-0001"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range page.Events {
		kinds = append(kinds, fmt.Sprintf("%d:%s", e.Version, e.Kind))
	}
	if got, want := strings.Join(kinds, " "), "1:order.placed 2:order.paid 3:order.shipped"; got != want {
		t.Errorf("stream o-0001: %s, want %s", got, want)
	}
}

func TestRunRefusesAnExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), &bytes.Buffer{}, options{DB: path, Orders: 1}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("run on an existing file: %v", err)
	}
}
