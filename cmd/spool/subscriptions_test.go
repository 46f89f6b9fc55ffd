package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// createdSubscription is the --json output of subscriptions add.
type createdSubscription struct {
	wire.Subscription
	Created bool `json:"created"`
}

func TestSubscriptionsLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for range 3 {
		f.ok("publish", "orders", "--kind", "order.placed", "--payload", "{}")
	}

	var added createdSubscription
	f.okJSON(&added, "subscriptions", "add", "orders", "mail", "--from", "start", "--kinds", "order.placed,order.paid",
		"--ordered", "--max-attempts", "3", "--max-deliveries", "4", "--lock-for", "10s", "--retry-base", "2s", "--retry-max", "1m")
	want := wire.Subscription{Topic: "orders", Name: "mail", Queue: "sub/orders/mail", Kinds: []string{"order.paid", "order.placed"},
		Ordered: true, LockForSeconds: 10, MaxAttempts: 3, MaxDeliveries: 4, RetryBaseSeconds: 2, RetryMaxSeconds: 60}
	got := added.Subscription
	if !added.Created || got.Topic != want.Topic || got.Name != want.Name || got.Queue != want.Queue ||
		strings.Join(got.Kinds, ",") != strings.Join(want.Kinds, ",") || !got.Ordered || got.LockForSeconds != 10 ||
		got.MaxAttempts != 3 || got.MaxDeliveries != 4 || got.RetryBaseSeconds != 2 || got.RetryMaxSeconds != 60 ||
		got.Cursor != 0 || got.Lag.Head != 3 || got.Lag.Behind != 3 {
		t.Fatalf("subscriptions add --json = %+v", added)
	}
	// The same definition again: nothing changes; another: exit 3.
	f.okJSON(&added, "subscriptions", "add", "orders", "mail", "--from", "start", "--kinds", "order.placed,order.paid",
		"--ordered", "--max-attempts", "3", "--max-deliveries", "4", "--lock-for", "10s", "--retry-base", "2s", "--retry-max", "1m")
	if added.Created {
		t.Fatal("adding the same subscription again created it")
	}
	r := f.fails(exitConflict, "subscriptions", "add", "orders", "mail")
	if !strings.Contains(r.stderr, "another definition") {
		t.Fatalf("add with another definition: stderr %q", r.stderr)
	}
	// Text output; --from now starts after the head.
	if out := f.ok("subscriptions", "add", "orders", "audit"); out != "created subscription orders/audit: its first event is position 4 (the topic's head is 3)\n" {
		t.Fatalf("add printed %q", out)
	}
	f.ok("subscriptions", "add", "users", "welcome", "--from", "2")

	// list: every topic's, or one topic's; table and JSON.
	var list struct {
		Subscriptions []wire.Subscription `json:"subscriptions"`
	}
	f.okJSON(&list, "subscriptions", "list")
	if len(list.Subscriptions) != 3 {
		t.Fatalf("subscriptions list: %+v", list)
	}
	f.okJSON(&list, "subscriptions", "list", "orders")
	if len(list.Subscriptions) != 2 || list.Subscriptions[0].Name != "audit" || list.Subscriptions[1].Name != "mail" ||
		list.Subscriptions[0].Lag.Behind != 0 || list.Subscriptions[1].Lag.Behind != 3 {
		t.Fatalf("subscriptions list orders: %+v", list)
	}
	if out := f.ok("subscriptions", "list"); !strings.Contains(out, "BEHIND") || !strings.Contains(out, "order.paid,order.placed") ||
		!strings.Contains(out, "welcome") {
		t.Fatalf("subscriptions list table:\n%s", out)
	}
	if r := f.run("subscriptions", "list", "nothing"); r.code != 0 || !strings.Contains(r.stderr, "no subscriptions") {
		t.Fatalf("subscriptions list of a topic without any: %+v", r)
	}

	// get: the definition and the lag.
	var sub wire.Subscription
	f.okJSON(&sub, "subscriptions", "get", "orders", "mail")
	if sub.Lag.Head != 3 || sub.Lag.Unrouted != 3 || sub.Lag.Behind != 3 || sub.Lag.OldestAgeSeconds <= 0 || sub.Lag.HoldsRetention {
		t.Fatalf("subscriptions get --json = %+v", sub)
	}
	out := f.ok("subscriptions", "get", "orders", "mail")
	for _, s := range []string{"Queue:", "sub/orders/mail", "Unrouted:", "Behind:", "Oldest age:", "order.paid,order.placed"} {
		if !strings.Contains(out, s) {
			t.Errorf("subscriptions get table lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("a subscription that holds nothing warns:\n%s", out)
	}

	// pause and resume.
	if out := f.ok("subscriptions", "pause", "orders", "mail"); out != "subscription orders/mail paused\n" {
		t.Fatalf("pause printed %q", out)
	}
	f.okJSON(&sub, "subscriptions", "get", "orders", "mail")
	if !sub.Paused {
		t.Fatal("paused subscription is not paused")
	}
	var resumed map[string]any
	f.okJSON(&resumed, "subscriptions", "resume", "orders", "mail")
	if resumed["paused"] != false || resumed["name"] != "mail" {
		t.Fatalf("resume --json = %v", resumed)
	}
	f.okJSON(&sub, "subscriptions", "get", "orders", "mail")
	if sub.Paused {
		t.Fatal("resumed subscription is paused")
	}

	// rewind: forward to a position, back to the start.
	if out := f.ok("subscriptions", "rewind", "orders", "mail", "--to", "3"); !strings.HasPrefix(out, "rewound subscription orders/mail: the next event routed is position 3") {
		t.Fatalf("rewind printed %q", out)
	}
	f.okJSON(&sub, "subscriptions", "rewind", "orders", "mail", "--to", "start")
	if sub.Cursor != 0 || sub.Lag.Unrouted != 3 {
		t.Fatalf("rewind --to start --json = %+v", sub)
	}
	if out := f.ok("subscriptions", "rewind", "orders", "mail", "--to", "start", "--forget-inbox"); !strings.HasPrefix(out, "forgot 0 inbox entries of orders/mail\nrewound subscription") {
		t.Fatalf("rewind --forget-inbox printed %q", out)
	}
	f.okJSON(&sub, "subscriptions", "rewind", "orders", "mail", "--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if sub.Cursor != 3 {
		t.Fatalf("rewind to a time after every event: cursor %d, want 3", sub.Cursor)
	}

	// delete: gone, and then not found.
	if out := f.ok("subscriptions", "delete", "orders", "mail"); out != "subscription orders/mail deleted\n" {
		t.Fatalf("delete printed %q", out)
	}
	r = f.fails(exitFailed, "subscriptions", "get", "orders", "mail")
	if r.stderr != "spool: subscription orders/mail not found\n" {
		t.Fatalf("get of a deleted subscription: stderr %q", r.stderr)
	}
}

func TestSubscriptionsNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ok("subscriptions", "add", "orders", "mail")
	for _, args := range [][]string{
		{"subscriptions", "get", "orders", "nope"},
		{"subscriptions", "pause", "orders", "nope"},
		{"subscriptions", "resume", "nope", "mail"},
		{"subscriptions", "delete", "orders", "nope"},
		{"subscriptions", "rewind", "orders", "nope", "--to", "start"},
	} {
		if e := f.failsJSON(exitFailed, args...); e.Error.Code != "not_found" || !strings.Contains(e.Error.Message, "not found") {
			t.Errorf("spool %s: %+v", strings.Join(args, " "), e)
		}
	}
}

