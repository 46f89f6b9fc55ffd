package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
)

// TestScreenshots writes PNG screenshots of the dashboard's main pages
// into docs/screenshots (shown in the README), over a store seeded with
// an hour of work. It runs only with SPOOL_SCREENSHOTS=1:
//
//	SPOOL_SCREENSHOTS=1 go test ./server -run TestScreenshots
func TestScreenshots(t *testing.T) {
	if os.Getenv("SPOOL_SCREENSHOTS") != "1" {
		t.Skip("set SPOOL_SCREENSHOTS=1 to write docs/screenshots")
	}
	h := newHarness(t, server.Config{})
	dead := seedShowcase(t, h)
	u := h.browse(t)
	u.do(chromedp.EmulateViewport(1280, 900))
	u.login("acme/admin")
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := func(name, path, ready string) {
		t.Helper()
		u.open(path)
		u.waitFor(name+" ready", ready)
		png, err := chromedp.Run(u.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shot("overview", "/", `document.querySelector('svg.chart')`)
	shot("queue", "/jobs?queue=mail", `document.querySelector('tr[data-job]')`)
	shot("job", "/jobs/"+dead, `document.querySelector('#job-state')`)
	shot("dead-letters", "/dead", `document.querySelector('tr[data-job]')`)
	shot("schedules", "/schedules", `document.querySelector('main table')`)
	shot("schedule", "/schedule?id=nightly-invoices", `document.querySelector('#last-runs')`)
	shot("subscriptions", "/topics", `document.querySelector('table.subs')`)
	u.do(chromedp.Func(func(ctx2 context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx2, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}))
	shot("overview-dark", "/", `document.querySelector('svg.chart')`)
	u.do(chromedp.Func(func(ctx2 context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx2, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}})
		return err
	}))
	u.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	shot("overview-phone", "/", `document.querySelector('svg.chart')`)
}

// seedShowcase fills acme's part of h's store with what a busy hour
// leaves: queues in every state, a dead letter with a stack, schedules
// with runs, a topic with a lagging subscription, workers online, and an
// hour of per-minute activity. It returns the dead letter's ID.
func seedShowcase(t *testing.T, h *harness) string {
	t.Helper()
	h.clock.Advance(-time.Minute) // the store's clock moves below; it stays behind the real one
	h.enqueue(40, "mail", "send_welcome", "")
	h.enqueue(12, "billing", "charge_card", `, "max_attempts": 1`)
	h.enqueue(25, "reports", "render_pdf", `, "delay": "10m"`)
	h.enqueue(8, "webhooks", "deliver", "")
	for range 3 {
		h.work("mail", 9, "complete")
	}
	h.work("billing", 3, "fail")
	h.work("webhooks", 2, "complete")
	var claimed struct{ Jobs []jobView }
	h.must(200, "acme/worker", "POST", "/v1/queues/billing/claim", `{"limit": 1}`, &claimed)
	d := claimed.Jobs[0]
	h.must(200, "acme/worker", "POST", "/v1/settle", fmt.Sprintf(`{"verdicts": [{"id": %q, "lock_token": %q, "outcome": "dead_letter", "error": {"message": "card declined: insufficient funds (gateway code 51)", "stack": "goroutine 42 [running]:\nmain.chargeCard(0xc0001a2000)\n\t/app/billing/charge.go:88 +0x1f4\nmain.(*Handler).Work(...)\n\t/app/billing/handler.go:31 +0x9a"}}]}`, d.ID, d.LockToken), nil)
	h.must(200, "acme/worker", "POST", "/v1/queues/billing/claim", `{"limit": 2}`, nil) // two running
	h.must(200, "acme/worker", "POST", "/v1/queues/mail/claim", `{"limit": 3}`, nil)
	for _, s := range []string{
		`{"id": "nightly-invoices", "spec": "0 2 * * *", "zone": "Europe/Paris", "kind": "send_invoices", "queue": "invoices", "payload": {"batch": 500}}`,
		`{"id": "hourly-digest", "spec": "@hourly", "kind": "digest", "queue": "mail"}`,
		`{"id": "refresh-rates", "spec": "@every 15m", "kind": "fx_rates", "queue": "reports"}`,
		`{"id": "quarterly-audit", "spec": "0 9 1 */3 *", "kind": "audit", "queue": "reports", "paused": true}`,
	} {
		h.must(201, "acme/admin", "POST", "/v1/schedules", s, nil)
	}
	for range 3 {
		h.must(201, "acme/admin", "POST", "/v1/schedules/nightly-invoices/trigger", "", nil)
		h.work("invoices", 1, "complete")
		h.clock.Advance(time.Second) // a trigger's slot is its second
	}
	h.must(201, "acme/admin", "PUT", "/v1/topics/orders/subscriptions/billing", `{}`, nil)
	h.must(201, "acme/admin", "PUT", "/v1/topics/orders/subscriptions/analytics", `{"kinds": ["order_placed"]}`, nil)
	for i := range 30 {
		h.must(201, "acme/producer", "POST", "/v1/topics/orders/events", fmt.Sprintf(`{"kind": "order_placed", "key": "o-%d", "payload": {"total": %d}}`, i, 10+i), nil)
	}
	h.must(200, "acme/worker", "POST", "/v1/queues/sub%2Forders%2Fbilling/claim", `{"limit": 1}`, nil)
	for i, q := range [][]string{{"mail", "webhooks"}, {"billing", "reports"}} {
		h.must(200, "acme/worker", "POST", "/v1/workers/heartbeat",
			fmt.Sprintf(`{"id": "worker-%d", "host": "app-%d", "pid": %d, "version": "v0.9.0", "ttl_seconds": 3600, "queues": ["%s", "%s"], "busy": %d, "slots": 8}`, i+1, i+1, 4100+i, q[0], q[1], 3+i), nil)
	}
	ds, ok := h.st.(*dashStore)
	if !ok {
		return d.ID
	}
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	for m := 59; m >= 0; m-- {
		var rows []store.QueueActivity
		for qi, q := range []string{"acme/mail", "acme/billing", "acme/webhooks"} {
			wave := 1 + 0.6*float64((m/7+qi)%3)
			a := store.QueueActivity{Queue: q, Completed: int64(float64(40+r.IntN(30)) * wave / float64(qi+1))}
			if r.IntN(4) == 0 {
				a.Failed = int64(r.IntN(6))
			}
			if r.IntN(15) == 0 {
				a.Dead = 1
			}
			for i := range int(a.Completed) {
				b := 2 + r.IntN(4)
				if i%20 == 0 {
					b = 7 + r.IntN(3)
				}
				a.Pickup[b]++
			}
			rows = append(rows, a)
		}
		ds.addActivityAt(now.Add(-time.Duration(m)*time.Minute), rows)
	}
	return d.ID
}
