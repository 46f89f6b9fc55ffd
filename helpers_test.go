package spool_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/remote"
	"github.com/spoolrun/spool/store/sqlite"
)

// testNow is the fixed clock of stores made by openStore: tests that check
// run-at times compare against it. It has no sub-microsecond part, so it
// survives the store's microsecond precision.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedClock() time.Time { return testNow }

// openStore opens a fresh SQLite store in t's temporary directory, with the
// fixed clock, and closes it when the test ends. It returns the file's path
// for tests that open their own connection to it.
func openStore(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spool.db")
	st, err := sqlite.Open(path, sqlite.Config{Now: fixedClock})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st, path
}

// newClient returns a Client over st. Delays are resolved by the store, on
// its fixed clock.
func newClient(t *testing.T, st store.Store) *spool.Client {
	t.Helper()
	c, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// plainStore wraps a store and declares none of its capabilities, as a
// wrapper that cannot forward them must.
type plainStore struct{ store.Store }

func (plainStore) Capabilities() store.Capabilities { return store.Capabilities{} }

// claim claims exactly one job from queue, as a worker would.
func claim(t *testing.T, st store.Store, queue string) *store.Job {
	t.Helper()
	jobs, err := st.Claim(context.Background(), store.ClaimParams{Queue: queue, Limit: 1, LockFor: time.Minute, Worker: "test"})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if len(jobs) != 1 {
		t.Fatalf("Claim got %d jobs, want 1", len(jobs))
	}
	return jobs[0]
}

// trySettle applies one verdict to a claimed job, as a worker would. It is
// safe to call from any goroutine.
func trySettle(st store.Store, job *store.Job, v store.Verdict) error {
	v.ID, v.Token = job.ID, job.LockToken
	errs, err := st.Settle(context.Background(), []store.Verdict{v})
	if err != nil {
		return err
	}
	return errs[0]
}

// settle applies one verdict to a claimed job and fails the test if it is refused.
func settle(t *testing.T, st store.Store, job *store.Job, v store.Verdict) {
	t.Helper()
	if err := trySettle(st, job, v); err != nil {
		t.Fatalf("Settle %s: %v", v.Outcome, err)
	}
}

// countJobs returns how many jobs the store holds, in any state.
func countJobs(t *testing.T, c *spool.Client) int {
	t.Helper()
	page, err := c.List(context.Background(), spool.ListParams{Limit: store.MaxListLimit})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return len(page.Jobs)
}

// mustGet returns the job with the given ID.
func mustGet(t *testing.T, c *spool.Client, id spool.ID) *spool.Job {
	t.Helper()
	job, err := c.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return job
}

// serveStore serves st with spool serve, without keys, on a loopback port,
// and returns the server and a dial that opens a remote store on it.
func serveStore(t *testing.T, st store.Store) (*server.Server, func() store.Store) {
	t.Helper()
	srv, err := server.New(server.Config{Store: st, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Drain()
		hs.Close()
	})
	return srv, func() store.Store {
		rs, err := remote.Open(hs.URL, remote.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rs.Close() })
		return rs
	}
}
