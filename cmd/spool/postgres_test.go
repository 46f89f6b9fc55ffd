package main

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/pgtest"
)

// pgStoreURL returns a --store URL for the package's PostgreSQL database in
// a schema of the test's own (dropped when it ends), or skips the test when
// there is no PostgreSQL (see internal/pgtest).
func pgStoreURL(t *testing.T) (storeURL, schema string) {
	t.Helper()
	base := pgtest.URL(t)
	schema = pgtest.Schema(t)
	return withQuery(base, pgParamSchema, schema), schema
}

// pgFixture is a fixture on PostgreSQL: the commands run with --store set
// to the test's schema. Its st and client are unset; checks go through the
// CLI itself.
func pgFixture(t *testing.T) *fixture {
	t.Helper()
	u, _ := pgStoreURL(t)
	return &fixture{t: t, url: u}
}

func TestPostgresRoundTrip(t *testing.T) {
	t.Parallel()
	f := pgFixture(t)

	// Read commands refuse a schema that has no store yet, like a missing SQLite file.
	r := f.fails(exitFailed, "jobs", "list")
	if !strings.Contains(r.stderr, "no store at") || !strings.Contains(r.stderr, "no Spool tables") {
		t.Fatalf("jobs list on an empty schema: stderr %q", r.stderr)
	}

	var enq struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	f.okJSON(&enq, "enqueue", "--queue", "pg", "--kind", "echo", "--payload", `{"n": 1}`)
	if enq.State != "available" {
		t.Fatalf("enqueue --json = %+v", enq)
	}
	second := f.enqueue("--queue", "pg", "--kind", "echo", "--payload", `{"n": 2}`)

	var page struct {
		Jobs []jobJSON `json:"jobs"`
	}
	f.okJSON(&page, "jobs", "list", "--queue", "pg")
	if len(page.Jobs) != 2 || page.Jobs[0].ID != enq.ID || page.Jobs[1].ID != second.String() {
		t.Fatalf("jobs list: %+v", page.Jobs)
	}
	if page.Jobs[0].State != spool.StateAvailable {
		t.Fatalf("jobs list: first job %s, want available", page.Jobs[0].State)
	}

	// spool work runs both; stdout becomes the result.
	stop := startWork(t, f, "--queue", "pg", "--poll", "50ms", "--", "cat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		f.okJSON(&page, "jobs", "list", "--queue", "pg", "--state", "completed")
		if len(page.Jobs) == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("jobs not completed by spool work: %+v", page.Jobs)
		case <-time.After(20 * time.Millisecond): // polling another "process": no signal to wait on
		}
	}
	if res := stop(); res.code != 0 || !strings.Contains(res.stderr, "working") || strings.Contains(res.stderr, "level=ERROR") {
		t.Fatalf("work: exit %d, stderr %q", res.code, res.stderr)
	}
	var got jobJSON
	f.okJSON(&got, "jobs", "get", enq.ID)
	var result struct{ N int }
	if err := json.Unmarshal(got.Result, &result); err != nil || got.State != spool.StateCompleted || result.N != 1 {
		t.Fatalf("jobs get: state %s, result %s", got.State, got.Result)
	}

	var stats struct {
		Queues []queueJSON `json:"queues"`
	}
	f.okJSON(&stats, "stats")
	if len(stats.Queues) != 1 || stats.Queues[0].Counts["completed"] != 2 {
		t.Fatalf("stats: %+v", stats.Queues)
	}
}

