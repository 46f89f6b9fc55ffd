package main

import (
	"encoding/json"
	"testing"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/wire"
)

// Per-item commands answer for each ID they were given, in order: a job
// named twice is cancelled once and refused once, and the refusal carries
// the error catalog's fields.
func TestPerItemAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.enqueue("--kind", "k")
	r := f.fails(exitFailed, "jobs", "cancel", a.String(), a.String(), "--json")
	var out struct {
		Done    []string `json:"done"`
		Refused []struct {
			ID    string     `json:"id"`
			Error wire.Error `json:"error"`
		} `json:"refused"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v in %q", err, r.stdout)
	}
	e := out.Refused
	if len(out.Done) != 1 || out.Done[0] != a.String() || len(e) != 1 || e[0].ID != a.String() ||
		e[0].Error.Code != wire.CodeWrongState || e[0].Error.State != spool.StateCancelled || e[0].Error.ID != a.String() {
		t.Fatalf("cancel of one job twice: %s", r.stdout)
	}
	if j := f.get(a); j.State != spool.StateCancelled {
		t.Fatalf("job is %s", j.State)
	}
}

// Errors printed with --json are the error catalog's wire form: the code,
// and the fields of the typed error.
func TestJSONErrorsCarryFields(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.fails(exitUsage, "enqueue", "--kind", "k", "--priority", "1000", "--json")
	var body wire.ErrorBody
	if err := json.Unmarshal([]byte(r.stdout), &body); err != nil || body.Error == nil {
		t.Fatalf("%v in %q", err, r.stdout)
	}
	if e := body.Error; e.Code != wire.CodeInvalid || e.Field != "priority" || e.Reason == "" {
		t.Fatalf("--priority 1000 --json: %s", r.stdout)
	}
	f.ok("schedules", "add", "s", "--spec", "@daily", "--kind", "k")
	r = f.fails(exitConflict, "schedules", "add", "s", "--spec", "@daily", "--kind", "k", "--version", "7", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &body); err != nil {
		t.Fatal(err)
	}
	if e := body.Error; e.Code != wire.CodeConflict || e.Resource != "schedule" || e.Want != 7 || e.Current != 1 {
		t.Fatalf("stale --version --json: %s", r.stdout)
	}
}
