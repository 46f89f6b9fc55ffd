package postgres_test

import (
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/storetest"
)

// TestConformance runs the store suite; every subtest gets an empty store
// in a schema of its own.
func TestConformance(t *testing.T) {
	url := pgtest.URL(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		s, err := postgres.Open(t.Context(), url, postgres.Config{Now: now, Schema: pgtest.Schema(t), MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
