package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
)

func TestEnqueueWaitPrintsTheResult(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The worker doubles n, and fails jobs of kind "bad".
	startWork(t, f, "--queue", "quotes", "--poll", "50ms", "--", "sh", "-c",
		`if [ "$SPOOL_JOB_KIND" = bad ]; then echo "no quote for you" >&2; exit 1; fi
n=$(sed 's/[^0-9]//g'); printf '{"price": %d}' $((n * 2))`)

	if out := f.ok("enqueue", "--queue", "quotes", "--kind", "quote", "--payload", `{"n": 21}`, "--wait", "--timeout", "30s"); out != `{"price": 42}`+"\n" {
		t.Fatalf("enqueue --wait printed %q", out)
	}
	var job wire.Job
	f.okJSON(&job, "enqueue", "--queue", "quotes", "--kind", "quote", "--payload", `{"n": 5}`, "--wait")
	if job.State != spool.StateCompleted || compactJSON(t, job.Result) != `{"price":10}` || job.Kind != "quote" {
		t.Fatalf("enqueue --wait --json = %+v", job)
	}

	// A job that dies: exit 1 with its last error; with --json, the job.
	r := f.fails(exitFailed, "enqueue", "--queue", "quotes", "--kind", "bad", "--max-attempts", "1", "--wait")
	if r.stdout != "" || !strings.Contains(r.stderr, "finished dead") || !strings.Contains(r.stderr, "no quote for you") {
		t.Fatalf("enqueue --wait of a failing job: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = f.fails(exitFailed, "enqueue", "--queue", "quotes", "--kind", "bad", "--max-attempts", "1", "--wait", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || job.State != spool.StateDead || !strings.Contains(job.LastError, "no quote for you") {
		t.Fatalf("enqueue --wait --json of a failing job: %q (%v)", r.stdout, err)
	}
}

func TestEnqueueWaitTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Nobody works this queue: the wait times out, the job stays queued.
	start := time.Now()
	r := f.fails(exitFailed, "enqueue", "--queue", "idle", "--kind", "k", "--wait", "--timeout", "200ms")
	if time.Since(start) < 200*time.Millisecond || !strings.Contains(r.stderr, "still available after --timeout 200ms") {
		t.Fatalf("enqueue --wait --timeout: stderr %q after %v", r.stderr, time.Since(start))
	}
	e := f.failsJSON(exitFailed, "enqueue", "--queue", "idle", "--kind", "k", "--wait", "--timeout", "100ms")
	if e.Error.Code != "timeout" {
		t.Fatalf("enqueue --wait --timeout --json: %+v", e)
	}
	page, err := f.client.List(context.Background(), spool.ListParams{Queue: "idle"})
	if err != nil || len(page.Jobs) != 2 || page.Jobs[0].State != spool.StateAvailable {
		t.Fatalf("jobs after timed-out waits: %+v, %v", page, err)
	}

	// A job cancelled while waited for: exit 1.
	done := make(chan result, 1)
	go func() { done <- f.run("enqueue", "--queue", "idle", "--kind", "cancel-me", "--wait") }()
	var id spool.ID
	eventually(t, "the job", func() bool {
		page, err := f.client.List(context.Background(), spool.ListParams{Queue: "idle", Kind: "cancel-me"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Jobs) == 1 {
			id = page.Jobs[0].ID
		}
		return len(page.Jobs) == 1
	})
	f.ok("jobs", "cancel", id.String())
	r = <-done
	if r.code != exitFailed || !strings.Contains(r.stderr, "finished cancelled") {
		t.Fatalf("enqueue --wait of a cancelled job: exit %d, stderr %q", r.code, r.stderr)
	}

	// Usage: --wait is for one job; --timeout needs --wait.
	f.fails(exitUsage, "enqueue", "--kind", "k", "--wait", "--count", "2")
	f.fails(exitUsage, "enqueue", "--kind", "k", "--timeout", "1s")
	f.fails(exitUsage, "enqueue", "--kind", "k", "--wait", "--timeout", "-1s")
	page, err = f.client.List(context.Background(), spool.ListParams{Queue: "default"})
	if err != nil || len(page.Jobs) != 0 {
		t.Fatalf("refused enqueues left jobs: %+v, %v", page, err)
	}
}
