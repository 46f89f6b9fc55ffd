package bench_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolrun/spool/internal/bench"
	"github.com/spoolrun/spool/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "bench.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// A burn-down works every job it enqueued and reports a rate that matches
// its own job count and duration.
func TestBurnDown(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	var last int
	r, err := bench.BurnDown(context.Background(), bench.Config{Store: st, Jobs: 500, Workers: 10, Progress: func(done, _ int) { last = done }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Jobs != 500 || r.Seconds <= 0 || r.JobsPerSec != float64(r.Jobs)/r.Seconds || last != 500 {
		t.Fatalf("result %+v, last progress %d", r, last)
	}
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].Counts["completed"] != 500 {
		t.Fatalf("stats after burn-down: %+v", stats)
	}
}

// A continuous run enqueues rate × duration jobs and measures a latency for each.
func TestContinuous(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	r, err := bench.Continuous(context.Background(), bench.Config{Store: st, Rate: 200, Duration: 500 * time.Millisecond, Workers: 10})
	if err != nil {
		t.Fatal(err)
	}
	if r.Jobs != 100 || r.LatencyMS == nil || r.LatencyMS.P50 <= 0 || r.LatencyMS.P99 < r.LatencyMS.P50 || r.LatencyMS.Max < r.LatencyMS.P99 {
		t.Fatalf("result %+v latency %+v", r, r.LatencyMS)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	if _, err := bench.BurnDown(context.Background(), bench.Config{}); err == nil {
		t.Fatal("no store: want an error")
	}
	if _, err := bench.BurnDown(context.Background(), bench.Config{Store: openStore(t), Workers: -1}); err == nil {
		t.Fatal("negative workers: want an error")
	}
}
