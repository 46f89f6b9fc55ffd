package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
	"github.com/spoolrun/spool/store/storetest"
)

// BenchmarkStore runs the shared store benchmarks on a SQLite file with
// Spool's durability (an enqueue or settle returns after an fsync that covers
// its commit). jobs/s is the figure to read; the concurrent runs also report
// how many operations shared each commit and each fsync. Run:
//
//	go test -run '^$' -bench . -benchtime 2s ./store/sqlite
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"), sqlite.Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}, &storetest.BenchOptions{Report: func(b *testing.B, s store.Store) {
		st, ok := s.(*sqlite.Store)
		if !ok {
			b.Fatalf("store is %T, not *sqlite.Store", s)
		}
		ws := st.WriterStats()
		b.ReportMetric(float64(ws.Ops)/float64(ws.Groups), "ops/commit")
		b.ReportMetric(float64(ws.Ops)/float64(max(ws.Syncs, 1)), "ops/fsync")
	}})
}
