package postgres_test

import (
	"database/sql"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for EnqueueTx

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/storetest"
)

// TestConformance runs the store suite; every subtest gets an empty store
// in a schema of its own.
func TestConformance(t *testing.T) {
	url := pgtest.URL(t)
	open := func(t *testing.T, schema string, now func() time.Time) store.Store {
		s, err := postgres.Open(t.Context(), url, postgres.Config{Now: now, Schema: schema, MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) store.Store {
			return open(t, pgtest.Schema(t), now)
		},
		Features: storetest.Features{Schedules: true, Events: true, Notify: true, SQLTx: true, Keys: true, Leases: true, Health: true, Workers: true, SQS: true, Bulk: true, Activity: true, Audit: true, MultiHandle: true, NotifyAcrossHandles: true},
		Reopen: func(t *testing.T, s store.Store, now func() time.Time) store.Store {
			return open(t, pg(t, s).Schema(), now)
		},
		CorruptSchedule: func(t *testing.T, s store.Store, ref store.ScheduleRef, column, value string) {
			p := pg(t, s)
			if _, err := p.Pool().Exec(t.Context(), `UPDATE `+p.Schema()+`.schedules SET `+column+` = $1 WHERE tenant = $2 AND id = $3`, value, ref.Tenant, ref.ID); err != nil {
				t.Fatal(err)
			}
		},
		BeginTx: func(t *testing.T, _ store.Store) *sql.Tx {
			db, err := sql.Open("pgx", url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			tx, err := db.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tx.Rollback() })
			return tx
		},
	})
}

func pg(t *testing.T, s store.Store) *postgres.Store {
	t.Helper()
	p, ok := s.(*postgres.Store)
	if !ok {
		t.Fatalf("%T is not a *postgres.Store", s)
	}
	return p
}
