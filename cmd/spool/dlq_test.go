package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spoolrun/spool"
)

func TestDLQListRequeuePurge(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d1 := f.kill("mail", "send", "smtp: 550 mailbox unavailable")
	d2 := f.kill("mail", "send", "smtp: timeout")
	d3 := f.kill("hooks", "post", "503")
	live := f.enqueue("--queue", "mail", "--kind", "send")

	var page struct {
		Jobs []jobJSON `json:"jobs"`
		Next string    `json:"next"`
	}
	f.okJSON(&page, "dlq", "list")
	if len(page.Jobs) != 3 || page.Jobs[0].ID != d1.String() || page.Jobs[0].LastError != "smtp: 550 mailbox unavailable" ||
		page.Jobs[0].DeadReason != "max_attempts" {
		t.Fatalf("dlq list: %+v", page.Jobs)
	}
	f.okJSON(&page, "dlq", "list", "--queue", "hooks")
	if len(page.Jobs) != 1 || page.Jobs[0].ID != d3.String() {
		t.Fatalf("dlq list --queue hooks: %+v", page.Jobs)
	}
	if out := f.ok("dlq", "list"); !strings.Contains(out, "smtp: timeout") || !strings.Contains(out, "REASON") {
		t.Fatalf("dlq list table:\n%s", out)
	}

	// Requeue by ID: dead letters only; a live job is refused (exit 1).
	var rq struct {
		Done    []string         `json:"done"`
		Refused []map[string]any `json:"refused"`
	}
	r := f.fails(exitFailed, "dlq", "requeue", d1.String(), live.String(), "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rq); err != nil {
		t.Fatal(err)
	}
	if len(rq.Done) != 1 || rq.Done[0] != d1.String() || len(rq.Refused) != 1 || rq.Refused[0]["id"] != live.String() {
		t.Fatalf("dlq requeue: %+v", rq)
	}
	if j := f.get(d1); j.State != spool.StateAvailable || len(j.Errors) != 1 {
		t.Fatalf("requeued job: state %s, %d errors (history must be kept)", j.State, len(j.Errors))
	}

	// purge --all must be deliberate.
	r = f.fails(exitUsage, "dlq", "purge", "--all")
	if !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("purge --all without --yes: stderr %q", r.stderr)
	}
	f.fails(exitUsage, "dlq", "purge", "--all", "--queue", "mail")
	f.fails(exitUsage, "dlq", "purge")
	f.fails(exitUsage, "dlq", "purge", d2.String(), "--all", "--yes")
	f.fails(exitUsage, "dlq", "requeue")
	if n := deadLetters(t, f); n != 2 {
		t.Fatalf("refused purges changed the dead letters: %d left, want 2", n)
	}

	// Purge by ID: a job that is not a dead letter is left alone (exit 1).
	r = f.fails(exitFailed, "dlq", "purge", d2.String(), live.String())
	if !strings.Contains(r.stdout, "purged 1") {
		t.Fatalf("purge by id: stdout %q", r.stdout)
	}
	if j := f.get(live); j.State != spool.StateAvailable {
		t.Fatalf("purge touched a live job: %s", j.State)
	}

	// requeue --all and purge --all --yes, per queue.
	d4 := f.kill("other", "send", "again")
	f.ok("dlq", "requeue", "--all", "--queue", "hooks")
	if j := f.get(d3); j.State != spool.StateAvailable {
		t.Fatalf("requeue --all --queue hooks: job is %s", j.State)
	}
	if j := f.get(d4); j.State != spool.StateDead {
		t.Fatalf("requeue --all --queue hooks requeued another queue's job: %s", j.State)
	}
	var purged struct {
		Purged int `json:"purged"`
	}
	f.okJSON(&purged, "dlq", "purge", "--all", "--yes")
	if purged.Purged != 1 || deadLetters(t, f) != 0 {
		t.Fatalf("purge --all --yes: %+v, %d left", purged, deadLetters(t, f))
	}
}

func deadLetters(t *testing.T, f *fixture) int {
	t.Helper()
	page, err := f.client.List(context.Background(), spool.ListParams{States: []spool.State{spool.StateDead}})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Jobs)
}
