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

	"github.com/spoolrun/spool"
)

// scheduleGet is the --json output of spool schedules get.
type scheduleGet struct {
	scheduleJSON
	LastRuns []runJSON   `json:"last_runs"`
	NextRuns []time.Time `json:"next_runs"`
}

// schedulePage is the --json output of spool schedules list.
type schedulePage struct {
	Schedules []scheduleJSON `json:"schedules"`
	Next      string         `json:"next"`
}

// perRefOutput is the --json output of pause, resume and delete.
type perRefOutput struct {
	Done    []string `json:"done"`
	Refused []struct {
		ID    string            `json:"id"`
		Error map[string]string `json:"error"`
	} `json:"refused"`
}

func (f *fixture) schedule(tenant, id string) (*spool.Schedule, error) {
	return f.client.Schedules().Get(context.Background(), spool.ScheduleRef{Tenant: tenant, ID: id})
}

func TestSchedulesAddGetList(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	var added struct {
		scheduleJSON
		Created bool `json:"created"`
	}
	f.okJSON(&added, "schedules", "add", "nightly", "--spec", "0 2 * * *", "--zone", "Europe/Berlin", "--kind", "report",
		"--queue", "reports", "--payload", `{"scope":"daily"}`, "--priority", "-5", "--max-attempts", "3",
		"--overlap", "queue_one", "--misfire", "catch_up", "--catch-up-max", "4")
	if !added.Created || added.Version != 1 || added.ID != "nightly" || added.NextRunAt == nil {
		t.Fatalf("add --json = %+v", added)
	}
	// 02:00 in Berlin is 00:00 or 01:00 UTC, the next one within a day.
	next := *added.NextRunAt
	if h := next.Hour(); (h != 0 && h != 1) || next.Minute() != 0 || time.Until(next) > 25*time.Hour || time.Until(next) < 0 {
		t.Fatalf("next run %v: want the next 02:00 in Europe/Berlin", next)
	}

	// What the store holds is what was asked for.
	sc, err := f.schedule("", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Spec != "0 2 * * *" || sc.Zone != "Europe/Berlin" || sc.Queue != "reports" || sc.Kind != "report" ||
		string(sc.Payload) != `{"scope":"daily"}` || sc.Priority != -5 || sc.MaxAttempts != 3 ||
		sc.Overlap != spool.OverlapQueueOne || sc.Misfire != spool.MisfireCatchUp || sc.CatchUpMax != 4 ||
		sc.Mode != spool.ModeFixedRate || sc.Paused {
		t.Fatalf("stored schedule = %+v", sc)
	}

	// Text output names the schedule, its version and next run.
	out := f.ok("schedules", "add", "hourly", "--spec", "@hourly", "--kind", "ping")
	if !strings.HasPrefix(out, "created schedule hourly: version 1, next run ") {
		t.Fatalf("add printed %q", out)
	}
	// Adding again updates: the version goes up.
	out = f.ok("schedules", "add", "hourly", "--spec", "@hourly", "--kind", "ping", "--priority", "3")
	if !strings.HasPrefix(out, "updated schedule hourly: version 2") {
		t.Fatalf("second add printed %q", out)
	}
	// --payload-file, and --paused on creation.
	payload := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(payload, []byte(`{"from":"file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out = f.ok("schedules", "add", "every", "--spec", "@every 90s", "--kind", "sync", "--mode", "fixed_delay",
		"--payload-file", payload, "--paused")
	if !strings.Contains(out, "paused") {
		t.Fatalf("add --paused printed %q", out)
	}
	if sc, err := f.schedule("", "every"); err != nil || !sc.Paused || string(sc.Payload) != `{"from":"file"}` || sc.Mode != spool.ModeFixedDelay {
		t.Fatalf("every: %+v, %v", sc, err)
	}
	// Another tenant's schedule of the same ID is another schedule.
	f.ok("schedules", "add", "nightly", "--spec", "0 3 * * *", "--kind", "report", "--tenant", "acme")

	// get --json: every field, the next slots, no runs yet.
	var got scheduleGet
	f.okJSON(&got, "schedules", "get", "nightly", "--next", "3")
	if got.ID != "nightly" || got.Version != 1 || got.Spec != "0 2 * * *" || got.Queue != "reports" || got.MaxAttempts != 3 ||
		got.Overlap != spool.OverlapQueueOne || got.CatchUpMax != 4 || len(got.LastRuns) != 0 || len(got.NextRuns) != 3 ||
		!got.NextRuns[0].Equal(next) || got.NextRuns[1].Sub(got.NextRuns[0]) < 23*time.Hour {
		t.Fatalf("get --json = %+v", got)
	}
	var raw map[string]any
	f.okJSON(&raw, "schedules", "get", "nightly")
	for k, want := range map[string]string{"overlap": `"queue_one"`, "misfire": `"catch_up"`, "mode": `"fixed_rate"`,
		"payload": `{"scope":"daily"}`, "zone": `"Europe/Berlin"`} {
		if b, _ := json.Marshal(raw[k]); string(b) != want {
			t.Errorf("get --json: %s = %s, want %s", k, b, want)
		}
	}
	for _, k := range []string{"next_run_at", "created_at", "updated_at"} {
		s, _ := raw[k].(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("get --json: %s = %q is not RFC 3339: %v", k, s, err)
		}
	}
	if out := f.ok("schedules", "get", "nightly"); !strings.Contains(out, "Europe/Berlin") ||
		!strings.Contains(out, "catch_up, at most 4") || !strings.Contains(out, "Next slots (5)") {
		t.Errorf("get table:\n%s", out)
	}
	var acme scheduleGet
	f.okJSON(&acme, "schedules", "get", "nightly", "--tenant", "acme")
	if acme.Tenant != "acme" || acme.Spec != "0 3 * * *" {
		t.Fatalf("get --tenant acme = %+v", acme)
	}

	// list: in ID order, one tenant at a time, a page at a time.
	var page schedulePage
	f.okJSON(&page, "schedules", "list")
	if ids := scheduleIDs(page.Schedules); ids != "every,hourly,nightly" || page.Next != "" {
		t.Fatalf("list: %s, next %q", ids, page.Next)
	}
	f.okJSON(&page, "schedules", "list", "--limit", "2")
	if ids := scheduleIDs(page.Schedules); ids != "every,hourly" || page.Next != "hourly" {
		t.Fatalf("list --limit 2: %s, next %q", ids, page.Next)
	}
	f.okJSON(&page, "schedules", "list", "--limit", "2", "--after", page.Next)
	if ids := scheduleIDs(page.Schedules); ids != "nightly" || page.Next != "" {
		t.Fatalf("list --after: %s, next %q", ids, page.Next)
	}
	f.okJSON(&page, "schedules", "list", "--limit", "1", "--all")
	if ids := scheduleIDs(page.Schedules); ids != "every,hourly,nightly" || page.Next != "" {
		t.Fatalf("list --limit 1 --all: %s, next %q", ids, page.Next)
	}
	f.okJSON(&page, "schedules", "list", "--tenant", "acme")
	if ids := scheduleIDs(page.Schedules); ids != "nightly" || page.Schedules[0].Tenant != "acme" {
		t.Fatalf("list --tenant acme: %s", ids)
	}
	r := f.run("schedules", "list", "--limit", "2")
	if r.code != 0 || !strings.Contains(r.stdout, "NEXT RUN") || !strings.Contains(r.stdout, "hourly") ||
		strings.Contains(r.stdout, "nightly") || !strings.Contains(r.stderr, "--after hourly") {
		t.Fatalf("list table: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := f.run("schedules", "list", "--tenant", "nobody"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no schedules") {
		t.Fatalf("empty list: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	f.fails(exitUsage, "schedules", "list", "--limit", "5000")
	f.fails(exitUsage, "schedules", "list", "--tenant", "bad tenant")
	f.fails(exitFailed, "schedules", "get", "missing")
	f.fails(exitUsage, "schedules", "get", "nightly", "--next", "-1")
}

func scheduleIDs(scs []scheduleJSON) string {
	ids := make([]string, len(scs))
	for i, s := range scs {
		ids[i] = s.ID
	}
	return strings.Join(ids, ",")
}

func TestSchedulesAddRefusesInvalidInput(t *testing.T) {
	t.Parallel()
	// On a store that does not exist yet: refused, and no store created.
	path := filepath.Join(t.TempDir(), "spool.db")
	r := cli(context.Background(), "", nil, "--store", "sqlite:"+path, "schedules", "add", "s", "--spec", "0 2 * *", "--kind", "k")
	if r.code != exitUsage || !strings.Contains(r.stderr, `invalid schedule spec "0 2 * *"`) || r.stdout != "" {
		t.Fatalf("bad spec: exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused add created the store: %v", err)
	}

	f := newFixture(t)
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"--spec", "61 * * * *", "--kind", "k"}, "invalid schedule spec"},
		{[]string{"--spec", "0 0 30 2 *", "--kind", "k"}, "invalid schedule spec"},
		{[]string{"--spec", "CRON_TZ=Europe/Berlin 0 2 * * *", "--kind", "k"}, "time zone prefix"},
		{[]string{"--spec", "@every 0s", "--kind", "k"}, "invalid schedule spec"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--zone", "Mars/Olympus"}, `unknown time zone "Mars/Olympus"`},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--zone", "Local"}, "unknown time zone"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--overlap", "never"}, "overlap policy"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--misfire", "later"}, "misfire policy"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--mode", "fast"}, "mode"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--mode", "fixed_delay"}, "fixed_delay needs"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--catch-up-max", "3"}, "catch-up max"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--payload", "{nope"}, "payload"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--payload", "{}", "--payload-file", "x.json"}, "not both"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--payload-file", filepath.Join(t.TempDir(), "none.json")}, "--payload-file"},
		{[]string{"--spec", "0 2 * * *", "--kind", "bad kind"}, "kind"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--priority", "1000"}, "priority"},
		{[]string{"--spec", "0 2 * * *", "--kind", "k", "--version", "-1"}, "version"},
		{[]string{"--spec", "0 2 * * *"}, "kind"}, // no --kind
		{[]string{"--kind", "k"}, "spec"},         // no --spec
	} {
		r := f.run(append([]string{"schedules", "add", "s"}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("add %v: exit %d, stderr %q, stdout %q; want exit 2 and %q", tc.args, r.code, r.stderr, r.stdout, tc.want)
		}
	}
	// Every mistake at once.
	r = f.fails(exitUsage, "schedules", "add", "s", "--spec", "0 2 * *", "--zone", "Nowhere/Town", "--kind", "k", "--overlap", "x")
	if !strings.Contains(r.stderr, "spec") || !strings.Contains(r.stderr, "Nowhere/Town") || !strings.Contains(r.stderr, "overlap") {
		t.Errorf("several mistakes: stderr %q", r.stderr)
	}
	// --json: the error on stdout, with code "invalid".
	r = f.fails(exitUsage, "schedules", "add", "s", "--spec", "every day", "--kind", "k", "--json")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Error.Code != "invalid" || !strings.Contains(e.Error.Message, "every day") {
		t.Fatalf("--json error output %q (%v)", r.stdout, err)
	}
	f.fails(exitUsage, "schedules", "add", "bad id!", "--spec", "@daily", "--kind", "k")
	f.fails(exitUsage, "schedules", "add", "--spec", "@daily", "--kind", "k")

	page, err := f.client.Schedules().List(context.Background(), spool.ScheduleListParams{})
	if err != nil || len(page.Schedules) != 0 {
		t.Fatalf("refused adds left %d schedules (%v)", len(page.Schedules), err)
	}
}

func TestSchedulesVersionConflict(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ok("schedules", "add", "s", "--spec", "0 2 * * *", "--kind", "k")
	out := f.ok("schedules", "add", "s", "--spec", "0 3 * * *", "--kind", "k", "--version", "1")
	if !strings.Contains(out, "version 2") {
		t.Fatalf("add --version 1 printed %q", out)
	}
	// A stale version: nothing written, exit 3, and how to recover.
	r := f.fails(exitConflict, "schedules", "add", "s", "--spec", "0 4 * * *", "--kind", "k", "--version", "1")
	if !strings.Contains(r.stderr, "spool schedules get s") || !strings.Contains(r.stderr, "--version 2") || r.stdout != "" {
		t.Fatalf("stale --version: stderr %q, stdout %q", r.stderr, r.stdout)
	}
	r = f.fails(exitConflict, "schedules", "add", "s", "--spec", "0 4 * * *", "--kind", "k", "--version", "5", "--json")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Error.Code != "conflict" {
		t.Fatalf("stale --version --json: %q (%v)", r.stdout, err)
	}
	if sc, err := f.schedule("", "s"); err != nil || sc.Spec != "0 3 * * *" || sc.Version != 2 {
		t.Fatalf("after conflicts: %+v, %v", sc, err)
	}
	// A tenant's schedule: the hint names the tenant.
	f.ok("schedules", "add", "s", "--spec", "@daily", "--kind", "k", "--tenant", "acme")
	r = f.fails(exitConflict, "schedules", "add", "s", "--spec", "@daily", "--kind", "k", "--tenant", "acme", "--version", "9")
	if !strings.Contains(r.stderr, "spool schedules get s --tenant acme") {
		t.Fatalf("tenant conflict: stderr %q", r.stderr)
	}
	// --version on a schedule that does not exist: not found.
	r = f.fails(exitFailed, "schedules", "add", "ghost", "--spec", "@daily", "--kind", "k", "--version", "1")
	if !strings.Contains(r.stderr, "ghost not found") {
		t.Fatalf("--version of a missing schedule: stderr %q", r.stderr)
	}
	if _, err := f.schedule("", "ghost"); err == nil {
		t.Fatal("--version of a missing schedule created it")
	}
}

func TestSchedulesPauseResumeDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ok("schedules", "add", "a", "--spec", "@hourly", "--kind", "k")
	f.ok("schedules", "add", "b", "--spec", "@daily", "--kind", "k")
	paused := func(id string) bool {
		t.Helper()
		sc, err := f.schedule("", id)
		if err != nil {
			t.Fatal(err)
		}
		return sc.Paused
	}

	// A missing schedule is refused; the others are still paused.
	r := f.fails(exitFailed, "schedules", "pause", "a", "missing", "b")
	if r.stdout != "paused schedule a\npaused schedule b\n" || !strings.Contains(r.stderr, "1 of 3 schedule(s) refused") ||
		!strings.Contains(r.stderr, "schedule missing not found") {
		t.Fatalf("pause: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if !paused("a") || !paused("b") {
		t.Fatal("pause with a missing schedule did not pause the others")
	}
	var page schedulePage
	f.okJSON(&page, "schedules", "list")
	if len(page.Schedules) != 2 || !page.Schedules[0].Paused || page.Schedules[0].NextRunAt == nil {
		t.Fatalf("list after pause: %+v", page.Schedules)
	}

	var out perRefOutput
	r = f.fails(exitFailed, "schedules", "resume", "missing", "a", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v in %q", err, r.stdout)
	}
	if len(out.Done) != 1 || out.Done[0] != "a" || len(out.Refused) != 1 || out.Refused[0].ID != "missing" ||
		out.Refused[0].Error["code"] != "not_found" {
		t.Fatalf("resume --json: %+v", out)
	}
	if paused("a") || !paused("b") {
		t.Fatal("resume a: wrong schedules paused")
	}
	f.okJSON(&out, "schedules", "resume", "b")
	if len(out.Done) != 1 || len(out.Refused) != 0 || paused("b") {
		t.Fatalf("resume b --json: %+v", out)
	}

	// Another tenant's schedule of the same ID is left alone.
	f.ok("schedules", "add", "a", "--spec", "@hourly", "--kind", "k", "--tenant", "acme")
	if out := f.ok("schedules", "delete", "a"); out != "deleted schedule a\n" {
		t.Fatalf("delete printed %q", out)
	}
	if _, err := f.schedule("", "a"); err == nil {
		t.Fatal("delete a: schedule still there")
	}
	if _, err := f.schedule("acme", "a"); err != nil {
		t.Fatalf("delete a removed tenant acme's schedule: %v", err)
	}
	r = f.fails(exitFailed, "schedules", "delete", "a", "b")
	if !strings.Contains(r.stdout, "deleted schedule b") || !strings.Contains(r.stderr, "schedule a not found") {
		t.Fatalf("delete with a missing schedule: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if _, err := f.schedule("", "b"); err == nil {
		t.Fatal("delete a b: b still there")
	}
	r = f.fails(exitFailed, "schedules", "get", "a")
	if !strings.Contains(r.stderr, "schedule a not found") {
		t.Fatalf("get of a deleted schedule: stderr %q", r.stderr)
	}
	f.ok("schedules", "delete", "a", "--tenant", "acme")
	f.fails(exitUsage, "schedules", "pause")
	f.fails(exitUsage, "schedules", "pause", "bad id!")
	f.fails(exitUsage, "schedules", "delete", "x", "--tenant", "bad tenant")
}

func TestSchedulesTrigger(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ok("schedules", "add", "s", "--spec", "0 0 1 1 *", "--kind", "report", "--queue", "reports",
		"--payload", `{"n":1}`, "--paused", "--tenant", "acme")

	// Trigger runs the schedule now, paused or not, and prints the job.
	out := f.ok("schedules", "trigger", "s", "--tenant", "acme")
	id, err := spool.ParseID(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("trigger printed %q: %v", out, err)
	}
	j := f.get(id)
	if j.Kind != "report" || j.Queue != "reports" || j.Tenant != "acme" || string(j.Payload) != `{"n":1}` || j.State != spool.StateAvailable {
		t.Fatalf("triggered job: %+v", j)
	}

	var got scheduleGet
	f.okJSON(&got, "schedules", "get", "s", "--tenant", "acme")
	if got.Fired != 1 || got.LiveJobID != id.String() || len(got.LastRuns) != 1 ||
		got.LastRuns[0].JobID != id.String() || !got.LastRuns[0].Triggered || got.LastRuns[0].State != spool.StateAvailable {
		t.Fatalf("get after trigger: %+v", got)
	}
	if out := f.ok("schedules", "get", "s", "--tenant", "acme"); !strings.Contains(out, id.String()+"  available") {
		t.Errorf("get table after trigger:\n%s", out)
	}

	// A trigger's slot is its second, and a run's job is unique per slot:
	// a second trigger in the same second would give the same job.
	time.Sleep(time.Until(got.LastRuns[0].Slot.Add(time.Second)))
	var trig struct {
		Schedule string    `json:"schedule"`
		Tenant   string    `json:"tenant"`
		JobID    string    `json:"job_id"`
		Slot     time.Time `json:"slot"`
	}
	f.okJSON(&trig, "schedules", "trigger", "s", "--tenant", "acme")
	id2, err := spool.ParseID(trig.JobID)
	if err != nil || trig.Schedule != "s" || trig.Tenant != "acme" || trig.Slot.IsZero() || id2 == id {
		t.Fatalf("trigger --json = %+v (%v)", trig, err)
	}
	f.get(id2)

	r := f.fails(exitFailed, "schedules", "trigger", "s") // the default tenant has no "s"
	if !strings.Contains(r.stderr, "schedule s not found") {
		t.Fatalf("trigger of a missing schedule: stderr %q", r.stderr)
	}
	r = f.fails(exitFailed, "schedules", "trigger", "s", "--json")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Error.Code != "not_found" {
		t.Fatalf("trigger --json of a missing schedule: %q (%v)", r.stdout, err)
	}
	f.fails(exitUsage, "schedules", "trigger")
	f.fails(exitUsage, "schedules", "trigger", "a", "b")
}

// Read commands refuse a store that does not exist instead of creating it.
func TestSchedulesNeedAStore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing.db")
	for _, args := range [][]string{
		{"schedules", "list"},
		{"schedules", "get", "s"},
		{"schedules", "pause", "s"},
		{"schedules", "trigger", "s"},
	} {
		r := cli(context.Background(), "", nil, append([]string{"--store", path}, args...)...)
		if r.code != exitFailed || !strings.Contains(r.stderr, "no store at") {
			t.Errorf("spool %s on a missing store: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a read command created the store: %v", err)
	}
}
