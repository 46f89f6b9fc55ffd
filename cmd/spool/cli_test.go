package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

func TestEnqueueListGetRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var enq struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
		State     string `json:"state"`
	}
	f.okJSON(&enq, "enqueue", "--queue", "mail", "--kind", "welcome", "--payload", `{"to":"ada@example.com"}`,
		"--tenant", "acme", "--priority", "-5", "--max-attempts", "7", "--unique-key", "welcome-ada", "--ordering-key", "ada")
	if enq.Duplicate || enq.State != "available" {
		t.Fatalf("enqueue --json = %+v", enq)
	}
	id, err := spool.ParseID(enq.ID)
	if err != nil {
		t.Fatal(err)
	}
	other := f.enqueue("--queue", "mail", "--kind", "digest", "--delay", "1h")

	// Same unique key: the live job is returned, nothing added.
	var dup struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	f.okJSON(&dup, "enqueue", "--queue", "mail", "--kind", "welcome", "--tenant", "acme", "--unique-key", "welcome-ada")
	if !dup.Duplicate || dup.ID != enq.ID {
		t.Fatalf("second enqueue with the unique key = %+v, want duplicate of %s", dup, enq.ID)
	}

	var page struct {
		Jobs []jobJSON `json:"jobs"`
		Next string    `json:"next"`
	}
	f.okJSON(&page, "jobs", "list", "--queue", "mail")
	if len(page.Jobs) != 2 || page.Next != "" {
		t.Fatalf("jobs list: %d jobs, next %q; want 2 and no next", len(page.Jobs), page.Next)
	}
	if page.Jobs[0].ID != id.String() || page.Jobs[1].ID != other.String() {
		t.Fatalf("jobs list ids %s, %s; want %s, %s", page.Jobs[0].ID, page.Jobs[1].ID, id, other)
	}
	if page.Jobs[1].State != spool.StateScheduled || page.Jobs[1].RunAt.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("delayed job: state %s, run_at %v", page.Jobs[1].State, page.Jobs[1].RunAt)
	}

	// Filters and paging.
	f.okJSON(&page, "jobs", "list", "--state", "scheduled,running")
	if len(page.Jobs) != 1 || page.Jobs[0].ID != other.String() {
		t.Fatalf("--state scheduled,running: %+v", page.Jobs)
	}
	f.okJSON(&page, "jobs", "list", "--limit", "1")
	if len(page.Jobs) != 1 || page.Next != id.String() {
		t.Fatalf("--limit 1: %d jobs, next %q; want 1 and %s", len(page.Jobs), page.Next, id)
	}
	f.okJSON(&page, "jobs", "list", "--after", page.Next)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != other.String() {
		t.Fatalf("--after: %+v", page.Jobs)
	}

	f.okJSON(&page, "jobs", "list", "--newest", "--limit", "1")
	if len(page.Jobs) != 1 || page.Jobs[0].ID != other.String() || page.Next != other.String() {
		t.Fatalf("--newest --limit 1: %+v, next %q; want %s", page.Jobs, page.Next, other)
	}
	f.okJSON(&page, "jobs", "list", "--newest", "--after", page.Next)
	if len(page.Jobs) != 1 || page.Jobs[0].ID != id.String() {
		t.Fatalf("--newest --after: %+v", page.Jobs)
	}
	f.okJSON(&page, "jobs", "list", "--unique-key", "welcome-ada", "--ordering-key", "ada",
		"--created-after", time.Now().Add(-time.Hour).Format(time.RFC3339), "--created-before", time.Now().Add(time.Hour).Format(time.RFC3339))
	if len(page.Jobs) != 1 || page.Jobs[0].ID != id.String() {
		t.Fatalf("--unique-key --ordering-key --created-after --created-before: %+v", page.Jobs)
	}
	f.okJSON(&page, "jobs", "list", "--created-after", time.Now().Add(time.Hour).Format(time.RFC3339))
	if len(page.Jobs) != 0 {
		t.Fatalf("--created-after in an hour: %+v", page.Jobs)
	}
	f.fails(exitUsage, "jobs", "list", "--created-after", "yesterday")
	f.fails(exitUsage, "jobs", "list", "--created-after", "2026-12-09T00:00:00Z", "--created-before", "2026-12-08T00:00:00Z")

	// jobs get --json: every field, times in RFC 3339.
	var raw map[string]any
	f.okJSON(&raw, "jobs", "get", id.String())
	want := map[string]any{"id": id.String(), "queue": "mail", "kind": "welcome", "state": "available",
		"tenant": "acme", "priority": -5.0, "max_attempts": 7.0, "unique_key": "welcome-ada", "ordering_key": "ada",
		"payload": map[string]any{"to": "ada@example.com"}}
	for k, v := range want {
		if got, _ := json.Marshal(raw[k]); string(got) != mustJSON(t, v) {
			t.Errorf("jobs get: %s = %s, want %s", k, got, mustJSON(t, v))
		}
	}
	for _, k := range []string{"run_at", "created_at"} {
		s, _ := raw[k].(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("jobs get: %s = %q is not RFC 3339: %v", k, s, err)
		}
	}

	// The table form names the job too.
	if out := f.ok("jobs", "get", id.String()); !strings.Contains(out, "welcome-ada") || !strings.Contains(out, `{"to":"ada@example.com"}`) {
		t.Errorf("jobs get table:\n%s", out)
	}
	if out := f.ok("jobs", "list"); !strings.Contains(out, id.String()) || !strings.Contains(out, "STATE") {
		t.Errorf("jobs list table:\n%s", out)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEnqueueRefusesInvalidInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "spool.db")
	url := "sqlite:" + path
	for _, args := range [][]string{
		{"--kind", "k", "--payload", `{"unterminated": `},
		{"--kind", "k", "--payload", "not json"},
		{"--kind", "bad kind!", "--payload", "{}"},
		{"--kind", "k", "--count", "0"},
		{"--payload", "{}"}, // no --kind
	} {
		r := cli(context.Background(), "", nil, append([]string{"--store", url, "enqueue"}, args...)...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "spool: ") || r.stdout != "" {
			t.Errorf("enqueue %v: exit %d, stderr %q, stdout %q; want exit 2 and a spool: message", args, r.code, r.stderr, r.stdout)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused enqueues created the store: %v", err)
	}

	// On an existing store: still exit 2 and nothing enqueued; --json puts
	// the error on stdout.
	f := newFixture(t)
	r := f.fails(exitUsage, "enqueue", "--kind", "k", "--payload", "{nope", "--json")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Error.Code != "invalid" || !strings.Contains(e.Error.Message, "payload") {
		t.Fatalf("--json error output %q (%v)", r.stdout, err)
	}
	f.fails(exitUsage, "enqueue", "--kind", "k", "--queue", "bad queue")
	f.fails(exitUsage, "enqueue", "--kind", "k", "--priority", "1000")
	f.fails(exitUsage, "enqueue", "--kind", "k", "--delay", "-1s")
	f.fails(exitUsage, "enqueue", "--kind", "k", "--payload", "-") // empty stdin is not JSON
	page, err := f.client.List(context.Background(), spool.ListParams{})
	if err != nil || len(page.Jobs) != 0 {
		t.Fatalf("refused enqueues left %d jobs (%v)", len(page.Jobs), err)
	}
}

