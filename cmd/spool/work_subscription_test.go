package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
)

// eventually polls cond until it holds, failing the test after 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// envLines reads the environment a command recorded, as a map.
func envLines(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	return env
}

func TestWorkSubscription(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	f.ok("subscriptions", "add", "orders", "mail", "--from", "start", "--max-attempts", "3", "--retry-base", "10ms", "--retry-max", "20ms")
	chore := f.enqueue("--kind", "chore") // in the default queue, which the worker must leave alone
	f.ok("publish", "orders", "--kind", "order.placed", "--payload", `{"n": 1}`, "--id", "e1", "--key", "o1",
		"--tenant", "acme", "--header", "trace=abc")
	f.ok("publish", "orders", "--kind", "flaky", "--payload", `{"n": 2}`, "--id", "e2")
	f.ok("publish", "orders", "--kind", "broken", "--payload", `{"n": 3}`, "--id", "e3")

	// Every attempt is logged; the first of a flaky event and every one of
	// a broken event fail; the others record stdin and the environment and
	// acknowledge.
	script := `out='` + dir + `'/"$SPOOL_EVENT_ID"
echo "attempt=$SPOOL_ATTEMPT" >> "$out.attempts"
if [ "$SPOOL_EVENT_KIND" = flaky ] && [ "$SPOOL_ATTEMPT" = 1 ]; then echo "not yet" >&2; exit 1; fi
if [ "$SPOOL_EVENT_KIND" = broken ]; then echo "always broken" >&2; exit 1; fi
cat > "$out.stdin"
env | grep '^SPOOL_' > "$out.tmp" && mv "$out.tmp" "$out.env"`
	stop := startWork(t, f, "--subscription", "orders/mail", "--concurrency", "2", "--poll", "50ms", "--", "sh", "-c", script)

	ctx := context.Background()
	eventually(t, "every event handled or dead", func() bool {
		sub, err := f.client.Subscriptions().Get(ctx, "orders", "mail")
		if err != nil {
			t.Fatal(err)
		}
		return sub.Lag.Behind == 0 && sub.Lag.Dead == 1
	})

	// The payload as published (its JSON compacted by the delivery's envelope).
	if b, err := os.ReadFile(filepath.Join(dir, "e1.stdin")); err != nil || string(b) != `{"n":1}` {
		t.Errorf("e1's stdin = %q, %v", b, err)
	}
	env := envLines(t, filepath.Join(dir, "e1.env"))
	for k, v := range map[string]string{
		"SPOOL_TOPIC": "orders", "SPOOL_SUBSCRIPTION": "orders/mail", "SPOOL_EVENT_ID": "e1", "SPOOL_EVENT_KIND": "order.placed",
		"SPOOL_EVENT_POSITION": "1", "SPOOL_ORDERING_KEY": "o1", "SPOOL_EVENT_VERSION": "1", "SPOOL_EVENT_TENANT": "acme",
		"SPOOL_EVENT_HEADERS": `{"trace":"abc"}`, "SPOOL_ATTEMPT": "1",
	} {
		if env[k] != v {
			t.Errorf("$%s = %q, want %q", k, env[k], v)
		}
	}
	if _, err := spool.ParseID(env["SPOOL_DELIVERY_ID"]); err != nil {
		t.Errorf("$SPOOL_DELIVERY_ID = %q: %v", env["SPOOL_DELIVERY_ID"], err)
	}
	if _, err := time.Parse(time.RFC3339Nano, env["SPOOL_EVENT_PUBLISHED_AT"]); err != nil {
		t.Errorf("$SPOOL_EVENT_PUBLISHED_AT = %q: %v", env["SPOOL_EVENT_PUBLISHED_AT"], err)
	}

	// The flaky event failed once and was retried; the broken one was
	// dead-lettered after its 3 attempts, with its stderr recorded.
	if b, _ := os.ReadFile(filepath.Join(dir, "e2.attempts")); string(b) != "attempt=1\nattempt=2\n" {
		t.Errorf("e2's attempts = %q, want a failure then a retry", b)
	}
	if env := envLines(t, filepath.Join(dir, "e2.env")); env["SPOOL_ATTEMPT"] != "2" || env["SPOOL_ORDERING_KEY"] != "" || env["SPOOL_EVENT_VERSION"] != "" {
		t.Errorf("e2's environment = %v", env)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "e3.attempts")); strings.Count(string(b), "attempt=") != 3 {
		t.Errorf("e3's attempts = %q, want 3", b)
	}
	var dead wire.JobPage
	f.okJSON(&dead, "dlq", "list", "--queue", "sub/orders/mail")
	if len(dead.Jobs) != 1 || dead.Jobs[0].Kind != "broken" || !strings.Contains(dead.Jobs[0].LastError, "always broken") ||
		!strings.Contains(dead.Jobs[0].LastError, "status 1") {
		t.Fatalf("dead deliveries = %+v", dead.Jobs)
	}

	r := stop()
	if r.code != 0 || !strings.Contains(r.stderr, "orders/mail") || !strings.Contains(r.stderr, "event failed") {
		t.Fatalf("work: exit %d, stderr %q", r.code, r.stderr)
	}
	if j := f.get(chore); j.State != spool.StateAvailable || j.Deliveries != 0 {
		t.Fatalf("the default queue's job was touched: %s, %d deliveries", j.State, j.Deliveries)
	}
}

// --subscription with --queue works both.
func TestWorkSubscriptionAndQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	f.ok("subscriptions", "add", "orders", "mail")
	job := f.enqueue("--queue", "mail", "--kind", "send")
	stop := startWork(t, f, "--subscription", "orders/mail", "--queue", "mail", "--poll", "50ms", "--",
		"sh", "-c", `touch '`+dir+`'/"${SPOOL_EVENT_ID:-$SPOOL_JOB_ID}"`)
	f.ok("publish", "orders", "--kind", "k", "--id", "e1")
	if j := f.wait(job); j.State != spool.StateCompleted {
		t.Fatalf("the queue's job: %s", j.State)
	}
	eventually(t, "the event", func() bool {
		_, err := os.Stat(filepath.Join(dir, "e1"))
		return err == nil
	})
	if r := stop(); r.code != 0 {
		t.Fatalf("work: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestWorkSubscriptionRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.fails(exitFailed, "work", "--subscription", "orders/nope", "--", "true")
	if !strings.Contains(r.stderr, "subscription orders/nope not found") || !strings.Contains(r.stderr, "spool subscriptions add orders nope") {
		t.Fatalf("work on a missing subscription: stderr %q", r.stderr)
	}
	r = f.fails(exitFailed, "--json", "work", "--subscription", "orders/nope", "--", "true")
	var e errorJSON
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Error.Code != "not_found" {
		t.Fatalf("work on a missing subscription --json: %q (%v)", r.stdout, err)
	}
	for _, ref := range []string{"orders", "orders/", "/mail", "bad topic/mail"} {
		if r := f.run("work", "--subscription", ref, "--", "true"); r.code != exitUsage || !strings.HasPrefix(r.stderr, "spool: ") {
			t.Errorf("work --subscription %q: exit %d, stderr %q; want 2", ref, r.code, r.stderr)
		}
	}
}
