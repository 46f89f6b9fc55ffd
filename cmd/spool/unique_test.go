package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
)

// --unique-for keeps the key past the job: the same enqueue --wait within
// the window answers the first job's result at once, and jobs get
// --unique-key reads it back.
func TestEnqueueUniqueForAndGetByKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	startWork(t, f, "--queue", "quotes", "--poll", "50ms", "--", "sh", "-c",
		`n=$(sed 's/[^0-9]//g'); printf '{"price": %d}' $((n * 2))`)
	quote := func(n string) result {
		return f.run("enqueue", "--queue", "quotes", "--kind", "quote", "--payload", `{"n": `+n+`}`, "--tenant", "acme",
			"--unique-key", "quote-a1", "--unique-for", "5m", "--wait", "--timeout", "30s")
	}
	if r := quote("21"); r.code != 0 || r.stdout != `{"price": 42}`+"\n" {
		t.Fatalf("first enqueue --wait: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r := quote("1")
	if r.code != 0 || r.stdout != `{"price": 42}`+"\n" || !strings.Contains(r.stderr, "not added: waiting for completed job") {
		t.Fatalf("enqueue --wait within the window: exit %d, stdout %q, stderr %q; want the first job's result", r.code, r.stdout, r.stderr)
	}

	var job wire.Job
	f.okJSON(&job, "jobs", "get", "--unique-key", "quote-a1", "--tenant", "acme")
	if job.State != spool.StateCompleted || compactJSON(t, job.Result) != `{"price":42}` || job.UniqueUntil == nil ||
		!job.UniqueUntil.Equal(job.CreatedAt.Add(5*time.Minute)) {
		t.Fatalf("jobs get --unique-key --json = %+v", job)
	}
	if out := f.ok("jobs", "get", "--unique-key", "quote-a1", "--tenant", "acme"); !strings.Contains(out, "Unique until:") || !strings.Contains(out, job.ID) {
		t.Fatalf("jobs get --unique-key:\n%s", out)
	}
	var dup struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
		State     string `json:"state"`
	}
	f.okJSON(&dup, "enqueue", "--queue", "quotes", "--kind", "quote", "--tenant", "acme", "--unique-key", "quote-a1")
	if !dup.Duplicate || dup.ID != job.ID || dup.State != "completed" {
		t.Fatalf("enqueue --json within the window = %+v, want a duplicate of %s", dup, job.ID)
	}

	f.fails(exitFailed, "jobs", "get", "--unique-key", "quote-a1") // another tenant's
	f.fails(exitUsage, "jobs", "get")
	f.fails(exitUsage, "jobs", "get", job.ID, "--unique-key", "quote-a1")
	f.fails(exitUsage, "jobs", "get", job.ID, "--tenant", "acme")
	f.fails(exitUsage, "enqueue", "--kind", "k", "--unique-for", "5m")
	f.fails(exitUsage, "enqueue", "--kind", "k", "--unique-key", "u", "--unique-for", "721h")
}