func TestEnqueueCountAndStdin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var sum struct {
		Enqueued   int    `json:"enqueued"`
		Duplicates int    `json:"duplicates"`
		FirstID    string `json:"first_id"`
		LastID     string `json:"last_id"`
	}
	f.okJSON(&sum, "enqueue", "--kind", "ping", "--queue", "bulk", "--count", "2500")
	if sum.Enqueued != 2500 || sum.Duplicates != 0 || sum.FirstID == "" || sum.LastID <= sum.FirstID {
		t.Fatalf("enqueue --count 2500 --json = %+v", sum)
	}
	if out := f.ok("enqueue", "--kind", "ping", "--queue", "bulk", "--count", "3"); !strings.Contains(out, "enqueued 3 jobs") {
		t.Fatalf("enqueue --count 3 printed %q", out)
	}
	stats, err := f.client.Stats(context.Background())
	if err != nil || len(stats) != 1 || stats[0].Counts[spool.StateAvailable] != 2503 {
		t.Fatalf("stats after --count: %+v, %v", stats, err)
	}

	r := f.runIn(context.Background(), `{"from": "stdin"}`, "enqueue", "--kind", "piped", "--payload", "-")
	if r.code != 0 {
		t.Fatalf("enqueue --payload -: exit %d, %s", r.code, r.stderr)
	}
	id, err := spool.ParseID(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	if j := f.get(id); string(j.Payload) != `{"from": "stdin"}` {
		t.Fatalf("payload from stdin = %q", j.Payload)
	}
}

