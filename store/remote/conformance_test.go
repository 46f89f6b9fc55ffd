package remote_test

import (
	"database/sql"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/remote"
	"github.com/spoolrun/spool/store/sqlite"
	"github.com/spoolrun/spool/store/storetest"
)

// served is a test's spool serve: the API over a store, on a local port.
type served struct {
	under store.Store // the store the server serves
	url   string
	// corrupt edits a stored schedule behind the store's back.
	corrupt func(t *testing.T, ref store.ScheduleRef, column, value string)
}

// servers remembers the server of each remote store the tests open.
var servers sync.Map // store.Store -> *served

// serve serves under over HTTP until the test ends, then closes it.
func serve(t *testing.T, under store.Store) *served {
	t.Helper()
	srv, err := server.New(server.Config{Store: under, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Drain()
		hs.Close()
		if err := under.Close(); err != nil {
			t.Errorf("close the served store: %v", err)
		}
	})
	return &served{under: under, url: hs.URL}
}

// dial opens a remote store on sv.
func dial(t *testing.T, sv *served) store.Store {
	t.Helper()
	s, err := remote.Open(sv.url, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	servers.Store(store.Store(s), sv)
	return s
}

func serverOf(t *testing.T, s store.Store) *served {
	t.Helper()
	sv, ok := servers.Load(s)
	if !ok {
		t.Fatal("not a remote store this test opened")
	}
	s2, ok := sv.(*served)
	if !ok {
		t.Fatalf("%T is not a *served", sv)
	}
	return s2
}

// backend is the suite's description of remote stores served by open.
func backend(open func(t *testing.T, now func() time.Time) *served) storetest.Backend {
	return storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) store.Store {
			return dial(t, open(t, now))
		},
		// The server's store has SQL transactions and events too; neither
		// crosses HTTP (events have routes of their own, not a remote
		// EventStore yet).
		Features: storetest.Features{Schedules: true, Notify: true, ClaimWait: true, Workers: true, MultiHandle: true, NotifyAcrossHandles: true},
		// Another handle is another remote store on the same server, as
		// a second worker process would have.
		Reopen: func(t *testing.T, s store.Store, _ func() time.Time) store.Store {
			return dial(t, serverOf(t, s))
		},
		CorruptSchedule: func(t *testing.T, s store.Store, ref store.ScheduleRef, column, value string) {
			serverOf(t, s).corrupt(t, ref, column, value)
		},
	}
}

// TestConformanceSQLite runs the store suite against remote stores on a
// server over SQLite; every subtest gets a server and a file of its own.
func TestConformanceSQLite(t *testing.T) {
	storetest.Run(t, backend(func(t *testing.T, now func() time.Time) *served {
		path := filepath.Join(t.TempDir(), "spool.db")
		under, err := sqlite.Open(path, sqlite.Config{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		sv := serve(t, under)
		sv.corrupt = func(t *testing.T, ref store.ScheduleRef, column, value string) {
			db, err := sql.Open("sqlite", sqlite.DSN(path, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`UPDATE spool_schedules SET `+column+` = ? WHERE tenant = ? AND id = ?`, value, ref.Tenant, ref.ID); err != nil {
				t.Fatal(err)
			}
		}
		return sv
	}))
}

// TestConformancePostgres runs the store suite against remote stores on a
// server over PostgreSQL; every subtest gets a server and a schema of its
// own.
func TestConformancePostgres(t *testing.T) {
	url := pgtest.URL(t)
	storetest.Run(t, backend(func(t *testing.T, now func() time.Time) *served {
		under, err := postgres.Open(t.Context(), url, postgres.Config{Now: now, Schema: pgtest.Schema(t), MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		sv := serve(t, under)
		sv.corrupt = func(t *testing.T, ref store.ScheduleRef, column, value string) {
			if _, err := under.Pool().Exec(t.Context(), `UPDATE `+under.Schema()+`.schedules SET `+column+` = $1 WHERE tenant = $2 AND id = $3`,
				value, ref.Tenant, ref.ID); err != nil {
				t.Fatal(err)
			}
		}
		return sv
	}))
}
