package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
	"github.com/spoolrun/spool/store/storetest"
)

// files remembers each store's file, for the suite's second handles and
// raw edits.
var files sync.Map // store.Store -> path

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) store.Store {
			path := filepath.Join(t.TempDir(), "spool.db")
			s, err := sqlite.Open(path, sqlite.Config{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			files.Store(store.Store(s), path)
			return s
		},
		Features: storetest.Features{Schedules: true, Notify: true, SQLTx: true, Events: true, Keys: true, Leases: true, Health: true, Workers: true, SQS: true, Bulk: true, Activity: true, Audit: true, MultiHandle: true, NotifyAcrossHandles: true},
		Reopen: func(t *testing.T, s store.Store, now func() time.Time) store.Store {
			other, err := sqlite.Open(fileOf(t, s), sqlite.Config{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			files.Store(store.Store(other), fileOf(t, s))
			return other
		},
		CorruptSchedule: func(t *testing.T, s store.Store, ref store.ScheduleRef, column, value string) {
			db := rawDB(t, s)
			if _, err := db.Exec(`UPDATE spool_schedules SET `+column+` = ? WHERE tenant = ? AND id = ?`, value, ref.Tenant, ref.ID); err != nil {
				t.Fatal(err)
			}
		},
		BeginTx: func(t *testing.T, s store.Store) *sql.Tx {
			tx, err := rawDB(t, s).BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback() })
			return tx
		},
	})
}

func fileOf(t *testing.T, s store.Store) string {
	t.Helper()
	path, ok := files.Load(s)
	if !ok {
		t.Fatal("not a store this test opened")
	}
	s2, _ := path.(string) // only strings are stored
	return s2
}

// rawDB opens a *sql.DB of the caller's own on the store's file, as an
// application sharing it would.
func rawDB(t *testing.T, s store.Store) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqlite.DSN(fileOf(t, s), 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
