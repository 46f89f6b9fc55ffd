package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// TestMain gives the package a PostgreSQL database of its own for the
// postgres:// tests (see internal/pgtest), and fails the package if a
// command leaves a goroutine behind: every worker must be stopped and every
// store closed before a command returns.
func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// result is what one CLI run produced.
type result struct {
	code   int
	stdout string
	stderr string
}

// cli runs the spool command line in process, as the binary would, with
// stdin and an environment that has nothing but env.
func cli(ctx context.Context, stdin string, env map[string]string, args ...string) result {
	var stdout, stderr bytes.Buffer
	a := newApp(strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return env[k] })
	code := a.run(ctx, args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// fixture is a test's own SQLite file, with a store opened on it for
// checking what the commands did.
type fixture struct {
	t      *testing.T
	url    string // --store value
	st     *sqlite.Store
	client *spool.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spool.db")
	st, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, url: "sqlite:" + path, st: st, client: c}
}

// run runs a command against the fixture's store.
func (f *fixture) run(args ...string) result {
	return f.runIn(context.Background(), "", args...)
}

func (f *fixture) runIn(ctx context.Context, stdin string, args ...string) result {
	return cli(ctx, stdin, nil, append([]string{"--store", f.url}, args...)...)
}

// ok runs a command that must succeed and returns its stdout.
func (f *fixture) ok(args ...string) string {
	f.t.Helper()
	r := f.run(args...)
	if r.code != 0 {
		f.t.Fatalf("spool %s: exit %d, stderr %q, stdout %q", strings.Join(args, " "), r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

// okJSON runs a command with --json that must succeed and decodes its stdout.
func (f *fixture) okJSON(v any, args ...string) {
	f.t.Helper()
	out := f.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		f.t.Fatalf("spool %s --json: %v in %q", strings.Join(args, " "), err, out)
	}
}

// fails runs a command that must exit with code and returns its result.
func (f *fixture) fails(code int, args ...string) result {
	f.t.Helper()
	r := f.run(args...)
	if r.code != code {
		f.t.Fatalf("spool %s: exit %d, want %d; stderr %q, stdout %q", strings.Join(args, " "), r.code, code, r.stderr, r.stdout)
	}
	return r
}

// enqueue adds a job through the CLI and returns its ID.
func (f *fixture) enqueue(args ...string) spool.ID {
	f.t.Helper()
	out := f.ok(append([]string{"enqueue"}, args...)...)
	id, err := spool.ParseID(strings.TrimSpace(out))
	if err != nil {
		f.t.Fatalf("enqueue printed %q: %v", out, err)
	}
	return id
}

func (f *fixture) get(id spool.ID) *spool.Job {
	f.t.Helper()
	j, err := f.client.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

// wait waits until the job is finished.
func (f *fixture) wait(id spool.ID) *spool.Job {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := f.client.Wait(ctx, id)
	if err != nil {
		f.t.Fatalf("wait for %s: %v", id, err)
	}
	return j
}

// kill makes a dead letter the way a worker would: enqueues a job with one
// attempt, claims it and fails it.
func (f *fixture) kill(queue, kind, message string) spool.ID {
	f.t.Helper()
	ctx := context.Background()
	// The lowest priority number is claimed before the queue's other jobs.
	opts := &spool.EnqueueOptions{Queue: queue, MaxAttempts: 1, Priority: store.MinPriority}
	res, err := f.client.EnqueueMany(ctx, spool.RawItem(kind, []byte(`{"n":1}`), opts))
	if err != nil {
		f.t.Fatal(err)
	}
	jobs, err := f.st.Claim(ctx, store.ClaimParams{Queue: queue, Limit: 1, LockFor: time.Minute})
	if err != nil || len(jobs) != 1 {
		f.t.Fatalf("claim: %d jobs, %v", len(jobs), err)
	}
	errs, err := f.st.Settle(ctx, []store.Verdict{{ID: jobs[0].ID, Token: jobs[0].LockToken, Outcome: store.Fail,
		Error: &store.AttemptError{Message: message}}})
	if err != nil || errs[0] != nil {
		f.t.Fatalf("settle: %v %v", err, errs)
	}
	if j := f.get(res[0].ID); j.State != spool.StateDead {
		f.t.Fatalf("job is %s, want dead", j.State)
	}
	return res[0].ID
}