func TestPostgresPollOnly(t *testing.T) {
	t.Parallel()
	f := pgFixture(t)
	f.url = withQuery(f.url, pgParamPollOnly, "1")
	id := f.enqueue("--kind", "k")
	stop := startWork(t, f, "--poll", "20ms", "--", "true")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got jobJSON
		f.okJSON(&got, "jobs", "get", id.String())
		if got.State == spool.StateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s in poll-only mode: %s after 30s", id, got.State)
		}
		time.Sleep(20 * time.Millisecond) // polling another "process": no signal to wait on
	}
	if r := stop(); r.code != 0 {
		t.Fatalf("work: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestPostgresBenchUsesAScratchSchema(t *testing.T) {
	t.Parallel()
	base := pgtest.URL(t)
	r := cli(context.Background(), "", nil, "--store", base, "bench", "--jobs", "300", "--workers", "10", "--json")
	if r.code != 0 {
		t.Fatalf("bench: exit %d, stderr %q", r.code, r.stderr)
	}
	var res struct {
		Mode string `json:"mode"`
		Jobs int    `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Jobs != 300 {
		t.Fatalf("bench --json: %q (%v)", r.stdout, err)
	}
	// The scratch schema is gone, and the default schema was never made.
	conn, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background()) //nolint:errcheck // test cleanup
	var left []string
	rows, err := conn.Query(t.Context(), `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'spool_bench_%' OR nspname = 'spool'`)
	if err != nil {
		t.Fatal(err)
	}
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// Other tests of this package run at the same time but never bench or use the default schema.
	if len(left) != 0 {
		t.Fatalf("bench left schemas behind: %v", left)
	}

	// With ?schema=NAME, bench uses that schema and leaves it.
	u, schema := pgStoreURL(t)
	if r := cli(context.Background(), "", nil, "--store", u, "bench", "--jobs", "50", "--workers", "5"); r.code != 0 ||
		!strings.Contains(r.stdout, "50 jobs") {
		t.Fatalf("bench in schema %s: exit %d, stdout %q, stderr %q", schema, r.code, r.stdout, r.stderr)
	}
	f := &fixture{t: t, url: u}
	var stats struct {
		Queues []queueJSON `json:"queues"`
	}
	f.okJSON(&stats, "stats")
	if len(stats.Queues) != 1 || stats.Queues[0].Queue != "bench" || stats.Queues[0].Counts["completed"] != 50 {
		t.Fatalf("stats after bench in a named schema: %+v", stats.Queues)
	}
}

func TestMigratePostgres(t *testing.T) {
	t.Parallel()
	f := pgFixture(t)
	schema := mustQuery(t, f.url).Get(pgParamSchema)

	type status struct {
		Backend string          `json:"backend"`
		Schema  string          `json:"schema"`
		Current int             `json:"current"`
		Latest  int             `json:"latest"`
		Applied []migrationJSON `json:"applied"`
		Pending []migrationJSON `json:"pending"`
	}
	var st status
	f.okJSON(&st, "migrate", "status")
	// Versions may have gaps: count the migrations there are.
	known := len(st.Pending)
	if st.Backend != "postgres" || st.Schema != schema || st.Current != 0 || st.Latest < 1 || known < 1 || st.Pending[known-1].Version != st.Latest || len(st.Applied) != 0 {
		t.Fatalf("status of a new schema: %+v", st)
	}
	if out := f.ok("migrate", "status"); !strings.Contains(out, "no Spool tables yet") || !strings.Contains(out, "pending") {
		t.Fatalf("status table:\n%s", out)
	}

	var res migrateResultJSON
	f.okJSON(&res, "migrate", "up")
	if res.From != 0 || res.To != st.Latest || len(res.Steps) != known || res.Steps[0].Direction != "up" {
		t.Fatalf("up: %+v", res)
	}
	if out := f.ok("migrate", "up"); !strings.Contains(out, "nothing to do") {
		t.Fatalf("second up: %q", out)
	}
	f.okJSON(&st, "migrate", "status")
	if st.Current != st.Latest || len(st.Pending) != 0 || len(st.Applied) != known || st.Applied[0].AppliedAt == nil {
		t.Fatalf("status after up: %+v", st)
	}
	if out := f.ok("migrate", "status"); !strings.Contains(out, "up to date") {
		t.Fatalf("status table after up:\n%s", out)
	}

	// With skip_migrate=1 the schema is used as it is.
	id := f.enqueue("--kind", "k")
	skip := &fixture{t: t, url: withQuery(f.url, pgParamSkipMigrate, "1")}
	skip.ok("jobs", "get", id.String())

	// Down needs --to; the wrong direction is refused; --to 0 drops the tables.
	f.fails(exitUsage, "migrate", "down")
	f.fails(exitUsage, "migrate", "down", "--to", "99")
	f.fails(exitUsage, "migrate", "up", "--to", "-1")
	f.okJSON(&res, "migrate", "down", "--to", "0")
	if res.From != st.Latest || res.To != 0 || len(res.Steps) != known || res.Steps[0].Direction != "down" {
		t.Fatalf("down: %+v", res)
	}
	f.fails(exitFailed, "jobs", "get", id.String())
	// A schema that is not up to date is refused with skip_migrate=1, and
	// migrated on open without it.
	if r := skip.fails(exitFailed, "enqueue", "--kind", "k"); !strings.Contains(r.stderr, "spool migrate up") {
		t.Fatalf("skip_migrate on an empty schema: %q", r.stderr)
	}
	f.enqueue("--kind", "k")

	// print needs no database: the script names the schema and applies
	// cleanly in one transaction to a fresh schema.
	other := pgtest.Schema(t)
	script := f.ok("migrate", "print", "--store", withQuery(pgtest.URL(t), pgParamSchema, other))
	for _, want := range []string{"CREATE TABLE " + other + ".jobs", "pg_advisory_xact_lock", "INSERT INTO " + other + ".migrations"} {
		if !strings.Contains(script, want) {
			t.Fatalf("migrate print lacks %q:\n%s", want, script)
		}
	}
	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background()) //nolint:errcheck // test cleanup
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), script); err != nil {
		t.Fatalf("run the printed script: %v", err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	printed := &fixture{t: t, url: withQuery(pgtest.URL(t), pgParamSchema, other)}
	printed.okJSON(&st, "migrate", "status")
	if st.Current != st.Latest {
		t.Fatalf("status after running the printed script: %+v", st)
	}
	down := f.ok("migrate", "print", "--from", "1", "--to", "0")
	if !strings.Contains(down, "DROP TABLE") || !strings.Contains(down, "DELETE FROM "+schema+".migrations") {
		t.Fatalf("down script:\n%s", down)
	}
	f.fails(exitUsage, "migrate", "print", "--to", "99")
}

func TestMigrateSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spool.db")
	f := &fixture{t: t, url: "sqlite:" + path}

	// status of a file that does not exist: not found, nothing created.
	f.fails(exitFailed, "migrate", "status")
	var res migrateResultJSON
	f.okJSON(&res, "migrate", "up")
	// Versions may have gaps: the last step is the newest version.
	if res.Backend != "sqlite" || res.From != 0 || res.To < 1 || len(res.Steps) < 1 || res.Steps[len(res.Steps)-1].Version != res.To {
		t.Fatalf("up on a new file: %+v", res)
	}
	if out := f.ok("migrate", "up"); !strings.Contains(out, "nothing to do") || !strings.Contains(out, "migrate themselves") {
		t.Fatalf("second up: %q", out)
	}
	var st migrationStatusJSON
	f.okJSON(&st, "migrate", "status")
	if st.Backend != "sqlite" || st.Path != path || st.Current != st.Latest || len(st.Pending) != 0 || len(st.Applied) != len(res.Steps) {
		t.Fatalf("status: %+v", st)
	}
	if r := f.fails(exitUsage, "migrate", "down", "--to", "0"); !strings.Contains(r.stderr, "for PostgreSQL") {
		t.Fatalf("down on sqlite: %q", r.stderr)
	}
	f.fails(exitUsage, "migrate", "up", "--to", "1")
	if out := f.ok("migrate", "print"); !strings.Contains(out, "CREATE TABLE") {
		t.Fatalf("print on sqlite:\n%s", out)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}
