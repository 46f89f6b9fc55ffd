package postgres_test

import (
	"context"
	"testing"

	"github.com/spoolrun/spool/internal/pgtest"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/postgres"
	"github.com/spoolrun/spool/store/storetest"
)

// BenchmarkStore runs the shared store benchmarks on PostgreSQL, each in a
// fresh schema. They are sized for a small machine (2 cores running both Go
// and PostgreSQL). jobs/s is the figure to read. Run:
//
//	go test -run '^$' -bench . -benchtime 2s ./store/postgres/
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.URL(b), postgres.Config{Schema: pgtest.Schema(b), MaxConns: 20})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}, nil)
}