func TestJobsCancelAndRequeue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.enqueue("--kind", "k")
	b := f.enqueue("--kind", "k")
	missing := spool.ID{1}

	var out struct {
		Done    []string `json:"done"`
		Refused []struct {
			ID    string            `json:"id"`
			Error map[string]string `json:"error"`
		} `json:"refused"`
	}
	r := f.fails(exitFailed, "jobs", "cancel", a.String(), missing.String(), "--json")
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v in %q", err, r.stdout)
	}
	if len(out.Done) != 1 || out.Done[0] != a.String() || len(out.Refused) != 1 ||
		out.Refused[0].ID != missing.String() || out.Refused[0].Error["code"] != "not_found" {
		t.Fatalf("cancel with a missing job: %+v", out)
	}
	if j := f.get(a); j.State != spool.StateCancelled {
		t.Fatalf("cancelled job is %s", j.State)
	}
	// Requeue: the cancelled job runs again; the live one is refused.
	r = f.fails(exitFailed, "jobs", "requeue", a.String(), b.String())
	if !strings.Contains(r.stdout, "requeued 1 job") || !strings.Contains(r.stderr, b.String()) {
		t.Fatalf("requeue: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if j := f.get(a); j.State != spool.StateAvailable {
		t.Fatalf("requeued job is %s", j.State)
	}
	f.fails(exitUsage, "jobs", "cancel", "not-an-id")
	f.fails(exitUsage, "jobs", "cancel")
}

