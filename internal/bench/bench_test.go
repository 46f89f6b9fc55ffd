package bench_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolrun/spool/internal/bench"
	"github.com/spoolrun/spool/store/sqlite"
)

// TestMain runs the worker process of TestCrossProcess when asked to, and
// otherwise the tests, failing the package if one leaves a goroutine behind.
func TestMain(m *testing.M) {
	if path := os.Getenv("SPOOL_BENCH_WORKER"); path != "" {
		os.Exit(workerProcess(path))
	}
	goleak.VerifyTestMain(m)
}

func workerProcess(path string) int {
	st, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	jobs, _ := strconv.Atoi(os.Getenv("SPOOL_BENCH_JOBS"))
	if err := bench.WorkerProcess(context.Background(), bench.Config{Store: st, Jobs: jobs, Workers: 10}, 300*time.Millisecond, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

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

// A cross-process run has the jobs worked by another process, measures a
// latency for each, and reports the idle worker's CPU.
func TestCrossProcess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bench.db")
	st, err := sqlite.Open(path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	worker := exec.Command(os.Args[0], "-test.run=^$")
	worker.Env = append(os.Environ(), "SPOOL_BENCH_WORKER="+path, "SPOOL_BENCH_JOBS=100")
	worker.Stderr = os.Stderr
	r, err := bench.CrossProcess(context.Background(), bench.Config{Store: st, Rate: 200, Duration: 500 * time.Millisecond, Workers: 10}, worker)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != "cross-process" || r.Jobs != 100 || r.LatencyMS == nil || r.LatencyMS.P50 <= 0 || r.LatencyMS.Max < r.LatencyMS.P99 {
		t.Fatalf("result %+v latency %+v", r, r.LatencyMS)
	}
	if r.Idle == nil || r.Idle.Seconds <= 0 || r.Idle.CPUPercent < 0 {
		t.Fatalf("idle %+v", r.Idle)
	}
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].Counts["completed"] != 100 {
		t.Fatalf("stats after the run: %+v", stats)
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

// The events modes deliver every event to every subscription, counting
// the events batches carry, and report a rate per subscription.
func TestEvents(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		run  func(context.Context, bench.EventsConfig) (*bench.EventsResult, error)
		subs int
	}{{"events", bench.EventsBurnDown, 3}, {"replay", bench.Replay, 1}} {
		r, err := c.run(context.Background(), bench.EventsConfig{Store: openStore(t), Events: 2000, Workers: 10})
		if err != nil {
			t.Fatal(err)
		}
		if r.Mode != c.name || r.Events != 2000 || r.Subscriptions != c.subs || len(r.PerSubscription) != c.subs ||
			r.Slowest <= 0 || r.Mean < r.Slowest || r.PublishPerSec <= 0 {
			t.Fatalf("%s: %+v", c.name, r)
		}
	}
	r, err := bench.EventsContinuous(context.Background(), bench.EventsConfig{Store: openStore(t), Rate: 200, Duration: 500 * time.Millisecond, Workers: 10})
	if err != nil {
		t.Fatal(err)
	}
	if r.Events != 100 || r.LatencyMS == nil || r.LatencyMS.P50 <= 0 || r.LatencyMS.Max < r.LatencyMS.P99 {
		t.Fatalf("continuous: %+v latency %+v", r, r.LatencyMS)
	}
}