func TestSubscriptionsRefuseInvalidInput(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	url := "sqlite:" + path
	for _, args := range [][]string{
		{"add", "orders", "mail", "--from", "garbage"},
		{"add", "orders", "mail", "--from", "0"},
		{"add", "orders", "mail", "--from", "2030-13-45"},
		{"add", "orders", "mail", "--max-attempts", "-1"},
		{"add", "orders", "mail", "--retry-base", "2s", "--retry-max", "1s"},
		{"add", "orders", "mail", "--lock-for", "1ms"},
		{"add", "orders", "mail", "--kinds", "bad kind"},
		{"add", "bad topic", "mail"},
		{"add", "orders"},
		{"rewind", "orders", "mail", "--to", "garbage"},
		{"rewind", "orders", "mail", "--to", ""},
		{"rewind", "orders", "mail"},
		{"get", "orders", "bad name"},
		{"pause", "orders"},
		{"delete", "orders", "mail", "extra"},
	} {
		r := cli(context.Background(), "", nil, append([]string{"--store", url, "subscriptions"}, args...)...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "spool: ") || r.stdout != "" {
			t.Errorf("subscriptions %v: exit %d, stderr %q, stdout %q; want exit 2 and a spool: message", args, r.code, r.stderr, r.stdout)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused commands created the store: %v", err)
	}

	// On an existing store: nothing created, nothing moved.
	f := newFixture(t)
	f.ok("publish", "orders", "--kind", "k")
	if e := f.failsJSON(exitUsage, "subscriptions", "add", "orders", "mail", "--from", "garbage"); e.Error.Code != "invalid" || e.Error.Field != "from" {
		t.Fatalf("add --from garbage --json: %+v", e)
	}
	if subs, err := f.client.Subscriptions().List(context.Background(), ""); err != nil || len(subs) != 0 {
		t.Fatalf("a refused add left %d subscriptions (%v)", len(subs), err)
	}
	f.ok("subscriptions", "add", "orders", "mail", "--from", "start")
	if e := f.failsJSON(exitUsage, "subscriptions", "rewind", "orders", "mail", "--to", "garbage"); e.Error.Field != "to" {
		t.Fatalf("rewind --to garbage --json: %+v", e)
	}
	if sub, err := f.client.Subscriptions().Get(context.Background(), "orders", "mail"); err != nil || sub.Cursor != 0 {
		t.Fatalf("a refused rewind moved the subscription: %+v, %v", sub, err)
	}
}

func TestSubscriptionGetWarnsWhenHoldingRetention(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ok("topics", "retention", "orders", "1ms")
	f.ok("publish", "orders", "--kind", "k")
	f.ok("subscriptions", "add", "orders", "slow", "--from", "start")
	time.Sleep(20 * time.Millisecond)

	var sub wire.Subscription
	f.okJSON(&sub, "subscriptions", "get", "orders", "slow")
	if !sub.Lag.HoldsRetention {
		t.Fatalf("lag = %+v, want holds_retention", sub.Lag)
	}
	if out := f.ok("subscriptions", "get", "orders", "slow"); !strings.Contains(out, "WARNING: orders/slow falls behind: holding events past the topic's retention") {
		t.Fatalf("get does not warn:\n%s", out)
	}
	r := f.run("subscriptions", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "holds retention") || !strings.Contains(r.stderr, "falls behind: holding events past the topic's retention") {
		t.Fatalf("list does not warn: %+v", r)
	}
}

// TestSubscriptionsOnDeadHead: --on-dead-head block is stored and shown, is
// part of the definition, needs --ordered, and a blocked key is unblocked
// with spool dlq purge.
func TestSubscriptionsOnDeadHead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var added createdSubscription
	f.okJSON(&added, "subscriptions", "add", "orders", "ledger", "--from", "start", "--ordered", "--on-dead-head", "block")
	if !added.Created || added.OnDeadHead != "block" || !added.Ordered {
		t.Fatalf("add --on-dead-head block --json = %+v", added)
	}
	f.okJSON(&added, "subscriptions", "add", "orders", "plain", "--ordered")
	if added.OnDeadHead != "skip" {
		t.Fatalf("add without --on-dead-head: on_dead_head %q, want skip", added.OnDeadHead)
	}
	if r := f.fails(exitConflict, "subscriptions", "add", "orders", "ledger", "--from", "start", "--ordered"); !strings.Contains(r.stderr, "another definition") {
		t.Fatalf("add with skip over block: stderr %q", r.stderr)
	}
	for _, args := range [][]string{
		{"subscriptions", "add", "orders", "x", "--on-dead-head", "block"},
		{"subscriptions", "add", "orders", "x", "--ordered", "--on-dead-head", "stop"},
	} {
		if e := f.failsJSON(exitUsage, args...); e.Error.Code != "invalid" || e.Error.Field != "on_dead_head" {
			t.Errorf("spool %s: %+v", strings.Join(args, " "), e)
		}
	}
	if out := f.ok("subscriptions", "get", "orders", "ledger"); !strings.Contains(out, "On dead head:") || !strings.Contains(out, "block") {
		t.Fatalf("get does not show the policy:\n%s", out)
	}

	// Key o1's head dies: o1 waits, o2 goes on, and purging the dead head
	// lets o1's next event run.
	f.ok("publish", "orders", "--kind", "k", "--key", "o1")
	f.ok("publish", "orders", "--kind", "k", "--key", "o1")
	f.ok("publish", "orders", "--kind", "k", "--key", "o2")
	ctx := context.Background()
	if _, err := f.st.Capabilities().Events.Route(ctx, store.RouteParams{Topic: "orders", Name: "ledger"}); err != nil {
		t.Fatal(err)
	}
	claim := func() []*store.Job {
		t.Helper()
		jobs, err := f.st.Claim(ctx, store.ClaimParams{Queue: "sub/orders/ledger", Limit: 10, LockFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return jobs
	}
	jobs := claim()
	if len(jobs) != 2 {
		t.Fatalf("claimed %d deliveries, want the heads of o1 and o2", len(jobs))
	}
	var dead store.ID
	vs := make([]store.Verdict, len(jobs))
	for i, j := range jobs {
		vs[i] = store.Verdict{ID: j.ID, Token: j.LockToken, Outcome: store.Complete}
		if evs, _ := store.DecodeDeliveries(j); evs[0].Key == "o1" {
			vs[i].Outcome, dead = store.DeadLetter, j.ID
		}
	}
	if errs, err := f.st.Settle(ctx, vs); err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("Settle = %v, %v", errs, err)
	}
	if jobs := claim(); len(jobs) != 0 {
		t.Fatalf("claimed %d deliveries while o1's head is dead, want none", len(jobs))
	}
	if out := f.ok("subscriptions", "get", "orders", "ledger"); !strings.Contains(out, "blocks that key") {
		t.Fatalf("get does not say how to unblock:\n%s", out)
	}
	f.ok("dlq", "purge", dead.String())
	if jobs = claim(); len(jobs) != 1 {
		t.Fatalf("after the purge: claimed %d deliveries, want o1's second event", len(jobs))
	}
	if evs, _ := store.DecodeDeliveries(jobs[0]); evs[0].Key != "o1" || evs[0].Position != 2 {
		t.Fatalf("after the purge: claimed the delivery of %+v, want o1's second event (position 2)", evs[0])
	}
}