func TestStatsAndQueuePause(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue("--queue", "a", "--kind", "k")
	f.enqueue("--queue", "a", "--kind", "k", "--delay", "1h")
	f.enqueue("--queue", "b", "--kind", "k")
	f.kill("b", "k", "boom")

	var stats struct {
		Queues []queueJSON `json:"queues"`
	}
	f.okJSON(&stats, "stats")
	if len(stats.Queues) != 2 {
		t.Fatalf("stats: %+v", stats)
	}
	qa, qb := stats.Queues[0], stats.Queues[1]
	if qa.Queue != "a" || qa.Counts[spool.StateAvailable] != 1 || qa.Counts[spool.StateScheduled] != 1 || qa.Paused ||
		qb.Queue != "b" || qb.Counts[spool.StateAvailable] != 1 || qb.Counts[spool.StateDead] != 1 {
		t.Fatalf("stats --json: %+v", stats.Queues)
	}
	if len(qa.Counts) != len(store.States) {
		t.Errorf("stats counts should name every state: %v", qa.Counts)
	}
	if out := f.ok("stats"); !strings.Contains(out, "AVAILABLE") || !strings.Contains(out, "b ") {
		t.Errorf("stats table:\n%s", out)
	}

	// A paused queue hands out nothing until resumed.
	claim := func() int {
		jobs, err := f.st.Claim(context.Background(), store.ClaimParams{Queue: "a", Limit: 10, LockFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return len(jobs)
	}
	if out := f.ok("queues", "pause", "a"); out != "queue a paused\n" {
		t.Fatalf("pause printed %q", out)
	}
	if n := claim(); n != 0 {
		t.Fatalf("claimed %d jobs from a paused queue", n)
	}
	f.okJSON(&stats, "stats")
	if !stats.Queues[0].Paused || stats.Queues[1].Paused {
		t.Fatalf("stats after pause: %+v", stats.Queues)
	}
	var resumed struct {
		Queue  string `json:"queue"`
		Paused bool   `json:"paused"`
	}
	f.okJSON(&resumed, "queues", "resume", "a")
	if resumed.Queue != "a" || resumed.Paused {
		t.Fatalf("resume --json = %+v", resumed)
	}
	if n := claim(); n != 1 {
		t.Fatalf("claimed %d jobs after resume, want 1", n)
	}
	f.fails(exitUsage, "queues", "pause", "bad queue")
	f.fails(exitUsage, "queues", "pause")
}

func TestStoreURLs(t *testing.T) {
	t.Parallel()
	// Every form --store takes picks its backend from the registry (the
	// backends' own tests check what they make of the rest of the URL).
	for raw, want := range map[string]string{
		"sqlite:./spool.db":       "sqlite",
		"sqlite:///var/x/jobs.db": "sqlite",
		"sqlite://rel/jobs":       "sqlite",
		"data/jobs.db":            "sqlite",
		"/abs/jobs.sqlite3":       "sqlite",
		"postgres://u@h/db":       "postgres",
		"postgresql://u@h/db":     "postgres",
		"postgres://u:pw@h:5433/db?sslmode=disable&schema=jobs&poll_only=1&skip_migrate=true": "postgres",
	} {
		if b, err := store.Lookup(raw); err != nil || b.Name != want {
			t.Errorf("store URL %q: backend %q, %v; want %q", raw, b.Name, err, want)
		}
	}
	for _, raw := range []string{"mysql://x", "jobs.txt", "sqlite:", "", "postgres://h/db?poll_only=maybe", "postgres://h/db?schema="} {
		if r := cli(context.Background(), "", nil, "--store", raw, "stats"); r.code != exitUsage || !strings.HasPrefix(r.stderr, "spool: ") {
			t.Errorf("--store %q: exit %d, stderr %q; want a usage error", raw, r.code, r.stderr)
		}
	}
	if r := cli(context.Background(), "", nil, "--store", "mysql://u:secret@h/db", "stats"); !strings.Contains(r.stderr, "sqlite") ||
		!strings.Contains(r.stderr, "postgres") || strings.Contains(r.stderr, "secret") {
		t.Errorf("unknown scheme: stderr %q; want the registered schemes, without the password", r.stderr)
	}
	if got := displayURL("postgres://u:secret@h/db?schema=x"); strings.Contains(got, "secret") {
		t.Errorf("displayURL kept the password: %s", got)
	}

	// A schema name PostgreSQL cannot hold is a usage error, before any connection.
	r := cli(context.Background(), "", nil, "--store", "postgres://127.0.0.1:1/db?schema=Bad-Name", "enqueue", "--kind", "k")
	if r.code != exitUsage || !strings.Contains(r.stderr, "schema") {
		t.Fatalf("bad schema: exit %d, stderr %q", r.code, r.stderr)
	}
	// A server that does not answer: the operation failed, and the password stays out of the message.
	r = cli(context.Background(), "", map[string]string{"SPOOL_STORE": "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2"}, "stats", "--json")
	if r.code != exitFailed || strings.Contains(r.stdout, "secret") || !strings.Contains(r.stdout, "127.0.0.1") {
		t.Fatalf("postgres store that does not answer: exit %d, stdout %q", r.code, r.stdout)
	}

	// $SPOOL_STORE names the store when --store is not given; --store wins.
	f := newFixture(t)
	id := f.enqueue("--kind", "k")
	env := map[string]string{"SPOOL_STORE": f.url}
	if r := cli(context.Background(), "", env, "jobs", "get", id.String()); r.code != 0 {
		t.Fatalf("jobs get via $SPOOL_STORE: exit %d, %s", r.code, r.stderr)
	}
	missing := filepath.Join(t.TempDir(), "missing.db")
	r = cli(context.Background(), "", env, "--store", missing, "jobs", "get", id.String())
	if r.code != exitFailed || !strings.Contains(r.stderr, "no store at") {
		t.Fatalf("--store of a missing file: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a read command created the store: %v", err)
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue("--kind", "k")
	missing := spool.ID{2}.String()

	r := f.fails(exitFailed, "jobs", "get", missing)
	if r.stderr != "spool: job "+missing+" not found\n" {
		t.Errorf("not found: stderr %q", r.stderr)
	}
	r = f.fails(exitFailed, "jobs", "get", missing, "--json")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Error.Code != "not_found" || r.stderr != "" {
		t.Errorf("not found --json: stdout %q stderr %q (%v)", r.stdout, r.stderr, err)
	}
	for _, args := range [][]string{
		{"nosuchcommand"},
		{"jobs", "list", "--nosuchflag"},
		{"jobs", "list", "--limit", "many"},
		{"jobs", "list", "--limit", "5000"},
		{"jobs", "list", "--state", "finished"},
		{"jobs", "get"},
		{"jobs", "get", "xyz"},
		{"work"},
		{"work", "--", "/no/such/program"},
		{"work", "--concurrency", "0", "--", "true"},
		{"bench", "--mode", "sideways"},
		{"demo", "--jobs", "0"},
		{"--log-level", "loud", "work", "--", "true"},
	} {
		r := f.run(args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "spool: ") {
			t.Errorf("spool %s: exit %d, stderr %q; want 2", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	// Interrupted: a cancelled context exits 130.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := f.runIn(ctx, "", "enqueue", "--kind", "k", "--count", "5000"); r.code != exitInterrupted {
		t.Errorf("interrupted enqueue: exit %d, stderr %q", r.code, r.stderr)
	}
}

// Every command has help that says what it does.
func TestHelp(t *testing.T) {
	t.Parallel()
	var walk func(c *cobra.Command)
	var paths [][]string
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		paths = append(paths, strings.Fields(c.CommandPath())[1:])
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newApp(nil, nil, nil, nil).rootCmd())
	if len(paths) < 15 {
		t.Fatalf("found only %d commands", len(paths))
	}
	for _, p := range paths {
		r := cli(context.Background(), "", nil, append(p, "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Errorf("spool %s --help: exit %d, stderr %q", strings.Join(p, " "), r.code, r.stderr)
		}
	}
}
