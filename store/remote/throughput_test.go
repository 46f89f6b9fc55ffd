package remote_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spoolrun/spool/internal/bench"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/remote"
	"github.com/spoolrun/spool/store/sqlite"
)

// TestThroughput compares a burn-down worked through a remote store with
// one worked in process, on SQLite. It measures, so it runs only when
// SPOOL_REMOTE_THROUGHPUT is set, without -race.
func TestThroughput(t *testing.T) {
	if os.Getenv("SPOOL_REMOTE_THROUGHPUT") == "" {
		t.Skip("set SPOOL_REMOTE_THROUGHPUT=1 to measure")
	}
	const jobs, workers = 50_000, 100
	run := func(remoteToo bool) float64 {
		under, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
		if err != nil {
			t.Fatal(err)
		}
		var st store.Store = under
		if remoteToo {
			sv := serve(t, under)
			r, err := remote.Open(sv.url, remote.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			st = r
		} else {
			defer under.Close()
		}
		res, err := bench.BurnDown(t.Context(), bench.Config{Store: st, Jobs: jobs, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("remote=%v: %.0f jobs/s (settle batch %.1f, enqueue %.2fs)", remoteToo, res.JobsPerSec, res.SettleBatch, res.EnqueueSeconds)
		return res.JobsPerSec
	}
	if os.Getenv("SPOOL_REMOTE_THROUGHPUT") == "remote" {
		run(true) // for a profile of the remote side alone
		return
	}
	local := run(false)
	over := run(true)
	t.Logf("remote/in-process = %.0f%%", 100*over/local)
}
