package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
)

// errorJSON is the --json output of a failed command.
type errorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// failsJSON runs a command with --json that must exit with code and
// returns the error it printed.
func (f *fixture) failsJSON(code int, args ...string) errorJSON {
	f.t.Helper()
	r := f.fails(code, append(args, "--json")...)
	var e errorJSON
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil {
		f.t.Fatalf("spool %s --json: %v in %q", strings.Join(args, " "), err, r.stdout)
	}
	return e
}

// compactJSON is b without its white space.
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("%v in %q", err, b)
	}
	return buf.String()
}

// events returns every event of topic, through the library.
func (f *fixture) events(topic string) []*spool.StoredEvent {
	f.t.Helper()
	page, err := f.client.ReadEvents(context.Background(), spool.ReadEventsParams{Topic: topic, Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return page.Events
}

func TestPublishAndReadEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	var pub wire.PublishResult
	f.okJSON(&pub, "publish", "orders", "--kind", "order.placed", "--payload", `{"order":"o1","total":5}`,
		"--key", "o1", "--tenant", "acme", "--id", "e1", "--header", "trace=abc", "-H", "team=x=y")
	if pub != (wire.PublishResult{Topic: "orders", ID: "e1", Position: 1, Version: 1}) {
		t.Fatalf("publish --json = %+v", pub)
	}
	// Text: "ID position N version V", and "duplicate" for an ID the topic has.
	if out := f.ok("publish", "orders", "--kind", "order.paid", "--payload", `{"order":"o1"}`, "--key", "o1", "--id", "e2"); out != "e2 position 2 version 2\n" {
		t.Fatalf("publish printed %q", out)
	}
	r := f.run("publish", "orders", "--kind", "order.paid", "--payload", `{"order":"o1"}`, "--key", "o1", "--id", "e2")
	if r.code != 0 || r.stdout != "e2 position 2 version 2 duplicate\n" || !strings.Contains(r.stderr, "already") {
		t.Fatalf("publish of a known ID: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Without a key: no version; the payload from stdin; a generated ID.
	r = f.runIn(context.Background(), `{"from": "stdin"}`, "publish", "orders", "--kind", "order.viewed", "--payload", "-")
	fields := strings.Fields(r.stdout)
	if r.code != 0 || len(fields) != 3 || fields[1] != "position" || fields[2] != "3" {
		t.Fatalf("publish --payload -: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	generated := fields[0]
	f.ok("publish", "orders", "--kind", "order.placed", "--key", "o2") // no payload at all

	evs := f.events("orders")
	if len(evs) != 4 {
		t.Fatalf("%d events stored, want 4", len(evs))
	}
	e := evs[0]
	if e.ID != "e1" || e.Kind != "order.placed" || e.Key != "o1" || e.Tenant != "acme" || string(e.Payload) != `{"order":"o1","total":5}` ||
		len(e.Headers) != 2 || e.Headers["trace"] != "abc" || e.Headers["team"] != "x=y" {
		t.Fatalf("stored event = %+v", e)
	}
	if evs[2].ID != generated || string(evs[2].Payload) != `{"from": "stdin"}` || evs[3].Payload != nil {
		t.Fatalf("stored events 3 and 4 = %+v, %+v", evs[2], evs[3])
	}

	// events list: position order, pages, one key's stream by version.
	var page wire.EventPage
	f.okJSON(&page, "events", "list", "orders")
	if len(page.Events) != 4 || page.Next != 0 || page.Events[0].ID != "e1" || page.Events[0].Headers["trace"] != "abc" {
		t.Fatalf("events list --json = %+v", page)
	}
	f.okJSON(&page, "events", "list", "orders", "--limit", "2")
	if len(page.Events) != 2 || page.Next != 2 {
		t.Fatalf("events list --limit 2: %d events, next %d", len(page.Events), page.Next)
	}
	f.okJSON(&page, "events", "list", "orders", "--after", "2")
	if len(page.Events) != 2 || page.Events[0].Position != 3 {
		t.Fatalf("events list --after 2 = %+v", page.Events)
	}
	f.okJSON(&page, "events", "list", "orders", "--key", "o1", "--after", "1")
	if len(page.Events) != 1 || page.Events[0].ID != "e2" || page.Events[0].Version != 2 {
		t.Fatalf("events list --key o1 --after 1 (a version) = %+v", page.Events)
	}
	r = f.run("events", "list", "orders", "--limit", "3")
	if r.code != 0 || !strings.Contains(r.stdout, "POSITION") || !strings.Contains(r.stdout, `{"order":"o1","total":5}`) ||
		!strings.Contains(r.stderr, "--after 3") {
		t.Fatalf("events list table: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := f.run("events", "list", "empty"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no events") {
		t.Fatalf("events list of an empty topic: %+v", r)
	}

	// events get: in any topic, or in one.
	var got wire.Event
	f.okJSON(&got, "events", "get", "e1")
	if got.Topic != "orders" || got.Position != 1 || got.Tenant != "acme" || compactJSON(t, got.Payload) != `{"order":"o1","total":5}` {
		t.Fatalf("events get --json = %+v", got)
	}
	if out := f.ok("events", "get", "e2", "--topic", "orders"); !strings.Contains(out, "Version:") || !strings.Contains(out, `{"order":"o1"}`) {
		t.Fatalf("events get table:\n%s", out)
	}
	r = f.fails(exitFailed, "events", "get", "nope")
	if r.stderr != "spool: event nope not found\n" {
		t.Fatalf("events get of a missing event: stderr %q", r.stderr)
	}
	if e := f.failsJSON(exitFailed, "events", "get", "e1", "--topic", "other"); e.Error.Code != "not_found" {
		t.Fatalf("events get in another topic: %+v", e)
	}
	f.fails(exitUsage, "events", "list", "orders", "--limit", "0")
	f.fails(exitUsage, "events", "list", "orders", "--after", "-1")
	f.fails(exitUsage, "events", "list", "bad topic")
	f.fails(exitUsage, "events", "get", "e1", "--topic", "bad topic")
}

func TestPublishRefusesInvalidInput(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	url := "sqlite:" + path
	for _, args := range [][]string{
		{"orders", "--kind", "k", "--payload", `{"unterminated": `},
		{"orders", "--kind", "k", "--payload", "not json"},
		{"orders", "--kind", "bad kind!", "--payload", "{}"},
		{"orders", "--kind", "k", "--header", "novalue"},
		{"orders", "--kind", "k", "--header", "a=1", "--header", "a=2"},
		{"orders", "--kind", "k", "--key", strings.Repeat("k", 200)},
		{"orders", "--kind", "k", "--tenant", "bad tenant"},
		{"bad topic", "--kind", "k"},
		{"orders", "--payload", "{}"}, // no --kind
		{"--kind", "k"},               // no topic
	} {
		r := cli(context.Background(), "", nil, append([]string{"--store", url, "publish"}, args...)...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "spool: ") || r.stdout != "" {
			t.Errorf("publish %v: exit %d, stderr %q, stdout %q; want exit 2 and a spool: message", args, r.code, r.stderr, r.stdout)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused publishes created the store: %v", err)
	}

	// On an existing store: still exit 2 and nothing published; --json
	// puts the error on stdout.
	f := newFixture(t)
	if e := f.failsJSON(exitUsage, "publish", "orders", "--kind", "k", "--payload", "{nope"); e.Error.Code != "invalid" || e.Error.Field != "payload" {
		t.Fatalf("--json error output %+v", e)
	}
	f.fails(exitUsage, "publish", "orders", "--kind", "k", "--payload", "-") // empty stdin is not JSON
	if topics, err := f.client.Topics(context.Background()); err != nil || len(topics) != 0 {
		t.Fatalf("refused publishes left topics %+v (%v)", topics, err)
	}
}

func TestTopicsListAndRetention(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ok("publish", "orders", "--kind", "k")
	f.ok("publish", "orders", "--kind", "k")
	var list struct {
		Topics []wire.Topic `json:"topics"`
	}
	f.okJSON(&list, "topics", "list")
	if len(list.Topics) != 1 || list.Topics[0].Name != "orders" || list.Topics[0].Head != 2 ||
		list.Topics[0].RetentionSeconds != nil || list.Topics[0].Published == nil {
		t.Fatalf("topics list --json = %+v", list)
	}
	if out := f.ok("topics", "retention", "orders", "36h"); out != "topic orders keeps its events for 36h0m0s\n" {
		t.Fatalf("topics retention printed %q", out)
	}
	var topic wire.Topic
	f.okJSON(&topic, "topics", "retention", "audit", "90m") // a topic without events yet
	if topic.Name != "audit" || topic.RetentionSeconds == nil || *topic.RetentionSeconds != 5400 {
		t.Fatalf("topics retention --json = %+v", topic)
	}
	f.okJSON(&list, "topics", "list")
	if len(list.Topics) != 2 || list.Topics[1].RetentionSeconds == nil || *list.Topics[1].RetentionSeconds != 36*3600 {
		t.Fatalf("topics list after retention = %+v", list.Topics)
	}
	if out := f.ok("topics", "list"); !strings.Contains(out, "RETENTION") || !strings.Contains(out, "36h0m0s") {
		t.Fatalf("topics list table:\n%s", out)
	}
	f.ok("topics", "retention", "orders", "forever")
	f.okJSON(&list, "topics", "list")
	if list.Topics[1].RetentionSeconds != nil {
		t.Fatalf("retention forever: %+v", list.Topics[1])
	}
	f.fails(exitUsage, "topics", "retention", "orders", "-1h")
	f.fails(exitUsage, "topics", "retention", "orders", "a while")
	f.fails(exitUsage, "topics", "retention", "bad topic", "1h")
	f.fails(exitUsage, "topics", "retention", "orders")

	// A read command does not create a store.
	missing := filepath.Join(t.TempDir(), "missing.db")
	if r := cli(context.Background(), "", nil, "--store", missing, "topics", "list"); r.code != exitFailed || !strings.Contains(r.stderr, "no store at") {
		t.Fatalf("topics list of a missing store: %+v", r)
	}
}
